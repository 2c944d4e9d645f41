"""`clearinghouse clearing statements|instructions|notices|balances|check`: read commands.

For agencies, hospitals and auditors: what the clearing service published and what its
ledgers hold, as a table (rich) or as JSON (``--json``). They read the clearing schema of
``--database-url`` (default: ``DATABASE_URL``) through a read-only connection.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from cli.presentation import console, print_json, table
from services.clearing import queries
from shared import business_time
from shared.config import load_settings

Run = Callable[[Any, argparse.Namespace], Awaitable[int]]


def add_actions(actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the read commands under ``clearinghouse clearing``."""
    statements = _action(actions, "statements", "monthly statements issued", _statements)
    statements.add_argument("--agency", help="only this agency's statements")
    statements.add_argument("--cycle", help="only this cycle (YYYY-MM)")
    instructions = _action(actions, "instructions",
                           "net-transfer instructions, with what has been paid", _instructions)
    instructions.add_argument("--cycle", help="only this cycle (YYYY-MM)")
    instructions.add_argument("--agency", help="only instructions of this agency")
    notices = _action(actions, "notices", "difference notices (re-settlements)", _notices)
    notices.add_argument("--agency", help="only notices addressed to this agency")
    balances = _action(actions, "balances",
                       "an agency's ledger balances at any past moment", _balances)
    balances.add_argument("--agency", required=True, help="the ledger (an agency code or hub)")
    balances.add_argument("--as-of", type=business_time.parse_moment,
                          help="business time: YYYY-MM-DD (end of that day, Asia/Shanghai) "
                               "or an ISO time; default: everything posted")
    balances.add_argument("--cycle", help="only postings cleared in this cycle")
    _action(actions, "check", "verify the ledger invariants and hash chains; exit 1 naming "
                              "the first failure", _check)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """COMMAND_MODULES hook: make sure the read commands sit under ``clearing`` (they are added
    by services/clearing/cli.py; this only adds them when that parser lacks them)."""
    clearing = sub.choices.get("clearing")
    if clearing is None:
        return
    for action in clearing._actions:
        if isinstance(action, argparse._SubParsersAction) and "check" not in action.choices:
            add_actions(action)


def _action(actions: argparse._SubParsersAction, name: str, help: str,  # type: ignore[type-arg]
            run: Run) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help, description=help)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--database-url", help="default: DATABASE_URL")
    parser.set_defaults(run=lambda args: _main(run, args))
    return parser


def _main(run: Run, args: argparse.Namespace) -> int:
    url = args.database_url or load_settings().database_url

    async def go() -> int:
        conn = await queries.connect(url)
        try:
            return await run(conn, args)
        finally:
            await conn.close()

    return asyncio.run(go())


# ---- output ---------------------------------------------------------------------------------


# ---- the commands ---------------------------------------------------------------------------


async def _statements(conn: Any, args: argparse.Namespace) -> int:
    found = await queries.statements(conn, args.agency, args.cycle)
    if args.json:
        print_json([s.model_dump(mode="json") for s in found])
        return 0
    out = console()
    out.print(table("Statements", [
        "cycle", "agency", "receivable", "payable", "adjustments", "net", "disputed",
        "chain seq", "checksum"],
        [(s.cycle, s.agency, s.receivable, s.payable, s.adjustments, s.net,
          ",".join(s.disputed_settlement_ids), s.chain_sequence, s.checksum[:12])
         for s in found], numeric=("receivable", "payable", "adjustments", "net")))
    out.print(table("Statement lines", [
        "cycle", "agency", "counterpart", "receivable", "#", "payable", "#", "adjustments",
        "#", "net"],
        [(s.cycle, s.agency, ln.counterpart, ln.receivable, ln.receivable_count, ln.payable,
          ln.payable_count, ln.adjustments, ln.adjustment_count, ln.net)
         for s in found for ln in s.lines],
        numeric=("receivable", "payable", "adjustments", "net", "#")))
    return 0


async def _instructions(conn: Any, args: argparse.Namespace) -> int:
    found = await queries.instructions(conn, args.cycle, args.agency)
    paid = await queries.instruction_states(conn)
    late = await queries.overdue(conn)
    rows = []
    for i in found:
        done = paid[i.instruction_id].paid if i.instruction_id in paid else Decimal("0.00")
        rows.append({**i.model_dump(mode="json"), "paid": str(done),
                     "outstanding": str(i.amount - done),
                     "overdue": i.instruction_id in late})
    if args.json:
        print_json(rows)
        return 0
    console().print(table("Net-transfer instructions", [
        "instruction", "cycle", "payer", "payee", "amount", "due on", "paid", "outstanding",
        "overdue"],
        [(r["instruction_id"], r["cycle"], r["payer"], r["payee"], Decimal(r["amount"]),
          r["due_on"], Decimal(r["paid"]), Decimal(r["outstanding"]),
          "yes" if r["overdue"] else "") for r in rows],
        numeric=("amount", "paid", "outstanding")))
    return 0


async def _notices(conn: Any, args: argparse.Namespace) -> int:
    found = await queries.notices(conn, args.agency)
    if args.json:
        print_json([n.model_dump(mode="json", exclude_none=True) for n in found])
        return 0
    console().print(table("Difference notices", [
        "agency", "hospital", "original", "settlement", "original cycle", "cycle",
        "carried into", "fund", "account", "cash", "cleared"],
        [(n.agency, n.hospital, n.original_settlement_id, n.settlement_id, n.original_cycle,
          n.cycle, n.carried_into, n.fund_pay, n.account_pay, n.cash_pay, n.cleared_amount)
         for n in found], numeric=("fund", "account", "cash", "cleared")))
    return 0


async def _balances(conn: Any, args: argparse.Namespace) -> int:
    rows = await queries.postings(conn, args.agency)
    lines = queries.balance_lines(rows, args.agency, args.as_of, args.cycle)
    if args.json:
        print_json({"agency": args.agency,
                    "as_of": args.as_of.isoformat() if args.as_of else None,
                    "cycle": args.cycle,
                    "balances": [{"account": b.account, "counterpart": b.counterpart,
                                  "balance": str(b.balance), "normal": str(b.normal)}
                                 for b in lines]})
        return 0
    when = f" as of {args.as_of.isoformat()}" if args.as_of else ""
    console().print(table(
        f"Ledger of {args.agency}{when}" + (f", cycle {args.cycle}" if args.cycle else ""),
        ["account", "counterpart", "debit balance", "normal-side balance"],
        [(b.account, b.counterpart, b.balance, b.normal) for b in lines],
        numeric=("debit balance", "normal-side balance")))
    return 0


async def _check(conn: Any, args: argparse.Namespace) -> int:
    rows = await queries.postings(conn)
    results = queries.check_ledgers(rows)
    failures = [(r.name, p) for r in results for p in r.problems]
    first = f"{failures[0][0]}: {failures[0][1]}" if failures else None
    if args.json:
        print_json({"ok": not failures, "postings": len(rows),
                    "ledgers": len({p.agency for p in rows}), "first_failure": first,
                    "checks": [{"name": r.name, "ok": not r.problems, "problems": r.problems}
                               for r in results]})
    else:
        out = console()
        out.print(table(f"Ledger checks over {len(rows)} postings",
                        ["check", "result", "violations"],
                        [(r.name, "ok" if not r.problems else "FAILED", len(r.problems))
                         for r in results], numeric=("violations",)))
        out.print(f"first failure: {first}" if first else "all ledger invariants hold")
    if first:
        print(f"check failed: {first}", file=sys.stderr)
    return 1 if failures else 0
