"""What the demo shows: counts, each agency's statement, the instructions through the hub,
the difference notices, and checks of the results and of the ledgers (rich tables, or one
JSON document with money as strings). The exit status is 0 only when every check holds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.clearing.domain import chain, cycles, ledger
from services.clearing.domain.ledger import EntryKind, Posting, Side
from services.clearing.domain.periods import STATEMENTS_DAY, cycle_of, milestone
from shared import topics
from shared.business_time import business_date
from shared.db import redact_url
from shared.events.clearing import DifferenceNotice, NetTransferInstruction, StatementIssued
from shared.events.settlement import SettlementCompleted
from shared.money import ZERO, format_money
from shared.reference import ReferenceData
from tools.demo import checks as demo_checks
from tools.demo.run import FILING_ANSWERS, Outcome, Steps, cross_items, late_payer

RESULTS = topics.CLEARING_RESULTS


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


class RichSteps(Steps):
    """Progress bars on the terminal (stderr), one per step of the run."""

    LABELS = {"filings": "filings answered", "days": "calendar days",
              "settlements": "settlements, refunds"}

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    @staticmethod
    def progress_bars(console: Console) -> Progress:
        return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)

    def start(self, name: str, total: int) -> None:
        self.tasks[name] = self.progress.add_task(self.LABELS.get(name, name), total=total)

    def advance(self, name: str, amount: int = 1, description: str | None = None) -> None:
        self.progress.update(self.tasks[name], advance=amount, description=description)


# ---- the summary ----------------------------------------------------------------------------


def summarize(outcome: Outcome, reference: ReferenceData, wall_seconds: float) -> dict[str, Any]:
    """The whole result as plain data (what ``--json`` prints)."""
    month = outcome.province.month
    statements = sorted((s for s in outcome.of(RESULTS, "clearing.statement_issued")
                         if s.cycle == month), key=lambda s: s.agency)
    instructions = sorted((i for i in outcome.of(RESULTS, "clearing.net_transfer_instruction")
                           if i.cycle == month), key=lambda i: i.instruction_id)
    notices = outcome.of(RESULTS, "clearing.difference_notice")
    counted = counts(outcome)
    checks = run_checks(outcome, counted, statements, instructions, notices)
    ns = outcome.namespace
    names = {code: agency.name for code, agency in reference.agencies.items()} | {"hub": "省平台"}
    return {
        "ok": all(c.ok for c in checks),
        "seed": outcome.province.seed,
        "month": month,
        "wall_seconds": round(wall_seconds, 1),
        "phase_seconds": {k: round(v, 1) for k, v in outcome.seconds.items()},
        "namespace": {"topic_prefix": ns.topic_prefix, "database": ns.database,
                      "database_url": redact_url(ns.database_url),
                      "kafka_bootstrap_servers": ns.kafka_bootstrap_servers,
                      "logs": str(ns.logs)},
        "generated": outcome.province.outline(),
        "counts": counted,
        "statements": [{"agency": s.agency, "name": names.get(s.agency, ""),
                        "receivable": format_money(s.receivable),
                        "payable": format_money(s.payable),
                        "adjustments": format_money(s.adjustments), "net": format_money(s.net),
                        "items": sum(ln.receivable_count + ln.payable_count
                                     + ln.adjustment_count for ln in s.lines),
                        "counterparts": len(s.lines), "checksum": s.checksum}
                       for s in statements],
        "instructions": [{"instruction_id": i.instruction_id, "payer": i.payer,
                          "payee": i.payee, "amount": format_money(i.amount),
                          "due_on": i.due_on.isoformat()} for i in instructions],
        "difference_notices": [
            {"agency": n.agency, "original_settlement_id": n.original_settlement_id,
             "settlement_id": n.settlement_id, "hospital": n.hospital,
             "insured_agency": n.insured_agency, "care_agency": n.care_agency,
             "original_cycle": n.original_cycle, "cycle": n.cycle,
             "carried_into": n.carried_into, "fund_pay": format_money(n.fund_pay),
             "account_pay": format_money(n.account_pay), "cash_pay": format_money(n.cash_pay),
             "cleared_amount": format_money(n.cleared_amount)} for n in notices],
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "problems": list(outcome.problems),
    }


def counts(outcome: Outcome) -> dict[str, Any]:
    """What was sent and what the services answered."""
    filing = Counter(e.type for e in outcome.events[topics.FILING_EVENTS])
    kinds = Counter(e.type for e in outcome.events[topics.SETTLEMENT_EVENTS])
    completed = outcome.of(topics.SETTLEMENT_EVENTS, "settlement.completed")
    sent = outcome.published
    refunds_requested = sent["settlement.refund_requested"]
    answered_refunds = kinds["settlement.refunded"] + kinds["settlement.refund_rejected"]
    return {
        "filings_requested": sent["filing.requested"],
        "filings_registered": filing["filing.registered"],
        "filings_rejected": filing["filing.rejected"],
        "filing_rejection_reasons": _reasons(outcome, topics.FILING_EVENTS, "filing.rejected"),
        "benefit_suspensions": filing["benefit.status_changed"],
        "filings_expired": filing["filing.expired"],
        "settlements_submitted": sent["settlement.submitted"],
        "settlements_completed": len(completed),
        "settlements_rejected": kinds["settlement.rejected"],
        "settlement_rejection_reasons": _reasons(outcome, topics.SETTLEMENT_EVENTS,
                                                 "settlement.rejected"),
        "cross_region_completed": sum(c.insured_agency != c.care_agency for c in completed),
        "by_tier": {str(t): n for t, n in sorted(Counter(c.tier for c in completed).items())},
        "refunds_requested": refunds_requested,
        "refunds": kinds["settlement.refunded"],
        "refunds_rejected": kinds["settlement.refund_rejected"],
        "resettlements": sum(c.resettles is not None for c in completed),
        "held": refunds_requested - answered_refunds,
        "daily_reports": len(outcome.of(RESULTS, "clearing.daily_report")),
        "total": format_money(sum((c.total for c in completed), ZERO)),
        "fund_pay": format_money(sum((c.fund_pay for c in completed), ZERO)),
        "account_pay": format_money(sum((c.account_pay for c in completed), ZERO)),
        "cash_pay": format_money(sum((c.cash_pay for c in completed), ZERO)),
        "cleared_amount": format_money(sum((c.cleared_amount for c in completed), ZERO)),
        "serious_illness_pay": format_money(sum((c.serious_illness_pay or ZERO
                                                 for c in completed), ZERO)),
        "medical_assistance_pay": format_money(sum((c.medical_assistance_pay or ZERO
                                                    for c in completed), ZERO)),
        "with_other_payers": sum(bool(c.other_payers_pay) for c in completed),
        "revolving_fund": _fund_counts(outcome),
        "supervisions": len(outcome.of(topics.FILING_EVENTS, "filing.supervision_imposed")),
        "reimbursements_approved": len(approved := outcome.of(
            topics.REIMBURSEMENT_EVENTS, "reimbursement.approved")),
        "reimbursed": format_money(sum((a.fund_pay for a in approved), ZERO)),
    }


def _fund_counts(outcome: Outcome) -> dict[str, Any]:
    def of(kind: str) -> list[Any]:
        return outcome.of(RESULTS, f"clearing.revolving_fund_{kind}")
    return {
        "funds": len(of("opened")),
        "draws": [f"{d.agency} {format_money(d.amount)}" for d in of("drawn")],
        "warnings": sorted({f"{w.agency} at {format_money(w.balance)}" for w in of("warning")}),
        "top_ups": [f"{t.agency} {format_money(t.amount)}" for t in of("top_up_accepted")],
        "repaid": [f"{r.agency} {format_money(r.amount)}" for r in of("repaid")],
        "interest_days": len(of("interest_accrued")),
        "interest_accrued": format_money(sum((e.interest for e in of("interest_accrued")), ZERO)),
    }


def _reasons(outcome: Outcome, topic: str, kind: str) -> dict[str, int]:
    found = Counter(r.code for refused in outcome.of(topic, kind) for r in refused.reasons)
    return dict(sorted(found.items()))


# ---- checks ---------------------------------------------------------------------------------


def run_checks(outcome: Outcome, counted: dict[str, Any], statements: list[StatementIssued],
               instructions: list[NetTransferInstruction],
               notices: list[DifferenceNotice]) -> list[Check]:
    """Each check names what must hold and, when it does not, what was found instead."""
    postings = outcome.postings
    month = outcome.province.month
    found: list[tuple[str, Callable[[], list[str]]]] = [
        ("every step answered in time", lambda: list(outcome.problems)),
        ("every filing and submission answered", lambda: _answered(outcome, counted)),
        ("statements issued; nets sum to zero",
         lambda: ([] if statements else [f"no statement of {month}"])
         + cycles.check_nets_sum_to_zero(statements)),
        ("hub takes in what it pays out; each agency moves its net",
         lambda: cycles.check_hub_pays_out_what_it_takes_in(instructions)
         + _instructions_match(statements, instructions)),
        ("every completed settlement cleared exactly once",
         lambda: _cleared_once(outcome, statements)),
        ("ledger: every entry balances", lambda: ledger.check_entries_balance(postings)),
        ("ledger: A's receivable from B = B's payable to A",
         lambda: ledger.check_reciprocity(postings)),
        ("ledger: hub nets to zero, never overdrawn",
         lambda: ledger.check_hub_nets_to_zero(postings)
         + ledger.check_hub_never_overdrawn(postings)),
        ("ledger: hash chains intact", lambda: _chains(postings)),
        (f"{month} paid, distributed and closed", lambda: _closed(outcome, statements)),
        ("a difference notice for every re-settlement", lambda: _notices(outcome, notices)),
        ("revolving fund: the late payer's remittance advanced, warned, topped up, repaid",
         lambda: demo_checks.late_payer_fund(outcome, instructions)),
        ("revolving fund: interest accrued each day, to the fen; ledgers match",
         lambda: demo_checks.fund_interest_and_ledgers(outcome)),
        ("supervision: settlements during the stop refused",
         lambda: demo_checks.supervision_refusals(outcome)),
        ("manual reimbursement: each refused bill claimed and approved, never cleared",
         lambda: demo_checks.reimbursements(outcome)),
    ]
    checks = []
    for name, check in found:
        problems = check()
        checks.append(Check(name, not problems, "; ".join(problems[:3])
                            + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")))
    return checks


def _answered(outcome: Outcome, counted: dict[str, Any]) -> list[str]:
    problems = []
    answers = len(outcome.of(topics.FILING_EVENTS, *FILING_ANSWERS))
    if answers != len(outcome.province.filing_commands):
        problems.append(f"{len(outcome.province.filing_commands)} filing commands, "
                        f"{answers} answers")
    settled = counted["settlements_completed"] + counted["settlements_rejected"]
    if settled != counted["settlements_submitted"]:
        problems.append(f"{counted['settlements_submitted']} settlements submitted, "
                        f"{settled} answered")
    if counted["held"]:
        problems.append(f"{counted['held']} refund(s) held without an answer")
    return problems


def _instructions_match(statements: list[StatementIssued],
                        instructions: list[NetTransferInstruction]) -> list[str]:
    moved: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for i in instructions:
        moved[i.payee] += i.amount
        moved[i.payer] -= i.amount
    return [f"{s.agency}: net {s.net}, instructions move {moved[s.agency]}"
            for s in statements if moved[s.agency] != s.net]


def _cleared_once(outcome: Outcome, statements: list[StatementIssued]) -> list[str]:
    """Statement counts against the settlements of the month, and ledger entries against
    every completed settlement between two agencies."""
    month, problems = outcome.province.month, []
    statements_day = milestone(month, STATEMENTS_DAY)
    items = cross_items(outcome.events[topics.SETTLEMENT_EVENTS])
    completed = [i for i in items if isinstance(i, SettlementCompleted)]
    in_cycle = sum(cycle_of(i.settled_at) == month and (
        isinstance(i, SettlementCompleted) or business_date(i.refunded_at) < statements_day)
                   for i in items)
    for side in ("receivable_count", "payable_count"):
        counted = sum(getattr(ln, side) for s in statements for ln in s.lines)
        if counted != in_cycle:
            problems.append(f"statements of {month} count {counted} items ({side}); the month "
                            f"has {in_cycle} settlements and refunds between agencies")
    entries: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for p in outcome.postings:
        if p.kind is EntryKind.SETTLEMENT and p.side is Side.DEBIT and p.settlement_id:
            entries[p.settlement_id][p.agency] += p.amount
    for c in completed:
        posted = entries.pop(c.settlement_id, {})
        # what is cleared: the fund's and the account's share, and the further payers'
        owed = c.cleared_amount + c.other_payers_pay
        wanted = {c.insured_agency: owed, c.care_agency: owed} if owed else {}
        if dict(posted) != wanted:
            problems.append(f"{c.settlement_id}: cleared {owed}, ledgers show "
                            f"{dict(posted) or 'nothing'}")
    problems += [f"{sid}: posted but never completed" for sid in sorted(entries)]
    return problems


def _chains(postings: list[Posting]) -> list[str]:
    by_agency: dict[str, list[Posting]] = defaultdict(list)
    for p in postings:
        by_agency[p.agency].append(p)
    broken = {a: chain.verify_chain(sorted(ps, key=lambda p: p.sequence))
              for a, ps in sorted(by_agency.items())}
    return [f"{a}: chain breaks at posting {i}" for a, i in broken.items() if i is not None]


def _closed(outcome: Outcome, statements: list[StatementIssued]) -> list[str]:
    month = outcome.province.month
    closed = {c.agency: c.net for c in outcome.of(RESULTS, "clearing.cycle_closed")
              if c.cycle == month}
    problems = [f"{s.agency}: not closed" if s.agency not in closed else
                f"{s.agency}: closed with {closed[s.agency]}, statement net {s.net}"
                for s in statements if closed.get(s.agency) != s.net]
    late = late_payer(i for i in outcome.of(RESULTS, "clearing.net_transfer_instruction")
                      if i.cycle == month)
    problems += [f"remittance overdue: {o.instruction_id}"
                 for o in outcome.of(RESULTS, "clearing.remittance_overdue")
                 if o.payer != late]  # the demo's late payer is checked with its fund
    problems += [f"{r.agency}'s {r.submission_type} refused: {r.reasons[0].get('code')}"
                 for r in outcome.of(RESULTS, "clearing.submission_rejected")]
    return problems + ledger.check_cycle_settled(outcome.postings, month)


def _notices(outcome: Outcome, notices: list[DifferenceNotice]) -> list[str]:
    completed = {c.settlement_id: c for c in cross_items(outcome.events[topics.SETTLEMENT_EVENTS])
                 if isinstance(c, SettlementCompleted)}
    told = defaultdict(dict)  # type: dict[str, dict[str, DifferenceNotice]]
    for n in notices:
        told[n.settlement_id][n.agency] = n
    problems = []
    for new in completed.values():
        if new.resettles is None:
            continue
        original = completed.get(new.resettles)
        got = told.get(new.settlement_id, {})
        if set(got) != {new.insured_agency, new.care_agency}:
            problems.append(f"{new.settlement_id}: notices to {sorted(got)}")
        elif original is not None and any(
                n.cleared_amount != new.cleared_amount - original.cleared_amount
                or n.fund_pay != new.fund_pay - original.fund_pay for n in got.values()):
            problems.append(f"{new.settlement_id}: the notice's difference is not new − "
                            "original")
    if not any(c.resettles for c in completed.values()):
        problems.append("no re-settlement completed")
    return problems


# ---- rendering ------------------------------------------------------------------------------


def _yuan(text: str) -> str:
    return f"{Decimal(text):,.2f}"


def _tally(counted: dict[str, int]) -> str:
    return ", ".join(f"{code} {n}" for code, n in counted.items())


def render(summary: dict[str, Any], console: Console) -> None:
    """The summary as tables on the terminal."""
    ns, c = summary["namespace"], summary["counts"]
    console.print(f"\n[bold]Demo {summary['month']}[/] · seed {summary['seed']} · "
                  f"{summary['wall_seconds']} s\ntopics [cyan]{ns['topic_prefix']}*[/] · "
                  f"database [cyan]{ns['database']}[/] · logs {ns['logs']}")
    table = Table(title="What happened", show_header=False, title_justify="left",
                  box=box.SIMPLE)
    rows: Iterable[tuple[str, Any]] = (
        ("filings registered / rejected", f"{c['filings_registered']} / "
         f"{c['filings_rejected']}  {_tally(c['filing_rejection_reasons'])}"),
        ("benefit suspensions", c["benefit_suspensions"]),
        ("settlements completed / rejected", f"{c['settlements_completed']} / "
         f"{c['settlements_rejected']}  {_tally(c['settlement_rejection_reasons'])}"),
        ("  between two agencies", c["cross_region_completed"]),
        ("  by tier", "  ".join(f"tier {t}: {n}" for t, n in c["by_tier"].items())),
        ("refunds / rejected / held", f"{c['refunds']} / {c['refunds_rejected']} / {c['held']}"),
        ("re-settlements", c["resettlements"]),
        ("daily reports", c["daily_reports"]),
        ("billed", _yuan(c["total"])),
        ("fund / account / cash",
         f"{_yuan(c['fund_pay'])} / {_yuan(c['account_pay'])} / {_yuan(c['cash_pay'])}"),
        ("cleared between agencies", _yuan(c["cleared_amount"])),
        ("serious illness / assistance", f"{_yuan(c['serious_illness_pay'])} / "
         f"{_yuan(c['medical_assistance_pay'])}  ({c['with_other_payers']} settlements; "
         "cleared with the fund's share)"),
        ("revolving funds: draws / warnings",
         f"{', '.join(c['revolving_fund']['draws']) or '-'} / "
         f"{', '.join(c['revolving_fund']['warnings']) or '-'}"),
        ("  top-ups / repaid", f"{', '.join(c['revolving_fund']['top_ups']) or '-'} / "
                               f"{', '.join(c['revolving_fund']['repaid']) or '-'}"),
        ("  interest accrued", f"{_yuan(c['revolving_fund']['interest_accrued'])} "
                               f"({c['revolving_fund']['interest_days']} fund-days)"),
        ("supervision stops", c["supervisions"]),
        ("manual reimbursements approved", f"{c['reimbursements_approved']}: "
                                           f"{_yuan(c['reimbursed'])} paid back"),
    )
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
    _money_table(console, f"Statements of {summary['month']} (issued on the 2nd)",
                 ["agency", "receivable", "payable", "adjustments", "net", "items"],
                 [[f"{s['agency']} {s['name']}", s["receivable"], s["payable"], s["adjustments"],
                   s["net"], str(s["items"])] for s in summary["statements"]], money=(1, 2, 3, 4))
    _money_table(console, "Net-transfer instructions through the hub",
                 ["instruction", "payer", "payee", "amount", "due"],
                 [[i["instruction_id"], i["payer"], i["payee"], i["amount"], i["due_on"]]
                  for i in summary["instructions"]], money=(3,))
    copies = [n for n in summary["difference_notices"] if n["agency"] == n["insured_agency"]]
    _money_table(console, f"Difference notices, new − original ({len(copies)} re-settlements, "
                          "each told to both agencies)",
                 ["re-settlement", "insured → care", "months", "fund", "account", "cash",
                  "cleared"],
                 [[f"{n['settlement_id']} (of {n['original_settlement_id'].rsplit('-', 1)[-1]})",
                   f"{n['insured_agency']} → {n['care_agency']}",
                   f"{n['original_cycle'][5:]} → {n['cycle'][5:]}"
                   + (" carried" if n["carried_into"] else ""),
                   n["fund_pay"], n["account_pay"], n["cash_pay"], n["cleared_amount"]]
                  for n in copies[:12]], money=(3, 4, 5, 6))
    if len(copies) > 12:
        console.print(f"  … and {len(copies) - 12} more re-settlements (--json lists them all)")
    checks = Table(title="Checks", show_header=False, title_justify="left", box=box.SIMPLE)
    for check in summary["checks"]:
        checks.add_row("[green]✓[/]" if check["ok"] else "[red]✗[/]", check["name"],
                       check["detail"])
    console.print(checks)
    verdict = "[bold green]all checks hold[/]" if summary["ok"] else "[bold red]checks failed[/]"
    console.print(f"{verdict} · {summary['wall_seconds']} s\n")


def _money_table(console: Console, title: str, headers: list[str], rows: list[list[str]],
                 money: tuple[int, ...]) -> None:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for n, header in enumerate(headers):
        table.add_column(header, justify="right" if n in money else "left", no_wrap=n in money,
                         overflow="ellipsis" if n in money else "fold")
    for row in rows:
        table.add_row(*(_yuan(v) if n in money else v for n, v in enumerate(row)))
    console.print(table)
