"""`clearinghouse explain`: the settlements and refunds behind a figure.

    clearinghouse explain NTI-2026-10-220100-hub            an instruction's amount
    clearinghouse explain 220100 2026-10 [220200]           a statement's net (or one line)
    clearinghouse explain fund 220100                      a revolving fund's balance

A figure of the monthly clearing is the sum of the cycle's items between the parties: each
settlement adds its cleared amount to what the insuring agency owes the care agency, each
refund takes it back, and items carried from an earlier cycle count as adjustments. The
command lists those items with the event that caused each (source and id), adds them up
per counterpart, and sets the totals beside the published figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from cli.presentation import console, print_json, table
from services.clearing import queries
from services.clearing.domain.items import ClearingItem
from shared.business_time import in_business_zone
from shared.config import load_settings
from shared.events.clearing import HUB
from shared.money import ZERO
from tools.audit import fund_explain


@dataclass
class Totals:
    """One statement line recomputed from items (the same arithmetic as the statement)."""

    receivable: Decimal = ZERO
    payable: Decimal = ZERO
    adjustments: Decimal = ZERO
    items: int = 0

    @property
    def net(self) -> Decimal:
        return self.receivable - self.payable + self.adjustments

    def add(self, item: ClearingItem, agency: str) -> str:
        """Count an item; return how it counts (receivable, payable or adjustment)."""
        self.items += 1
        receiving = item.care_agency == agency
        if item.is_adjustment:
            self.adjustments += item.signed_amount if receiving else -item.signed_amount
            return "adjustment"
        if receiving:
            self.receivable += item.signed_amount
            return "receivable"
        self.payable += item.signed_amount
        return "payable"


@dataclass
class Explanation:
    subject: str
    agency: str
    cycle: str
    counterpart: str | None
    #: The published figure and what it is (an instruction's amount, a statement's net).
    figure: Decimal
    figure_name: str
    #: How the figure follows from the agency's net: 1 (a net, or the hub paying it) or
    #: -1 (the agency paying the hub).
    sign: int
    items: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Totals] = field(default_factory=dict)
    published: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def net(self) -> Decimal:
        return sum((t.net for t in self.totals.values()), ZERO)

    @property
    def adds_up(self) -> bool:
        lines_agree = all(
            {k: Decimal(v) for k, v in self.published[c].items()} == _figures(t)
            for c, t in self.totals.items() if c in self.published)
        return self.sign * self.net == self.figure and lines_agree


def _figures(t: Totals) -> dict[str, Decimal]:
    return {"receivable": t.receivable, "payable": t.payable, "adjustments": t.adjustments,
            "net": t.net}


async def _build(conn: asyncpg.Connection, explanation: Explanation) -> Explanation:
    statement = await queries.statement(conn, explanation.agency, explanation.cycle)
    if statement is not None:
        explanation.published = {
            ln.counterpart: {k: str(v) for k, v in (
                ("receivable", ln.receivable), ("payable", ln.payable),
                ("adjustments", ln.adjustments), ("net", ln.net))}
            for ln in statement.lines
            if explanation.counterpart in (None, ln.counterpart)}
    agency = explanation.agency
    items = await queries.cycle_items(conn, explanation.cycle, agency, explanation.counterpart)
    for item in sorted(items, key=lambda i: (_counterpart(i, agency), i.business_time,
                                             i.item_id)):
        counterpart = _counterpart(item, agency)
        counts_as = explanation.totals.setdefault(counterpart, Totals()).add(item, agency)
        explanation.items.append({
            "counterpart": counterpart, "kind": item.kind.value,
            "settlement_id": item.settlement_id, "refund_id": item.refund_id,
            "hospital": item.hospital, "insured_agency": item.insured_agency,
            "care_agency": item.care_agency,
            "business_time": in_business_zone(item.business_time).isoformat(),
            "origin_cycle": item.origin_cycle, "counts_as": counts_as,
            "cleared_amount": str(item.cleared_amount),
            "effect": str(queries.net_effect(item, agency)),
            "cause_source": item.cause.source, "cause_id": item.cause.id})
    return explanation


def _counterpart(item: ClearingItem, agency: str) -> str:
    return item.insured_agency if item.care_agency == agency else item.care_agency


async def explain_instruction(conn: asyncpg.Connection, instruction_id: str) -> Explanation:
    found = await queries.instruction(conn, instruction_id)
    if found is None:
        raise LookupError(f"no net-transfer instruction {instruction_id} was issued; "
                          "see `clearinghouse clearing instructions`")
    agency = found.payee if found.payer == HUB else found.payer
    return await _build(conn, Explanation(
        subject=f"instruction {instruction_id}: {found.payer} pays {found.payee} "
                f"{found.amount} by {found.due_on}",
        agency=agency, cycle=found.cycle, counterpart=None, figure=found.amount,
        figure_name="amount", sign=1 if found.payer == HUB else -1))


async def explain_statement(conn: asyncpg.Connection, agency: str, cycle: str,
                            counterpart: str | None = None) -> Explanation:
    found = await queries.statement(conn, agency, cycle)
    if found is None:
        raise LookupError(f"no statement of cycle {cycle} was issued to {agency}; "
                          "see `clearinghouse clearing statements`")
    figure = found.net
    if counterpart is not None:
        line = next((ln for ln in found.lines if ln.counterpart == counterpart), None)
        if line is None:
            raise LookupError(f"the statement of {agency} for {cycle} has no line with "
                              f"{counterpart}")
        figure = line.net
    with_whom = f" with {counterpart}" if counterpart else ""
    return await _build(conn, Explanation(
        subject=f"statement of {agency} for {cycle}{with_whom}", agency=agency, cycle=cycle,
        counterpart=counterpart, figure=figure, figure_name="net", sign=1))


def to_json(e: Explanation) -> dict[str, Any]:
    every = Totals(
        sum((t.receivable for t in e.totals.values()), ZERO),
        sum((t.payable for t in e.totals.values()), ZERO),
        sum((t.adjustments for t in e.totals.values()), ZERO),
        sum(t.items for t in e.totals.values()))
    return {
        "subject": e.subject, "agency": e.agency, "cycle": e.cycle,
        "counterpart": e.counterpart,
        "figure": {"what": e.figure_name, "value": str(e.figure),
                   "from_net": "net" if e.sign == 1 else "-net"},
        "items": e.items,
        "totals": {c: _totals_json(t) for c, t in sorted(e.totals.items())},
        "total": _totals_json(every),
        "published_lines": e.published,
        "adds_up": e.adds_up,
    }


def _totals_json(t: Totals) -> dict[str, Any]:
    return {**{k: str(v) for k, v in _figures(t).items()}, "items": t.items}


# ---- the command ----------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "explain", help="the settlements and refunds behind an instruction or a statement",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="+", metavar="ARG",
                        help="an instruction id, or AGENCY CYCLE [COUNTERPART] "
                             "(optionally after the word `statement`), or `fund AGENCY`")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--database-url", help="default: DATABASE_URL")
    parser.set_defaults(run=_explain)


def _explain(args: argparse.Namespace) -> int:
    target = [t for t in args.target if t not in ("statement", "statement:")]
    url = args.database_url or load_settings().database_url
    if len(target) == 2 and target[0] == "fund":
        return _explain_fund(url, target[1], args.json)

    async def go() -> Explanation:
        conn = await queries.connect(url)
        try:
            if len(target) == 1:
                return await explain_instruction(conn, target[0])
            if len(target) in (2, 3):
                return await explain_statement(conn, *target)
            raise LookupError("give an instruction id, or AGENCY CYCLE [COUNTERPART]")
        finally:
            await conn.close()

    try:
        explanation = asyncio.run(go())
    except LookupError as exc:
        print(f"explain: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.json:
        print_json(to_json(explanation))
    else:
        _print(explanation)
    return 0 if explanation.adds_up else 1


def _explain_fund(url: str, agency: str, as_json: bool) -> int:
    async def go() -> fund_explain.FundExplanation:
        conn = await queries.connect(url)
        try:
            return await fund_explain.explain_fund(conn, agency)
        finally:
            await conn.close()

    try:
        explanation = asyncio.run(go())
    except LookupError as exc:
        print(f"explain: {exc.args[0]}", file=sys.stderr)
        return 2
    if as_json:
        print_json(fund_explain.to_json(explanation))
    else:
        fund_explain.print_fund(explanation)
    return 0 if explanation.adds_up else 1


def _print(e: Explanation) -> None:
    out = console()
    out.print(e.subject)
    out.print(table(f"Items of {e.cycle} between {e.agency} and "
                    f"{e.counterpart or 'its counterparts'}", [
        "counterpart", "kind", "settlement", "refund", "hospital", "business time",
        "origin", "counts as", "cleared", "effect on net", "cause"],
        [(i["counterpart"], i["kind"], i["settlement_id"], i["refund_id"], i["hospital"],
          i["business_time"], i["origin_cycle"], i["counts_as"], Decimal(i["cleared_amount"]),
          Decimal(i["effect"]), f"{i['cause_source']} {i['cause_id']}") for i in e.items],
        numeric=("cleared", "effect on net")))
    rows = []
    for counterpart, t in sorted(e.totals.items()):
        published = e.published.get(counterpart, {})
        rows.append((counterpart, t.items, t.receivable, t.payable, t.adjustments, t.net,
                     Decimal(published["net"]) if "net" in published else "(no line)"))
    every = to_json(e)["total"]
    rows.append(("total", every["items"], *(Decimal(every[k]) for k in (
        "receivable", "payable", "adjustments", "net")), ""))
    out.print(table("Totals", ["counterpart", "items", "receivable", "payable",
                               "adjustments", "net", "statement says"], rows,
                    numeric=("items", "receivable", "payable", "adjustments", "net",
                             "statement says")))
    how = "" if e.sign == 1 else "−(net) = "
    verdict = "adds up" if e.adds_up else "DOES NOT ADD UP"
    out.print(f"{e.figure_name} {e.figure}: {how}{e.sign * e.net} from {len(e.items)} "
              f"item(s): {verdict}")
