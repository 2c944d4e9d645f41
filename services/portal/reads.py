"""What the portal shows, read through the clearing service's query module (and `explain`):
JSON-ready documents (money as two-decimal strings) that the API returns as they are and
the pages format. No rule of clearing is decided here; the calendar's deadlines are the
clearing calendar's milestones set beside what the clearing service recorded."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from services.clearing import queries
from services.clearing.domain.items import ClearingItem
from services.clearing.domain.periods import (
    CONFIRMATION_DEADLINE_DAY,
    DISTRIBUTION_DAY,
    INSTRUCTIONS_DAY,
    REMITTANCE_DUE_DAY,
    STATEMENTS_DAY,
    cycle_of_date,
    milestone,
    previous_cycle,
)
from services.clearing.domain.state import ClearingState, CycleStatus
from shared.business_time import SHANGHAI
from shared.events.clearing import HUB, NetTransferInstruction, StatementIssued
from shared.money import ZERO, format_money

PAGE_SIZE = 50
#: The clearing calendar's milestones (services.clearing.domain.periods), in order.
MILESTONES = ((STATEMENTS_DAY, "statements_day"), (CONFIRMATION_DEADLINE_DAY, "confirmation_day"),
              (INSTRUCTIONS_DAY, "instructions_day"), (REMITTANCE_DUE_DAY, "remittance_day"),
              (DISTRIBUTION_DAY, "distribution_day"))


class NotFound(LookupError):
    """Nothing of that name was published (the API answers 404)."""


class Forbidden(Exception):
    """It exists but is not this agency's (403). The portal's own: Python's PermissionError
    is also what an unreadable file raises, which is the portal's fault (500), not the
    asker's, and whose message names a path on the server."""


def _m(value: Decimal) -> str:
    return format_money(value)


# ---- statements ------------------------------------------------------------------------------


def _answer(state: ClearingState, agency: str, cycle: str) -> str | None:
    record = state.cycles.get(cycle)
    statement = record.statements.get(agency) if record else None
    return statement.answer.value if statement and statement.answer else None


def statement_document(s: StatementIssued, state: ClearingState) -> dict[str, Any]:
    return {**s.model_dump(mode="json"), "answer": _answer(state, s.agency, s.cycle)}


async def statements(conn: asyncpg.Connection, agency: str) -> list[dict[str, Any]]:
    state = await queries.state(conn)
    found = await queries.statements(conn, agency)
    latest = {s.cycle: s for s in found}  # a re-issued statement replaces the earlier one
    return [statement_document(s, state) for _, s in sorted(latest.items(), reverse=True)]


async def statement(conn: asyncpg.Connection, agency: str, cycle: str) -> dict[str, Any]:
    found = await queries.statement(conn, agency, cycle)
    if found is None:
        raise NotFound(f"no statement of cycle {cycle} was issued to {agency}")
    return statement_document(found, await queries.state(conn))


# ---- daily reports, instructions, notices ----------------------------------------------------


async def daily_reports(conn: asyncpg.Connection, agency: str) -> list[dict[str, Any]]:
    return [{**r.model_dump(mode="json"), "answer": answer}
            for r, answer in await queries.daily_reports(conn, agency)]


def _instruction_document(i: NetTransferInstruction, paid: dict[str, Any],
                          late: dict[str, Any]) -> dict[str, Any]:
    done = paid[i.instruction_id].paid if i.instruction_id in paid else ZERO
    return {**i.model_dump(mode="json"), "paid": _m(done), "outstanding": _m(i.amount - done),
            "overdue": i.instruction_id in late}


async def instructions(conn: asyncpg.Connection, agency: str | None = None,
                       cycle: str | None = None) -> list[dict[str, Any]]:
    """Instructions (of `agency` when given), newest cycle first, with what is paid."""
    found = await queries.instructions(conn, cycle, agency)
    paid = await queries.instruction_states(conn)
    late = await queries.overdue(conn)
    docs = [_instruction_document(i, paid, late) for i in found]
    return sorted(docs, key=lambda d: (d["cycle"], d["instruction_id"]), reverse=True)


async def instruction(conn: asyncpg.Connection, instruction_id: str) -> dict[str, Any]:
    found = await queries.instruction(conn, instruction_id)
    if found is None:
        raise NotFound(f"no net-transfer instruction {instruction_id} was issued")
    return _instruction_document(found, await queries.instruction_states(conn),
                                 await queries.overdue(conn))


