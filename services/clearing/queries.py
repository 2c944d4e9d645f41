"""Read-only queries over the clearing service's tables, for agencies, hospitals and auditors.

Everything here reads what the clearing service stored (schema ``clearing``): the results it
published (`results`), its items, its postings and its aggregate. Nothing writes. The ledger
checks at the end are the invariants of `domain.ledger` and the hash chains of `domain.chain`
run over the rows as read, so anyone holding read access can verify the books.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.clearing import store
from services.clearing.domain import ledger
from services.clearing.domain.chain import verify_chain
from services.clearing.domain.items import ClearingItem
from services.clearing.domain.ledger import AccountKind, Posting
from services.clearing.domain.state import ClearingState, InstructionState
from shared import topics
from shared.db import PORTAL, role_url
from shared.events import decode
from shared.events.clearing import (
    DifferenceNotice,
    NetTransferInstruction,
    RemittanceOverdue,
    StatementIssued,
)
from shared.money import ZERO

SCHEMA = "clearing"


async def connect(database_url: str) -> asyncpg.Connection:
    """A read-only connection on the clearing schema, as the portal's role (SELECT on the
    clearing schema only, shared.db.roles): these queries never write."""
    return await asyncpg.connect(role_url(database_url, PORTAL), server_settings={
        "search_path": SCHEMA, "default_transaction_read_only": "on",
        "application_name": "clearinghouse-queries"})


# ---- published results ----------------------------------------------------------------------


async def _payloads(conn: asyncpg.Connection, type_: str, where: str = "",
                    *args: Any) -> list[Any]:
    rows = await conn.fetch(
        f"SELECT document::text AS document FROM results WHERE type = $1 {where} ORDER BY seq",
        type_, *args)
    return [decode(topics.CLEARING_RESULTS, r["document"].encode()).data for r in rows]


async def statements(conn: asyncpg.Connection, agency: str | None = None,
                     cycle: str | None = None) -> list[StatementIssued]:
    """Statements issued, oldest first; by agency and cycle when given."""
    return await _payloads(
        conn, StatementIssued.TYPE,
        "AND ($2::text IS NULL OR key = $2) "
        "AND ($3::text IS NULL OR document->'data'->>'cycle' = $3)", agency, cycle)


async def statement(conn: asyncpg.Connection, agency: str, cycle: str) -> StatementIssued | None:
    found = await statements(conn, agency, cycle)
    return found[-1] if found else None


async def instructions(conn: asyncpg.Connection, cycle: str | None = None,
                       agency: str | None = None) -> list[NetTransferInstruction]:
    """Net-transfer instructions, oldest first; `agency` is the party that is not the hub."""
    return await _payloads(
        conn, NetTransferInstruction.TYPE,
        "AND ($2::text IS NULL OR document->'data'->>'cycle' = $2) "
        "AND ($3::text IS NULL OR key = $3)", cycle, agency)


async def instruction(conn: asyncpg.Connection, instruction_id: str
                      ) -> NetTransferInstruction | None:
    found = await _payloads(conn, NetTransferInstruction.TYPE,
                            "AND document->'data'->>'instruction_id' = $2", instruction_id)
    return found[-1] if found else None


async def notices(conn: asyncpg.Connection, agency: str | None = None
                  ) -> list[DifferenceNotice]:
    """Difference notices (a refunded settlement settled again), oldest first."""
    return await _payloads(conn, DifferenceNotice.TYPE,
                           "AND ($2::text IS NULL OR key = $2)", agency)


async def overdue(conn: asyncpg.Connection) -> dict[str, RemittanceOverdue]:
    """Overdue notices by instruction id."""
    found: list[RemittanceOverdue] = await _payloads(conn, RemittanceOverdue.TYPE)
    return {o.instruction_id: o for o in found}


# ---- the aggregate, items and postings -------------------------------------------------------


async def state(conn: asyncpg.Connection) -> ClearingState:
    text = await conn.fetchval("SELECT state::text FROM clearing_state WHERE id = 1")
    return ClearingState.from_json(text) if text else ClearingState()


async def instruction_states(conn: asyncpg.Connection) -> dict[str, InstructionState]:
    """How much of each instruction has been paid (into the hub) or distributed (out of it)."""
    return {iid: i for cycle in (await state(conn)).cycles.values()
            for iid, i in cycle.instructions.items()}


async def cycle_items(conn: asyncpg.Connection, cycle: str, agency: str,
                      counterpart: str | None = None) -> list[ClearingItem]:
    """The items cleared in `cycle` between `agency` and `counterpart` (any when None)."""
    items = await store.cycle_items(conn, cycle)
    return [i for i in items
            if agency in (i.care_agency, i.insured_agency)
            and (counterpart is None or counterpart in (i.care_agency, i.insured_agency))
            and i.care_agency != i.insured_agency]


async def postings(conn: asyncpg.Connection, agency: str | None = None) -> list[Posting]:
    """Ledger postings in ledger order (agency, sequence)."""
    return await store.postings(conn, agency)


def posting_of(row: asyncpg.Record) -> Posting:
    """A row of ``clearing.postings`` (read by whoever streams the table) as a `Posting`."""
    return store.posting_of(row)


# ---- balances -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceLine:
    """One account of one ledger with one counterpart, debit-positive, and the same amount
    on the side where the account normally stands (owed to / owed by the agency)."""

    account: str
    counterpart: str
    balance: Decimal

    @property
    def normal(self) -> Decimal:
        if self.account in (AccountKind.PAYABLE, AccountKind.ADVANCED_TO_HOSPITALS):
            return -self.balance
        return self.balance


def balance_lines(rows: Iterable[Posting], agency: str, as_of: datetime | None = None,
                  cycle: str | None = None) -> list[BalanceLine]:
    """Every account of `agency`'s ledger as of `as_of` (business time), by counterpart."""
    found = ledger.balances((p for p in rows if p.agency == agency), as_of=as_of, cycle=cycle)
    return [BalanceLine(k.account.value, k.counterpart, v)
            for k, v in sorted(found.items(), key=lambda kv: (kv[0].account, kv[0].counterpart))]


