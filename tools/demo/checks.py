"""The demo's checks of the revolving fund and of supervision (issue 16): each returns the
problems found, empty when all holds (tools/demo/report.py runs them with the others)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from services.clearing.domain.fund import ledger_of
from services.clearing.domain.ledger import AccountKind
from services.clearing.fund_reference import load_fund_policy
from shared import topics
from shared.events.clearing import NetTransferInstruction
from shared.money import ZERO
from tools.demo.run import Outcome, late_payer, late_remittance_day

RESULTS = topics.CLEARING_RESULTS


def late_payer_fund(outcome: Outcome, instructions: list[NetTransferInstruction]) -> list[str]:
    """The largest payer remits after the 15th: overdue once, its fund advances the
    remittance (and warns when at or below the threshold: agency and province), it tops up
    by the shortfall, and the late remittance pays the fund back exactly what it advanced."""
    late = late_payer(instructions)
    if late is None:
        return ["no net payer: nothing to pay late"]
    day = late_remittance_day(outcome.province.month)
    policy = load_fund_policy()
    problems = []
    overdue = [o.payer for o in outcome.of(RESULTS, "clearing.remittance_overdue")]
    if overdue != [late]:
        problems.append(f"overdue: {overdue}, expected only the late payer {late}")
    drawn = [d for d in outcome.of(RESULTS, "clearing.revolving_fund_drawn") if d.agency == late]
    if len(drawn) != 1 or drawn[0].date != day:
        return problems + [f"{late}: {len(drawn)} draw(s), expected one on {day}"]
    warnings = [w for w in outcome.of(RESULTS, "clearing.revolving_fund_warning")
                if w.agency == late]
    terms = policy.funds.get(late) if policy else None
    if policy is None or terms is None:
        return problems + [f"{late}: keeps no revolving fund"]
    threshold = policy.threshold(terms.required_level)
    if drawn[0].balance > threshold:  # a small month: the advance leaves the fund above it
        if warnings:
            problems.append(f"{late}: warned at {drawn[0].balance}, above {threshold}")
    elif len(warnings) != 2 or any(w.balance != drawn[0].balance or w.threshold != threshold
                                   for w in warnings):
        problems.append(f"{late}: warnings {[(w.balance, w.threshold) for w in warnings]}; "
                        f"expected one to the agency and one to the province at "
                        f"{drawn[0].balance} (threshold {threshold})")
    topped = [t.amount for t in outcome.of(RESULTS, "clearing.revolving_fund_top_up_accepted")
              if t.agency == late]
    if topped != [w.shortfall for w in warnings[:1]]:
        problems.append(f"{late}: top-ups {topped}, the warning's shortfall "
                        f"{[w.shortfall for w in warnings[:1]]}")
    repaid = sum((r.amount for r in outcome.of(RESULTS, "clearing.revolving_fund_repaid")
                  if r.agency == late), ZERO)
    if repaid != drawn[0].amount:
        problems.append(f"{late}: repaid {repaid} of {drawn[0].amount} advanced")
    return problems


def fund_interest_and_ledgers(outcome: Outcome) -> list[str]:
    """Every fund accrues interest for every day from the 1st to the day before the last
    calendar day, each day balance × rate / day count to the fen; each fund's ledger balance
    is the balance its last result reported."""
    policy = load_fund_policy()
    if policy is None:
        return ["no revolving funds in the reference data"]
    problems = []
    accrued = defaultdict(list)
    for event in outcome.of(RESULTS, "clearing.revolving_fund_interest_accrued"):
        accrued[event.agency].append(event)
        if event.interest != policy.daily_interest(event.balance):
            problems.append(f"{event.agency} {event.date}: interest {event.interest} on "
                            f"{event.balance}")
    first = min((e.date for days in accrued.values() for e in days), default=None)
    last = max((e.date for days in accrued.values() for e in days), default=None)
    if first is None or last is None:
        return ["no interest accrued"]
    expected = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    for agency in sorted(policy.funds):
        dates = [e.date for e in accrued.get(agency, [])]
        if dates != expected:
            problems.append(f"{agency}: interest for {len(dates)} day(s), expected "
                            f"{len(expected)} ({first} to {last})")
    reported: dict[str, Decimal] = {}
    for event in outcome.events[RESULTS]:
        if event.type.startswith("clearing.revolving_fund") and hasattr(event.data, "balance") \
                and event.type != "clearing.revolving_fund_interest_accrued":
            reported[event.data.agency] = event.data.balance
    booked: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for p in outcome.postings:
        if p.account is AccountKind.FUND_BALANCE:
            booked[p.agency] += p.signed
    for agency, balance in sorted(reported.items()):
        if booked[ledger_of(agency)] != balance:
            problems.append(f"{agency}: ledger {ledger_of(agency)} holds "
                            f"{booked[ledger_of(agency)]}, the last result says {balance}")
    return problems


def supervision_refusals(outcome: Outcome) -> list[str]:
    """The care agency's stop is accepted, and every settlement of the person at its
    hospitals from the stop on is refused with person_under_supervision (at least one)."""
    case = outcome.supervision
    if case is None:
        return ["the month has no person to supervise"]
    imposed = [e for e in outcome.of(topics.FILING_EVENTS, "filing.supervision_imposed")
               if e.person_id == case.person]
    if len(imposed) != 1 or imposed[0].care_agency != case.care_agency:
        return [f"supervision of {case.person} by {case.care_agency}: {len(imposed)} accepted"]
    refused = [r for r in outcome.of(topics.SETTLEMENT_EVENTS, "settlement.rejected")
               if r.person_id == case.person
               and any(x.code == "person_under_supervision" for x in r.reasons)]
    completed = [c for c in outcome.of(topics.SETTLEMENT_EVENTS, "settlement.completed")
                 if c.person_id == case.person and c.care_agency == case.care_agency
                 and c.settled_at >= imposed[0].effective]
    problems = [f"{c.settlement_id} settled during the stop" for c in completed]
    if not refused:
        problems.append(f"no settlement of {case.person} refused during the stop")
    return problems


def reimbursements(outcome: Outcome) -> list[str]:
    """Every settlement the stop refused is claimed back by the insuring agency and
    approved (fund + cash = the bill, at the reduced ratio of a person at fault), and no
    reimbursement reaches the clearing's ledgers."""
    case = outcome.supervision
    if case is None:
        return ["the month has no person to supervise, so no claim"]
    refused = {r.settlement_id for r in outcome.of(topics.SETTLEMENT_EVENTS,
                                                  "settlement.rejected")
               if r.person_id == case.person
               and any(x.code == "person_under_supervision" for x in r.reasons)}
    approved = outcome.of(topics.REIMBURSEMENT_EVENTS, "reimbursement.approved")
    problems = [f"claim refused: {r.claim_id} {[x.code for x in r.reasons]}"
                for r in outcome.of(topics.REIMBURSEMENT_EVENTS, "reimbursement.rejected")]
    if len(approved) != len(refused) or not approved:
        problems.append(f"{len(refused)} settlement(s) refused during the stop, "
                        f"{len(approved)} reimbursement(s) approved")
    problems += [f"{a.claim_id}: fund {a.fund_pay} + cash {a.cash_pay} != {a.total}"
                 for a in approved if a.fund_pay + a.cash_pay != a.total or not a.at_fault]
    cleared = {p.settlement_id for p in outcome.postings
               if p.settlement_id and p.settlement_id.startswith("MR")}
    problems += [f"{sid}: a reimbursement in the clearing's ledgers" for sid in sorted(cleared)]
    return problems