def instruction_agency(document: dict[str, Any]) -> str:
    """The party of an instruction that is not the hub."""
    return str(document["payee"] if document["payer"] == HUB else document["payer"])


async def notices(conn: asyncpg.Connection, agency: str) -> list[dict[str, Any]]:
    return [n.model_dump(mode="json", exclude_none=True)
            for n in reversed(await queries.notices(conn, agency))]


# ---- the agency's home -----------------------------------------------------------------------


async def home(conn: asyncpg.Connection, agency: str) -> dict[str, Any]:
    """The current cycle, the calendar's next deadlines with what is still due from this
    agency, its open disputes and overdue remittances."""
    state = await queries.state(conn)
    today = state.today
    current = cycle_of_date(today) if today else None
    mine = await instructions(conn, agency)
    reports = await daily_reports(conn, agency)
    deadlines: list[dict[str, Any]] = []
    near = {previous_cycle(current), current} if current else set()
    for cycle in sorted(set(state.cycles) | near):
        record = state.cycles.get(cycle)
        if record is not None and record.status is CycleStatus.CLOSED:
            continue
        for day_of_month, step in MILESTONES:
            when = milestone(cycle, day_of_month)
            if today is not None and when < today:
                continue
            deadlines.append({"date": when.isoformat(), "cycle": cycle, "step": step,
                              "due": _due(state, agency, cycle, step, mine)})
    deadlines.sort(key=lambda d: d["date"])
    disputes = [{"settlement_id": d.settlement_id, "report_date":
                 d.report_date.isoformat() if d.report_date else None,
                 "statement_cycle": d.statement_cycle, "reason": d.reason,
                 "status": d.status}
                for _, d in sorted(state.disputes.get(agency, {}).items())]
    return {
        "agency": agency, "business_day": today.isoformat() if today else None,
        "current_cycle": current, "deadlines": deadlines[:5], "open_disputes": disputes,
        "overdue": [i for i in mine if i["overdue"] and Decimal(i["outstanding"]) > 0],
        "unanswered_daily_reports": sum(r["answer"] is None for r in reports),
        "rejected_submissions": [r.model_dump(mode="json") for r in reversed(
            await queries.rejections(conn, agency))][:10],
        "revolving_fund": None,  # no revolving-fund ledger is kept by the clearing service
    }