# ---- the ledger checks ----------------------------------------------------------------------


@dataclass(frozen=True)
class BrokenLink:
    """The first posting of a ledger whose hash link, sequence or ledger does not follow."""

    agency: str
    sequence: int
    entry_id: str
    line: int


def broken_links(rows: Sequence[Posting]) -> list[BrokenLink]:
    """Verify the hash chain of every ledger (rows in ledger order); the first break of each."""
    by_agency: dict[str, list[Posting]] = defaultdict(list)
    for p in rows:
        by_agency[p.agency].append(p)
    found = []
    for agency in sorted(by_agency):
        chain = sorted(by_agency[agency], key=lambda p: p.sequence)
        index = verify_chain(chain)
        if index is not None:
            p = chain[index]
            found.append(BrokenLink(agency, p.sequence, p.entry_id, p.line))
    return found


@dataclass(frozen=True)
class CheckResult:
    """One invariant: its name and the violations found (empty when it holds)."""

    name: str
    problems: list[str]


def check_ledgers(rows: Sequence[Posting]) -> list[CheckResult]:
    """The ledger invariants anyone can run, in a fixed order."""
    return [
        CheckResult("entries balance", ledger.check_entries_balance(rows)),
        CheckResult("reciprocity", ledger.check_reciprocity(rows)),
        CheckResult("hub nets to zero", ledger.check_hub_nets_to_zero(rows)),
        CheckResult("hub never overdrawn", ledger.check_hub_never_overdrawn(rows)),
        CheckResult("hash chains", [
            f"ledger {b.agency}: the hash chain breaks at sequence {b.sequence} "
            f"(entry {b.entry_id}, line {b.line})" for b in broken_links(rows)]),
    ]


def net_effect(item: ClearingItem, agency: str) -> Decimal:
    """What an item adds to `agency`'s net in its cycle: + when owed to it, − when it owes."""
    return item.signed_amount if item.care_agency == agency else -item.signed_amount


def total(values: Iterable[Decimal]) -> Decimal:
    return sum(values, ZERO)


# ---- paged reads for the portal (services/portal) -------------------------------------------
# Paged and filtered in SQL, so a page of a large cycle does not load the whole cycle.

