"""The clearing service's tables (asyncpg); nothing else touches them.

Rows mirror the domain's records (`ClearingItem`, `ReportRecord`, `Posting`, `Result`)
one for one. The handler works through `Tables` (the lookups `dispatch.Lookups` names, and
the writes of one transaction); queries, reports and the audit read the functions below.
The order of the inputs across partitions is kept by the shared sequencer, in tables of its
own (`shared.messaging.sequencer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from services.clearing.domain.cycles import CycleTotals, LineTotals
from services.clearing.domain.decisions import Decision
from services.clearing.domain.fund import FundPolicy
from services.clearing.domain.items import ClearingItem, ItemKind
from services.clearing.domain.ledger import (
    AccountKind,
    EntryKind,
    EventRef,
    Position,
    Posting,
    Side,
)
from services.clearing.domain.reports import Answer, ReportRecord
from services.clearing.domain.state import ClearingState
from services.clearing.fund_reference import load_fund_policy
from shared.events import make_event
from shared.money import FEN

# ---- the aggregate --------------------------------------------------------------------------


async def load_state(conn: asyncpg.Connection) -> ClearingState:
    text = await conn.fetchval("SELECT state FROM clearing_state WHERE id = 1 FOR UPDATE")
    return ClearingState.from_json(text) if text else ClearingState()


async def save_state(conn: asyncpg.Connection, state: ClearingState) -> None:
    await conn.execute(
        """INSERT INTO clearing_state (id, state) VALUES (1, $1)
           ON CONFLICT (id) DO UPDATE SET state = excluded.state""", state.to_json())


# ---- items ----------------------------------------------------------------------------------


def _item_document(item: ClearingItem) -> str:
    return orjson.dumps({
        "item_id": item.item_id, "kind": item.kind.value, "hospital": item.hospital,
        "settlement_id": item.settlement_id, "insured_agency": item.insured_agency,
        "care_agency": item.care_agency, "business_time": item.business_time.isoformat(),
        "origin_cycle": item.origin_cycle, "cycle": item.cycle,
        "fund_pay": str(item.fund_pay), "account_pay": str(item.account_pay),
        "cash_pay": str(item.cash_pay), "cleared_amount": str(item.cleared_amount),
        "cause": [item.cause.source, item.cause.id], "refund_id": item.refund_id,
        "resettles": item.resettles,
        "reported_on": item.reported_on.isoformat() if item.reported_on else None,
        **({"other_payers_pay": str(item.other_payers_pay)} if item.other_payers_pay else {}),
    }).decode()


def _item(document: str | bytes) -> ClearingItem:
    d: dict[str, Any] = orjson.loads(document)
    return ClearingItem(
        item_id=d["item_id"], kind=ItemKind(d["kind"]), hospital=d["hospital"],
        settlement_id=d["settlement_id"], insured_agency=d["insured_agency"],
        care_agency=d["care_agency"], business_time=datetime.fromisoformat(d["business_time"]),
        origin_cycle=d["origin_cycle"], cycle=d["cycle"], fund_pay=Decimal(d["fund_pay"]),
        account_pay=Decimal(d["account_pay"]), cash_pay=Decimal(d["cash_pay"]),
        cleared_amount=Decimal(d["cleared_amount"]), cause=EventRef(*d["cause"]),
        refund_id=d["refund_id"], resettles=d["resettles"],
        reported_on=date.fromisoformat(d["reported_on"]) if d["reported_on"] else None,
        other_payers_pay=Decimal(d.get("other_payers_pay", "0.00")),
    )


async def item(conn: asyncpg.Connection, item_id: str) -> ClearingItem | None:
    document = await conn.fetchval("SELECT document FROM items WHERE item_id = $1", item_id)
    return _item(document) if document else None


async def refund_items(conn: asyncpg.Connection, hospital: str, settlement_id: str
                       ) -> list[ClearingItem]:
    """The refund items of one settlement (settlement ids are unique per hospital)."""
    rows = await conn.fetch(
        """SELECT document FROM items
            WHERE settlement_id = $1 AND hospital = $2 AND kind = 'refund'""",
        settlement_id, hospital)
    return [_item(r["document"]) for r in rows]


async def unreported_items(conn: asyncpg.Connection, through: date,
                           cut: dict[str, dict[str, int]] | None = None) -> list[ClearingItem]:
    """Items not reported yet with a business date up to `through`; with `cut` (a day's
    watermarks), only those whose record precedes it."""
    rows = await conn.fetch(
        """SELECT document FROM items WHERE reported_on IS NULL AND business_date <= $1
             AND (input_topic IS NULL OR $2::jsonb IS NULL
                  OR input_offset < coalesce(($2::jsonb -> input_topic
                                              ->> input_partition::text)::bigint,
                                             9223372036854775807))
           ORDER BY item_id""", through, orjson.dumps(cut).decode() if cut else None)
    return [_item(r["document"]) for r in rows]


async def cycle_items(conn: asyncpg.Connection, cycle: str) -> list[ClearingItem]:
    rows = await conn.fetch("SELECT document FROM items WHERE cycle = $1 ORDER BY item_id", cycle)
    return [_item(r["document"]) for r in rows]


async def cycle_totals(conn: asyncpg.Connection, cycle: str) -> CycleTotals:
    """`cycles.cycle_totals` of the items cleared in `cycle`, added up by PostgreSQL: per
    agency and counterpart the statement line and the ledger position, per agency the
    checksum (sha256 of its lines ``<settlement_id>:<signed fen>`` sorted as byte strings,
    joined by newlines). No item is loaded into Python."""
    rows = await conn.fetch(
        """WITH side AS (
               SELECT care_agency AS agency, insured_agency AS counterpart, true AS receiving,
                      cycle <> origin_cycle AS carried,
                      CASE kind WHEN 'settlement' THEN cleared_amount
                           ELSE -cleared_amount END AS amount
               FROM items WHERE cycle = $1
               UNION ALL
               SELECT insured_agency, care_agency, false, cycle <> origin_cycle,
                      CASE kind WHEN 'settlement' THEN cleared_amount ELSE -cleared_amount END
               FROM items WHERE cycle = $1)
           SELECT agency, counterpart,
               coalesce(sum(amount) FILTER (WHERE receiving AND NOT carried), 0.00)
                   AS receivable,
               count(*) FILTER (WHERE receiving AND NOT carried) AS receivable_count,
               coalesce(sum(amount) FILTER (WHERE NOT receiving AND NOT carried), 0.00)
                   AS payable,
               count(*) FILTER (WHERE NOT receiving AND NOT carried) AS payable_count,
               coalesce(sum(CASE WHEN receiving THEN amount ELSE -amount END)
                        FILTER (WHERE carried), 0.00) AS adjustments,
               count(*) FILTER (WHERE carried) AS adjustment_count,
               coalesce(sum(amount) FILTER (WHERE receiving), 0.00) AS position_receivable,
               coalesce(sum(amount) FILTER (WHERE NOT receiving), 0.00) AS position_payable
           FROM side GROUP BY agency, counterpart""", cycle)
    sums = await conn.fetch(
        """WITH line AS (
               SELECT settlement_id || ':' || ((CASE kind WHEN 'settlement' THEN 1 ELSE -1 END)
                      * (cleared_amount * 100)::bigint)::text AS text,
                      care_agency, insured_agency
               FROM items WHERE cycle = $1)
           SELECT agency, encode(sha256(convert_to(
                      string_agg(text, E'\\n' ORDER BY text COLLATE "C"), 'UTF8')), 'hex')
                  AS checksum
           FROM (SELECT care_agency AS agency, text FROM line
                 UNION ALL SELECT insured_agency, text FROM line) AS lines
           GROUP BY agency""", cycle)
    lines: dict[str, dict[str, LineTotals]] = {}
    for r in rows:
        lines.setdefault(r["agency"], {})[r["counterpart"]] = LineTotals(
            receivable=_fen(r["receivable"]), receivable_count=r["receivable_count"],
            payable=_fen(r["payable"]), payable_count=r["payable_count"],
            adjustments=_fen(r["adjustments"]), adjustment_count=r["adjustment_count"],
            position=Position(_fen(r["position_receivable"]), _fen(r["position_payable"])))
    return CycleTotals(lines=lines, checksums={r["agency"]: r["checksum"] for r in sums})


def _fen(amount: Decimal) -> Decimal:
    return amount.quantize(FEN)


async def _save_items(conn: asyncpg.Connection, items: Sequence[ClearingItem],
                      positions: dict[str, tuple[str, int, int]] | None = None) -> None:
    """Insert or update item rows in one statement (ids must be distinct); `positions`
    gives new items their input position (an update keeps the one stored)."""
    if not items:
        return
    where = [(positions or {}).get(i.item_id) for i in items]
    await conn.execute(
        """INSERT INTO items (item_id, kind, hospital, settlement_id, insured_agency,
               care_agency, business_date, origin_cycle, cycle, cleared_amount, reported_on,
               document, input_topic, input_partition, input_offset)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
               $6::text[], $7::date[], $8::text[], $9::text[], $10::numeric[], $11::date[],
               $12::jsonb[], $13::text[], $14::int[], $15::bigint[])
           ON CONFLICT (item_id) DO UPDATE SET cycle = excluded.cycle,
               reported_on = excluded.reported_on, document = excluded.document""",
        [i.item_id for i in items], [i.kind.value for i in items], [i.hospital for i in items],
        [i.settlement_id for i in items], [i.insured_agency for i in items],
        [i.care_agency for i in items], [i.business_date for i in items],
        [i.origin_cycle for i in items], [i.cycle for i in items],
        [i.cleared_amount for i in items], [i.reported_on for i in items],
        [_item_document(i) for i in items], [w[0] if w else None for w in where],
        [w[1] if w else None for w in where], [w[2] if w else None for w in where])


# ---- daily reports --------------------------------------------------------------------------


async def report(conn: asyncpg.Connection, agency: str, day: date) -> ReportRecord | None:
    row = await conn.fetchrow(
        "SELECT * FROM daily_reports WHERE agency = $1 AND date = $2", agency, day)
    if row is None:
        return None
    return ReportRecord(agency=row["agency"], date=row["date"], checksum=row["checksum"],
                        settlement_ids=tuple(row["settlement_ids"]),
                        answer=Answer(row["answer"]) if row["answer"] else None)


async def settlement_items(conn: asyncpg.Connection, agency: str, settlement_ids: list[str]
                           ) -> list[ClearingItem]:
    """The settlement items with these ids that `agency` is a party to."""
    rows = await conn.fetch(
        """SELECT document FROM items
            WHERE settlement_id = ANY($1::text[]) AND kind = 'settlement'
              AND (care_agency = $2 OR insured_agency = $2)""", list(settlement_ids), agency)
    return [_item(r["document"]) for r in rows]


async def _save_reports(conn: asyncpg.Connection, reports: Sequence[ReportRecord]) -> None:
    """Insert or update daily report rows in one statement (keys must be distinct)."""
    if reports:
        await conn.execute(
            """INSERT INTO daily_reports
               SELECT r.agency, r.date, r.checksum,
                      ARRAY(SELECT jsonb_array_elements_text(r.ids)), r.answer
               FROM unnest($1::text[], $2::date[], $3::text[], $4::jsonb[], $5::text[])
                    AS r(agency, date, checksum, ids, answer)
               ON CONFLICT (agency, date) DO UPDATE SET checksum = excluded.checksum,
                   settlement_ids = excluded.settlement_ids, answer = excluded.answer""",
            [r.agency for r in reports], [r.date for r in reports],
            [r.checksum for r in reports],
            [orjson.dumps(list(r.settlement_ids)).decode() for r in reports],
            [r.answer.value if r.answer else None for r in reports])


# ---- postings -------------------------------------------------------------------------------

POSTING_COLUMNS = ("agency", "sequence", "entry_id", "line", "kind", "account", "counterpart",
                   "side", "amount", "business_time", "cycle", "origin_cycle", "cause_source",
                   "cause_id", "settlement_id", "link")


def posting_row(p: Posting) -> tuple[Any, ...]:
    return (p.agency, p.sequence, p.entry_id, p.line, p.kind.value, p.account.value,
            p.counterpart, p.side.value, p.amount, p.business_time, p.cycle, p.origin_cycle,
            p.cause.source, p.cause.id, p.settlement_id, p.link)


def posting_of(row: asyncpg.Record) -> Posting:
    return Posting(
        agency=row["agency"], entry_id=row["entry_id"], line=row["line"],
        kind=EntryKind(row["kind"]), account=AccountKind(row["account"]),
        counterpart=row["counterpart"], side=Side(row["side"]), amount=row["amount"],
        business_time=row["business_time"], cycle=row["cycle"],
        origin_cycle=row["origin_cycle"], cause=EventRef(row["cause_source"], row["cause_id"]),
        settlement_id=row["settlement_id"], sequence=row["sequence"], link=row["link"])


async def postings(conn: asyncpg.Connection, agency: str | None = None) -> list[Posting]:
    rows = await conn.fetch(
        """SELECT * FROM postings WHERE $1::text IS NULL OR agency = $1
           ORDER BY agency, sequence""", agency)
    return [posting_of(r) for r in rows]


# ---- results --------------------------------------------------------------------------------


async def results(conn: asyncpg.Connection, types: Iterable[str] | None = None,
                  agency: str | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT document FROM results
           WHERE ($1::text[] IS NULL OR type = ANY($1)) AND ($2::text IS NULL OR key = $2)
           ORDER BY seq""", list(types) if types else None, agency)
    return [orjson.loads(r["document"]) for r in rows]