def _due(state: ClearingState, agency: str, cycle: str, step: str,
         mine: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What this agency still has to do by a milestone (empty: nothing)."""
    record = state.cycles.get(cycle)
    if step == "confirmation_day" and record is not None:
        statement = record.statements.get(agency)
        if statement is not None and statement.answer is None:
            return [{"what": "confirm_statement", "cycle": cycle}]
    if step == "remittance_day":
        return [{"what": "remit", "instruction": i["instruction_id"], "amount": i["outstanding"]}
                for i in mine if i["cycle"] == cycle and i["payee"] == HUB
                and Decimal(i["outstanding"]) > 0]
    if step == "distribution_day":
        return [{"what": "receive", "instruction": i["instruction_id"],
                 "amount": i["outstanding"]}
                for i in mine if i["cycle"] == cycle and i["payer"] == HUB
                and Decimal(i["outstanding"]) > 0]
    return []


# ---- drill-down ------------------------------------------------------------------------------


def item_document(item: ClearingItem, agency: str) -> dict[str, Any]:
    counterpart = item.insured_agency if item.care_agency == agency else item.care_agency
    counts_as = ("adjustment" if item.is_adjustment else
                 "receivable" if item.care_agency == agency else "payable")
    return {
        "counterpart": counterpart, "kind": item.kind.value, "settlement_id": item.settlement_id,
        "refund_id": item.refund_id, "hospital": item.hospital,
        "insured_agency": item.insured_agency, "care_agency": item.care_agency,
        "business_time": item.business_time.astimezone(SHANGHAI).isoformat(),
        "cycle": item.cycle, "origin_cycle": item.origin_cycle, "counts_as": counts_as,
        "fund_pay": _m(item.fund_pay), "account_pay": _m(item.account_pay),
        "cash_pay": _m(item.cash_pay), "cleared_amount": _m(item.cleared_amount),
        "effect": _m(queries.net_effect(item, agency)),
        "cause_source": item.cause.source, "cause_id": item.cause.id,
        "resettles": item.resettles,
    }


@dataclass(frozen=True)
class Search:
    """A drill-down's filter: a statement line (cycle, counterpart) and a search text that
    is a settlement id or a person id."""

    cycle: str | None = None
    counterpart: str | None = None
    q: str | None = None
    page: int = 1
    size: int = PAGE_SIZE
    #: The items a daily report covered (the report's date).
    reported_on: date | None = None


async def items(conn: asyncpg.Connection, agency: str, search: Search) -> dict[str, Any]:
    """One page of the items behind `agency`'s figures, and (for a cycle) the totals
    recomputed from all of them beside the published statement, as `explain` does."""
    settlement_ids: list[str] | None = None
    person_search = "unused"
    if search.q:
        by_person = await queries.settlements_of_person(conn, search.q)
        person_search = "unavailable" if by_person is None else "used"
        settlement_ids = sorted({search.q, *(by_person or [])})
    size = max(1, min(search.size, 500))
    page = max(1, search.page)
    found, matching = await queries.items_page(
        conn, agency, cycle=search.cycle, counterpart=search.counterpart,
        settlement_ids=settlement_ids, reported_on=search.reported_on, limit=size,
        offset=(page - 1) * size)
    document: dict[str, Any] = {
        "agency": agency, "cycle": search.cycle, "counterpart": search.counterpart,
        "q": search.q, "person_search": person_search,
        "reported_on": search.reported_on.isoformat() if search.reported_on else None,
        "page": page, "size": size,
        "matching": matching, "pages": max(1, -(-matching // size)),
        "items": [item_document(i, agency) for i in found], "explanation": None}
    if search.cycle and not search.q and search.reported_on is None:
        document["explanation"] = await explanation(conn, agency, search.cycle,
                                                    search.counterpart)
    return document


async def explanation(conn: asyncpg.Connection, agency: str, cycle: str,
                      counterpart: str | None) -> dict[str, Any] | None:
    """The totals behind a statement (or one of its lines) beside the published figures,
    as `clearinghouse explain` sets them out; None when no statement was issued."""
    found = await queries.statement(conn, agency, cycle)
    if found is None:
        return None
    lines = [ln for ln in found.lines if counterpart in (None, ln.counterpart)]
    published = {ln.counterpart: {"receivable": ln.receivable, "payable": ln.payable,
                                  "adjustments": ln.adjustments, "net": ln.net}
                 for ln in lines}
    totals = await queries.items_totals(conn, agency, cycle, counterpart)
    figure = lines[0].net if counterpart and lines else found.net
    every = {k: sum((t[k] for t in totals.values()), ZERO)
             for k in ("receivable", "payable", "adjustments", "net")}
    lines_agree = all({k: totals[c][k] for k in published[c]} == published[c]
                      for c in totals if c in published)
    adds_up = every["net"] == figure and lines_agree and (counterpart is None or bool(lines))
    return {
        "subject": f"statement of {agency} for {cycle}"
                   + (f" with {counterpart}" if counterpart else ""),
        "figure": {"what": "net", "value": _m(figure)},
        "totals": {c: {**{k: _m(v) for k, v in t.items() if k != "items"},
                       "items": t["items"]} for c, t in totals.items()},
        "total": {**{k: _m(v) for k, v in every.items()},
                  "items": sum(t["items"] for t in totals.values())},
        "published_lines": {c: {k: _m(v) for k, v in p.items()} for c, p in published.items()},
        "adds_up": adds_up,
    }


async def settlement(conn: asyncpg.Connection, agency: str | None,
                     settlement_id: str) -> dict[str, Any]:
    """A settlement's items (and refunds) as cleared; only those `agency` is a party to
    (all for the auditor, `agency` None). Raises NotFound, or Forbidden when the
    settlement exists but is not this agency's."""
    found = await queries.settlement_items(conn, settlement_id)
    if not found:
        raise NotFound(f"no cleared settlement {settlement_id}")
    visible = [i for i in found if agency is None or agency in (i.care_agency,
                                                                i.insured_agency)]
    if not visible:
        raise Forbidden(settlement_id)
    viewer = agency or visible[0].insured_agency
    return {"settlement_id": settlement_id,
            "items": [item_document(i, viewer) for i in visible]}


# ---- charts' data ----------------------------------------------------------------------------


async def nets_over_cycles(conn: asyncpg.Connection, agency: str | None
                           ) -> list[tuple[str, str, Decimal]]:
    """(cycle, agency, net) of every statement (of `agency` when given)."""
    latest = {(s.cycle, s.agency): s.net for s in await queries.statements(conn, agency)}
    return [(c, a, n) for (c, a), n in sorted(latest.items())]


async def flows(conn: asyncpg.Connection, agency: str | None, cycle: str
                ) -> tuple[list[tuple[str, Decimal]], str, list[tuple[str, Decimal]]]:
    """Left, centre and right of a flow diagram. The auditor: payers → hub → receivers;
    an agency: its counterparts' debts to it → the agency → its debts to them."""
    if agency is None:
        found = await queries.instructions(conn, cycle)
        into = [(i.payer, i.amount) for i in found if i.payee == HUB]
        out = [(i.payee, i.amount) for i in found if i.payer == HUB]
        return sorted(into), HUB, sorted(out)
    s = await queries.statement(conn, agency, cycle)
    if s is None:
        raise NotFound(f"no statement of cycle {cycle} was issued to {agency}")
    owed_to = [(ln.counterpart, ln.receivable) for ln in s.lines if ln.receivable > 0]
    owes = [(ln.counterpart, ln.payable) for ln in s.lines if ln.payable > 0]
    return owed_to, agency, owes


async def daily_volumes(conn: asyncpg.Connection, cycle: str, agency: str | None
                        ) -> list[tuple[date, int, Decimal]]:
    return await queries.daily_volumes(conn, cycle, agency)


# ---- the auditor -----------------------------------------------------------------------------


def last_replay(cache: Path, database: str) -> dict[str, Any] | None:
    """What ``clearinghouse audit replay`` recorded last (``<cache>/last-audit.json``): its
    verdict, and whether it replayed this portal's database (`database`, a name)."""
    path = cache / "last-audit.json"
    if not path.exists():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"error": f"cannot read {path}"}
    live = str(report.get("live_database", ""))
    return {"recorded_at": report.get("recorded_at"), "match": report.get("match"),
            "prefix": report.get("prefix"), "live_database": live,
            "this_database": urlsplit(live).path.strip("/") == database,
            "differences_total": report.get("differences_total"),
            "notes": report.get("notes", []),
            "tables": [{"table": t.get("table"), "match": t.get("match")}
                       for t in report.get("tables", [])]}