async def items_page(conn: asyncpg.Connection, agency: str, *, cycle: str | None = None,
                     counterpart: str | None = None, settlement_ids: Sequence[str] | None = None,
                     reported_on: date | None = None, limit: int = 50, offset: int = 0
                     ) -> tuple[list[ClearingItem], int]:
    """One page of the items between `agency` and its counterparts (in business order),
    and how many match in all; `reported_on`: those the daily report of that date covers.

    The items owed to the agency and those it owes are read as two ordered branches (each
    can follow an index on ``(cycle, care_agency | insured_agency, business_date, item_id)``)
    and merged, so a page costs its offset, not the whole cycle."""
    args: list[Any] = [agency]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    common = []
    if cycle is not None:
        common.append(f"cycle = {arg(cycle)}")
    if settlement_ids is not None:
        common.append(f"settlement_id = ANY({arg(list(settlement_ids))}::text[])")
    if reported_on is not None:
        common.append(f"reported_on = {arg(reported_on)}")
    with_whom = arg(counterpart) if counterpart is not None else None

    def side(mine: str, theirs: str) -> str:
        where = [f"{mine} = $1", f"{theirs} <> $1", *common]
        if with_whom is not None:
            where.append(f"{theirs} = {with_whom}")
        return " AND ".join(where)

    owed_to, owes = side("care_agency", "insured_agency"), side("insured_agency", "care_agency")
    matching = int(await conn.fetchval(f"SELECT (SELECT count(*) FROM items WHERE {owed_to}) + "
                                       f"(SELECT count(*) FROM items WHERE {owes})", *args))
    # A page in the second half is read from the end (descending), so no page skips more
    # than half the matching items: the last page costs what the first does.
    backwards = offset > 0 and 2 * offset + limit > matching
    if backwards:
        offset, limit = max(0, matching - offset - limit), max(0, min(limit, matching - offset))
    order = "business_date DESC, item_id DESC" if backwards else "business_date, item_id"
    top, size, skip = arg(offset + limit), arg(limit), arg(offset)
    # The merge and the skip run over the index keys only; the documents are read for the
    # page's rows alone.
    rows = await conn.fetch(
        f"""SELECT i.document::text AS document FROM (
              SELECT business_date, item_id FROM (
                (SELECT business_date, item_id FROM items WHERE {owed_to}
                 ORDER BY {order} LIMIT {top})
                UNION ALL
                (SELECT business_date, item_id FROM items WHERE {owes}
                 ORDER BY {order} LIMIT {top})) AS x
              ORDER BY {order} LIMIT {size} OFFSET {skip}) AS page
            JOIN items AS i USING (item_id)
            ORDER BY {order.replace("business_date", "page.business_date").replace(
                "item_id", "page.item_id")}""", *args)
    found = [store._item(r["document"]) for r in rows]
    return (found[::-1] if backwards else found), matching


async def settlement_items(conn: asyncpg.Connection, settlement_id: str
                           ) -> list[ClearingItem]:
    """Every item (the settlement and its refunds) of a settlement id, at any hospital."""
    rows = await conn.fetch(
        """SELECT document::text AS document FROM items WHERE settlement_id = $1
           ORDER BY business_date, item_id""", settlement_id)
    return [store._item(r["document"]) for r in rows]


async def daily_reports(conn: asyncpg.Connection, agency: str
                        ) -> list[tuple[Any, str | None]]:
    """The daily reports sent to `agency`, newest first, each with its answer (or None)."""
    from shared.events.clearing import DailyReport

    reports: list[Any] = await _payloads(conn, DailyReport.TYPE, "AND key = $2", agency)
    answers = {r["date"]: r["answer"] for r in await conn.fetch(
        "SELECT date, answer FROM daily_reports WHERE agency = $1", agency)}
    return [(r, answers.get(r.date)) for r in sorted(reports, key=lambda r: r.date,
                                                      reverse=True)]