# ---- a decision -----------------------------------------------------------------------------


class Writes:
    """The rows of a transaction's decisions, written together at `flush`: one statement per
    table for the whole batch instead of several round trips per event.

    Rows keep their last version (an item a later decision updates is written once, as
    updated); results keep the order decided and, as before, only results not stored
    earlier are published. Reads of items within the transaction go through `item`; every
    other read of these tables must `flush` first.
    """

    def __init__(self) -> None:
        self.items: dict[str, ClearingItem] = {}
        self.reports: dict[tuple[str, date], ReportRecord] = {}
        self.postings: list[Posting] = []
        #: item_id → input position of the record that created the item
        self.positions: dict[str, tuple[str, int, int]] = {}
        #: (event_id, type, key, envelope, document, context), in the order decided
        self.results: list[tuple[str, str, str, Any, str, Any]] = []

    def __bool__(self) -> bool:
        return bool(self.items or self.reports or self.postings or self.results)

    def add(self, decision: Decision, cause_time: datetime, source: str,
            context: Any = None, position: tuple[str, int, int] | None = None) -> None:
        """Add a decision's rows; `context` comes back with its published results;
        `position` is the input position of the record decided (given to its new items)."""
        for i in decision.items:
            self.items.pop(i.item_id, None)  # keep write order: the latest version goes last
            self.items[i.item_id] = i
            if position is not None:
                self.positions.setdefault(i.item_id, position)
        for r in decision.reports:
            self.reports.pop((r.agency, r.date), None)
            self.reports[(r.agency, r.date)] = r
        self.postings.extend(decision.postings)
        for result in decision.results:
            event = make_event(result.payload, id=result.event_id, source=source,
                               time=cause_time, subject=result.key)
            self.results.append((result.event_id, result.payload.TYPE, result.key, event,
                                 event.model_dump_json(exclude_none=True), context))

    async def item(self, conn: asyncpg.Connection, item_id: str) -> ClearingItem | None:
        if item_id in self.items:
            return self.items[item_id]
        return await item(conn, item_id)

    async def refund_items(self, conn: asyncpg.Connection, hospital: str, settlement_id: str
                           ) -> list[ClearingItem]:
        """Those written so far and those not yet (the latest version of each)."""
        found = {i.item_id: i for i in await refund_items(conn, hospital, settlement_id)}
        found.update({i.item_id: i for i in self.items.values()
                      if i.kind is ItemKind.REFUND
                      and (i.hospital, i.settlement_id) == (hospital, settlement_id)})
        return list(found.values())

    async def flush(self, conn: asyncpg.Connection) -> list[tuple[str, Any, Any]]:
        """Write everything added; return the results to publish as (key, envelope,
        context), in the order decided."""
        await _save_items(conn, list(self.items.values()), self.positions)
        await _save_reports(conn, list(self.reports.values()))
        if self.postings:
            await conn.copy_records_to_table("postings", columns=POSTING_COLUMNS,
                                             records=[posting_row(p) for p in self.postings])
        published: list[tuple[str, Any, Any]] = []
        if self.results:
            first: dict[str, tuple[str, str, str, Any, str, Any]] = {}
            for row in self.results:
                first.setdefault(row[0], row)
            rows = list(first.values())
            inserted = {r["event_id"] for r in await conn.fetch(
                """INSERT INTO results (event_id, type, key, document)
                   SELECT e, t, k, d FROM unnest($1::text[], $2::text[], $3::text[],
                       $4::jsonb[]) WITH ORDINALITY AS r(e, t, k, d, n) ORDER BY n
                   ON CONFLICT (event_id) DO NOTHING RETURNING event_id""",
                [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                [r[4] for r in rows])}
            published = [(r[2], r[3], r[5]) for r in rows if r[0] in inserted]
        self.items, self.reports, self.postings, self.results = {}, {}, [], []
        self.positions = {}
        return published


# ---- the tables within one transaction -------------------------------------------------------


class Tables:
    """The clearing tables as one transaction's decisions see them: `dispatch.Lookups` over
    the rows written so far, and the rows decided (`add`) written together at `flush`.

    `published` is told each result to publish, as (key, envelope, context), in the order
    decided, when its row is written (a result stored before is not published again). Reads
    other than `item` flush first, so they see every decision added.
    """

    def __init__(self, conn: asyncpg.Connection,
                 published: Callable[[str, Any, Any], None]) -> None:
        self.conn = conn
        self._published = published
        self._writes = Writes()
        #: Decisions added since the last `flush`.
        self.unflushed = 0

    async def load_state(self) -> ClearingState:
        return await load_state(self.conn)

    async def save_state(self, state: ClearingState) -> None:
        await self.flush()
        await save_state(self.conn, state)

    def add(self, decision: Decision, cause_time: datetime, source: str, context: Any = None,
            position: tuple[str, int, int] | None = None) -> None:
        """`Writes.add`: a decision's rows, written at the next `flush`."""
        self._writes.add(decision, cause_time, source, context, position)
        self.unflushed += 1

    async def flush(self) -> None:
        """Write the decisions added so far; tell `published` their results."""
        self.unflushed = 0
        if not self._writes:
            return
        for key, envelope, context in await self._writes.flush(self.conn):
            self._published(key, envelope, context)

    async def item(self, item_id: str) -> ClearingItem | None:
        return await self._writes.item(self.conn, item_id)

    async def refund_items(self, hospital: str, settlement_id: str) -> list[ClearingItem]:
        return await self._writes.refund_items(self.conn, hospital, settlement_id)

    async def unreported_items(self, through: date, cut: dict[str, dict[str, int]] | None = None
                               ) -> list[ClearingItem]:
        await self.flush()
        return await unreported_items(self.conn, through, cut)

    async def cycle_totals(self, cycle: str) -> CycleTotals:
        await self.flush()
        return await cycle_totals(self.conn, cycle)

    async def report(self, agency: str, day: date) -> ReportRecord | None:
        await self.flush()
        return await report(self.conn, agency, day)

    async def settlement_items(self, agency: str, settlement_ids: list[str]
                               ) -> list[ClearingItem]:
        await self.flush()
        return await settlement_items(self.conn, agency, settlement_ids)

    def revolving_fund_policy(self) -> FundPolicy | None:
        return load_fund_policy()