#: The last ledger check, by database and postings fingerprint (the ledgers are append-only),
#: reused for at most CHECK_SECONDS so that a row changed behind the service's back is found
#: within that time even when nothing was appended.
_last_check: dict[tuple[str, int, int], tuple[float, dict[str, Any]]] = {}
CHECK_SECONDS = 60.0


async def ledger_check(conn: asyncpg.Connection, database: str,
                       fresh: bool = False) -> dict[str, Any]:
    """`clearinghouse clearing check`: the ledger invariants and hash chains."""
    key = (database, *await queries.postings_fingerprint(conn))
    now = time.monotonic()
    if fresh or key not in _last_check or now - _last_check[key][0] > CHECK_SECONDS:
        rows = await queries.postings(conn)
        results = queries.check_ledgers(rows)
        failures = [f"{r.name}: {p}" for r in results for p in r.problems]
        _last_check.clear()
        _last_check[key] = (now, {
            "ok": not failures, "postings": len(rows), "ledgers": len({p.agency for p in rows}),
            "first_failure": failures[0] if failures else None,
            "checks": [{"name": r.name, "ok": not r.problems, "problems": r.problems}
                       for r in results]})
    return _last_check[key][1]


async def audit(conn: asyncpg.Connection, cache: Path, fresh: bool = False) -> dict[str, Any]:
    """Every agency's statements, the ledger check (`clearing check`), and the last audit
    replay's report when one was recorded (``<cache>/last-audit.json``)."""
    database = await conn.fetchval("SELECT current_database()")
    check = await ledger_check(conn, database, fresh)
    state = await queries.state(conn)
    found = await queries.statements(conn)
    latest = {(s.cycle, s.agency): s for s in found}
    return {
        "business_day": state.today.isoformat() if state.today else None,
        "statements": [statement_document(s, state) for _, s in sorted(latest.items())],
        "instructions": await instructions(conn),
        "open_disputes": state.open_disputes(),
        "check": check,
        "last_replay": last_replay(cache, database),
    }