async def daily_volumes(conn: asyncpg.Connection, cycle: str, agency: str | None = None
                        ) -> list[tuple[date, int, Decimal]]:
    """Per business date of `cycle`: items and their signed cleared amount (of `agency`)."""
    signed = "CASE WHEN kind = 'refund' THEN -cleared_amount ELSE cleared_amount END"
    if agency is None:
        rows = await conn.fetch(
            f"""SELECT business_date, count(*) AS n, sum({signed}) AS amount
                FROM items WHERE cycle = $1 AND care_agency <> insured_agency
                GROUP BY business_date ORDER BY business_date""", cycle)
    else:  # one branch per side of the agency, each following one of the portal's indexes
        rows = await conn.fetch(
            f"""SELECT business_date, count(*) AS n, sum(s) AS amount FROM (
                  SELECT business_date, {signed} AS s FROM items
                  WHERE cycle = $1 AND care_agency = $2 AND insured_agency <> $2
                  UNION ALL
                  SELECT business_date, {signed} FROM items
                  WHERE cycle = $1 AND insured_agency = $2 AND care_agency <> $2) AS x
                GROUP BY business_date ORDER BY business_date""", cycle, agency)
    return [(r["business_date"], r["n"], r["amount"]) for r in rows]


async def settlements_of_person(conn: asyncpg.Connection, person_id: str) -> list[str] | None:
    """The settlement ids of a person, from the settlement service's id table; None when
    this role may not read it (the portal's role needs SELECT on settlement.settlement_ids)."""
    try:
        rows = await conn.fetch(
            "SELECT settlement_id FROM settlement.settlement_ids WHERE person_id = $1",
            person_id)
    except (asyncpg.InsufficientPrivilegeError, asyncpg.UndefinedTableError):
        return None
    return sorted({r["settlement_id"] for r in rows})


async def items_totals(conn: asyncpg.Connection, agency: str, cycle: str,
                       counterpart: str | None = None) -> dict[str, dict[str, Any]]:
    """Per counterpart, the statement's figures recomputed from the cycle's items in SQL
    (the arithmetic of `tools.audit.explain.Totals`: a refund counts negative, items
    carried from an earlier cycle are adjustments, signed from `agency`'s side)."""
    # The items owed to the agency and those it owes as two branches, each an index-only
    # scan of one of the portal's indexes (004_portal_indexes.sql).
    rows = await conn.fetch(
        """SELECT counterpart, count(*) AS items,
                  coalesce(sum(s) FILTER (WHERE NOT carried AND receiving), 0) AS receivable,
                  coalesce(sum(s) FILTER (WHERE NOT carried AND NOT receiving), 0) AS payable,
                  coalesce(sum(CASE WHEN receiving THEN s ELSE -s END) FILTER (WHERE carried),
                           0) AS adjustments
           FROM (SELECT insured_agency AS counterpart, true AS receiving,
                        cycle <> origin_cycle AS carried,
                        CASE WHEN kind = 'refund' THEN -cleared_amount ELSE cleared_amount END
                          AS s
                 FROM items WHERE cycle = $1 AND care_agency = $2 AND insured_agency <> $2
                   AND ($3::text IS NULL OR insured_agency = $3)
                 UNION ALL
                 SELECT care_agency, false, cycle <> origin_cycle,
                        CASE WHEN kind = 'refund' THEN -cleared_amount ELSE cleared_amount END
                 FROM items WHERE cycle = $1 AND insured_agency = $2 AND care_agency <> $2
                   AND ($3::text IS NULL OR care_agency = $3)) AS x
           GROUP BY 1 ORDER BY 1""", cycle, agency, counterpart)
    return {r["counterpart"]: {
        "receivable": r["receivable"], "payable": r["payable"],
        "adjustments": r["adjustments"],
        "net": r["receivable"] - r["payable"] + r["adjustments"], "items": r["items"]}
        for r in rows}


async def postings_fingerprint(conn: asyncpg.Connection) -> tuple[int, int]:
    """(count, largest sequence) of the postings: changes whenever one is appended (the
    ledgers are append-only), so a ledger check over the same fingerprint is the same."""
    row = await conn.fetchrow("SELECT count(*) AS n, coalesce(max(sequence), 0) AS top "
                              "FROM postings")
    return int(row["n"]), int(row["top"])


async def rejections(conn: asyncpg.Connection, agency: str) -> list[Any]:
    """The submissions of `agency` the clearing service refused, oldest first."""
    from shared.events.clearing import SubmissionRejected

    return await _payloads(conn, SubmissionRejected.TYPE, "AND key = $2", agency)
