"""The clearing service's tables (asyncpg); nothing else touches them.

Rows mirror the domain's records (`ClearingItem`, `ReportRecord`, `Posting`, `Result`)
one for one; `book.InMemoryBook` is the same store in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from services.clearing.domain.decisions import Decision
from services.clearing.domain.items import ClearingItem, ItemKind
from services.clearing.domain.ledger import AccountKind, EntryKind, EventRef, Posting, Side
from services.clearing.domain.reports import Answer, ReportRecord
from services.clearing.domain.state import ClearingState
from shared.events import make_event
from shared.messaging.records import Record

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
    )


async def item(conn: asyncpg.Connection, item_id: str) -> ClearingItem | None:
    document = await conn.fetchval("SELECT document FROM items WHERE item_id = $1", item_id)
    return _item(document) if document else None


async def unreported_items(conn: asyncpg.Connection, through: date) -> list[ClearingItem]:
    rows = await conn.fetch(
        """SELECT document FROM items WHERE reported_on IS NULL AND business_date <= $1
           ORDER BY item_id""", through)
    return [_item(r["document"]) for r in rows]


async def cycle_items(conn: asyncpg.Connection, cycle: str) -> list[ClearingItem]:
    rows = await conn.fetch("SELECT document FROM items WHERE cycle = $1 ORDER BY item_id", cycle)
    return [_item(r["document"]) for r in rows]


async def _save_items(conn: asyncpg.Connection, items: Sequence[ClearingItem]) -> None:
    if not items:
        return
    await conn.executemany(
        """INSERT INTO items (item_id, kind, hospital, settlement_id, insured_agency,
               care_agency, business_date, origin_cycle, cycle, cleared_amount, reported_on,
               document)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (item_id) DO UPDATE SET cycle = excluded.cycle,
               reported_on = excluded.reported_on, document = excluded.document""",
        [(i.item_id, i.kind.value, i.hospital, i.settlement_id, i.insured_agency,
          i.care_agency, i.business_date, i.origin_cycle, i.cycle, i.cleared_amount,
          i.reported_on, _item_document(i)) for i in items])


# ---- daily reports --------------------------------------------------------------------------


async def report(conn: asyncpg.Connection, agency: str, day: date) -> ReportRecord | None:
    row = await conn.fetchrow(
        "SELECT * FROM daily_reports WHERE agency = $1 AND date = $2", agency, day)
    if row is None:
        return None
    return ReportRecord(agency=row["agency"], date=row["date"], checksum=row["checksum"],
                        settlement_ids=tuple(row["settlement_ids"]),
                        answer=Answer(row["answer"]) if row["answer"] else None)


async def _save_reports(conn: asyncpg.Connection, reports: Sequence[ReportRecord]) -> None:
    if reports:
        await conn.executemany(
            """INSERT INTO daily_reports VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (agency, date) DO UPDATE SET checksum = excluded.checksum,
                   settlement_ids = excluded.settlement_ids, answer = excluded.answer""",
            [(r.agency, r.date, r.checksum, list(r.settlement_ids),
              r.answer.value if r.answer else None) for r in reports])


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


async def store_decision(conn: asyncpg.Connection, decision: Decision, cause_time: datetime,
                         source: str) -> list[tuple[str, Any]]:
    """Write a decision's rows; return its results as (key, envelope) to publish."""
    await _save_items(conn, decision.items)
    await _save_reports(conn, decision.reports)
    if decision.postings:
        await conn.copy_records_to_table("postings", columns=POSTING_COLUMNS,
                                         records=[posting_row(p) for p in decision.postings])
    published = []
    for result in decision.results:
        event = make_event(result.payload, id=result.event_id, source=source, time=cause_time,
                           subject=result.key)
        document = event.model_dump_json(exclude_none=True)
        inserted = await conn.fetchval(
            """INSERT INTO results (event_id, type, key, document) VALUES ($1, $2, $3, $4)
               ON CONFLICT (event_id) DO NOTHING RETURNING true""",
            result.event_id, result.payload.TYPE, result.key, document)
        if inserted:
            published.append((result.key, event))
    return published


# ---- the cut between days -------------------------------------------------------------------


async def positions(conn: asyncpg.Connection) -> dict[tuple[str, int], int]:
    rows = await conn.fetch("SELECT * FROM input_positions")
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def advance_positions(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
    latest: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        latest[key] = max(latest.get(key, 0), r.offset + 1)
    if latest:
        await conn.executemany(
            """INSERT INTO input_positions VALUES ($1, $2, $3)
               ON CONFLICT (topic, "partition") DO UPDATE
               SET next_offset = greatest(input_positions.next_offset, excluded.next_offset)""",
            [(t, p, o) for (t, p), o in latest.items()])


async def pending_days(conn: asyncpg.Connection) -> list[Record]:
    rows = await conn.fetch('SELECT * FROM pending_days ORDER BY seq')
    return [Record(r["topic"], r["partition"], r["offset"], None, bytes(r["value"]))
            for r in rows]


async def add_pending_day(conn: asyncpg.Connection, record: Record) -> None:
    await conn.execute(
        'INSERT INTO pending_days (topic, "partition", "offset", value) VALUES ($1, $2, $3, $4)',
        record.topic, record.partition, record.offset, record.value)


async def drop_pending_day(conn: asyncpg.Connection, record: Record) -> None:
    await conn.execute(
        'DELETE FROM pending_days WHERE topic = $1 AND "partition" = $2 AND "offset" = $3',
        record.topic, record.partition, record.offset)


async def defer(conn: asyncpg.Connection, record: Record) -> None:
    await conn.execute("INSERT INTO deferred VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                       record.topic, record.partition, record.offset, record.value)


async def deferred(conn: asyncpg.Connection) -> list[Record]:
    rows = await conn.fetch('SELECT * FROM deferred ORDER BY topic, "partition", "offset"')
    return [Record(r["topic"], r["partition"], r["offset"], None, bytes(r["value"]))
            for r in rows]


async def drop_deferred(conn: asyncpg.Connection, record: Record) -> None:
    await conn.execute(
        'DELETE FROM deferred WHERE topic = $1 AND "partition" = $2 AND "offset" = $3',
        record.topic, record.partition, record.offset)
