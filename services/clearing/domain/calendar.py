"""Time is an event: what the clearing calendar must do when a business day starts.

`due_actions` looks only at dates and at the clearing state, never at a clock. A day that
arrives after a gap catches up: every report and every step that fell due meanwhile, in
order. `on_day_started` executes them into a `Decision`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from services.clearing.domain import fund
from services.clearing.domain.cycles import (
    CycleTotals,
    cycle_totals,
    distribution_targets,
    net_transfer_instructions,
    positions_from_totals,
    statements_from_totals,
)
from services.clearing.domain.decisions import Decision, Draft
from services.clearing.domain.items import ClearingItem
from services.clearing.domain.ledger import (
    EventRef,
    postings_for_clearing,
    postings_for_distribution,
)
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
from services.clearing.domain.reports import Answer, build_daily_reports, items_for_report
from services.clearing.domain.state import (
    ClearingState,
    CycleStatus,
    InstructionState,
    StatementRecord,
)
from shared.business_time import start_of
from shared.events.clearing import CycleClosed, DayStarted, RemittanceOverdue
from shared.money import ZERO


@dataclass(frozen=True)
class IssueDailyReports:
    """On day D, the reports for D − 1 (and for any day missed before it)."""

    date: date


@dataclass(frozen=True)
class IssueStatements:
    """From the 2nd: statements of the previous cycle; later items go to the next cycle."""

    cycle: str


@dataclass(frozen=True)
class PassConfirmationDeadline:
    """After the 5th: statements nobody answered count as confirmed."""

    cycle: str


@dataclass(frozen=True)
class IssueInstructions:
    """From the 10th: nets, net-transfer instructions, and the clearing into the hub."""

    cycle: str


@dataclass(frozen=True)
class FlagOverdueRemittances:
    """After the 15th, once: payers that have not paid in full are reported overdue."""

    cycle: str


@dataclass(frozen=True)
class Distribute:
    """From the 20th, daily until the cycle closes: the hub pays receivers out of money
    received; the cycle closes when every payer has paid and all is paid out."""

    cycle: str


Action = (IssueDailyReports | IssueStatements | PassConfirmationDeadline | IssueInstructions
          | FlagOverdueRemittances | Distribute)


def _report_dates(reported_through: date | None, day: date) -> list[date]:
    last = day - timedelta(days=1)
    first = reported_through + timedelta(days=1) if reported_through else last
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def due_actions(state: ClearingState, day: date) -> list[Action]:
    """The actions due on `day` given `state`, in the order they must run."""
    actions: list[Action] = [IssueDailyReports(d) for d in _report_dates(state.reported_through,
                                                                          day)]
    candidates = {c for c, s in state.cycles.items() if s.status is not CycleStatus.CLOSED}
    last_month = previous_cycle(cycle_of_date(day))
    if not state.is_issued(last_month):
        candidates.add(last_month)
    for cycle in sorted(candidates):
        actions += _cycle_actions(state, cycle, day)
    return actions


def _cycle_actions(state: ClearingState, cycle: str, day: date) -> list[Action]:
    known = state.cycles.get(cycle)
    status = known.status if known else CycleStatus.OPEN
    actions: list[Action] = []
    if status is CycleStatus.OPEN:
        if day < milestone(cycle, STATEMENTS_DAY):
            return actions
        actions.append(IssueStatements(cycle))
        status = CycleStatus.STATEMENTS_ISSUED
    if status is CycleStatus.STATEMENTS_ISSUED:
        deadline_passed = known is not None and known.confirmation_deadline_passed
        if day > milestone(cycle, CONFIRMATION_DEADLINE_DAY) and not deadline_passed:
            actions.append(PassConfirmationDeadline(cycle))
        if day < milestone(cycle, INSTRUCTIONS_DAY):
            return actions
        actions.append(IssueInstructions(cycle))
        status = CycleStatus.INSTRUCTIONS_ISSUED
    if status is CycleStatus.INSTRUCTIONS_ISSUED:
        checked = known is not None and known.overdue_checked
        if day > milestone(cycle, REMITTANCE_DUE_DAY) and not checked:
            actions.append(FlagOverdueRemittances(cycle))
        if day >= milestone(cycle, DISTRIBUTION_DAY):
            actions.append(Distribute(cycle))
    return actions


@dataclass(frozen=True)
class CalendarNeeds:
    """What the handler must load before executing the actions: unreported items with a
    business date up to `unreported_through`, and all items of each of `statement_cycles`."""

    unreported_through: date | None
    statement_cycles: tuple[str, ...]


def needs(actions: list[Action]) -> CalendarNeeds:
    report_dates = [a.date for a in actions if isinstance(a, IssueDailyReports)]
    return CalendarNeeds(
        unreported_through=max(report_dates) if report_dates else None,
        statement_cycles=tuple(a.cycle for a in actions if isinstance(a, IssueStatements)))


# ---- executing the actions ------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarInputs:
    """What `needs` asked the handler to load. For statements, either a cycle's items or
    the same added up (`cycle_totals`: the handler has the database add them up)."""

    unreported: Sequence[ClearingItem] = ()
    cycle_items: Mapping[str, Sequence[ClearingItem]] = field(default_factory=dict)
    cycle_totals: Mapping[str, CycleTotals] = field(default_factory=dict)
    #: The revolving funds' reference data (None: no agency keeps a fund).
    fund_policy: fund.FundPolicy | None = None


def on_day_started(
    state: ClearingState, day: DayStarted, cause: EventRef, inputs: CalendarInputs,
) -> Decision:
    """Run every action `due_actions` finds due on the day, in order, and say what they did."""
    draft = Draft.of(state)
    pending = list(inputs.unreported)
    policy = inputs.fund_policy
    if policy is not None:
        fund.before_day(draft, policy, cause, day.date)
    for action in due_actions(state, day.date):
        match action:
            case IssueDailyReports(date=report_date):
                pending = _issue_daily_reports(draft, report_date, pending)
            case IssueStatements(cycle=cycle):
                if cycle in inputs.cycle_totals:
                    totals = inputs.cycle_totals[cycle]
                elif cycle in inputs.cycle_items:
                    totals = cycle_totals(cycle, inputs.cycle_items[cycle])
                else:
                    raise ValueError(f"statements of {cycle} are due on {day.date}: load the "
                                     f"cycle's items into CalendarInputs.cycle_items")
                _issue_statements(draft, cycle, totals)
            case PassConfirmationDeadline(cycle=cycle):
                _pass_confirmation_deadline(draft, cycle)
            case IssueInstructions(cycle=cycle):
                _issue_instructions(draft, cycle, cause, day)
            case FlagOverdueRemittances(cycle=cycle):
                _flag_overdue(draft, cycle, cause, day.date)
            case Distribute(cycle=cycle):
                _distribute(draft, cycle, cause, day)
    if policy is not None:
        fund.check_warnings(draft, policy, day.date)
    if draft.state.today is None or day.date > draft.state.today:
        draft.state.today = day.date
    return draft.decision()


def _issue_daily_reports(
    draft: Draft, report_date: date, pending: list[ClearingItem],
) -> list[ClearingItem]:
    covered = items_for_report(pending, report_date)
    reports, records = build_daily_reports(report_date, covered)
    for report in reports:
        draft.emit(report)
    draft.reports += records
    draft.items += [dataclasses.replace(i, reported_on=report_date) for i in covered]
    draft.state.reported_through = report_date
    covered_ids = {i.item_id for i in covered}
    return [i for i in pending if i.item_id not in covered_ids]


def _issue_statements(draft: Draft, cycle: str, totals: CycleTotals) -> None:
    state = draft.state
    disputes = state.open_disputes()
    statements = statements_from_totals(cycle, totals, disputes, state.ledger_heads)
    cycle_positions = positions_from_totals(totals)
    cycle_state = draft.cycle(cycle)
    for statement in statements:
        draft.emit(statement)
        cycle_state.statements[statement.agency] = StatementRecord(
            net=statement.net, checksum=statement.checksum,
            disputed_settlement_ids=statement.disputed_settlement_ids,
            positions=cycle_positions.get(statement.agency, {}))
        fund.record_payable(draft, statement.agency, cycle, statement.payable)
    cycle_state.status = CycleStatus.STATEMENTS_ISSUED
    if state.issued_through is None or cycle > state.issued_through:
        state.issued_through = cycle


def _pass_confirmation_deadline(draft: Draft, cycle: str) -> None:
    cycle_state = draft.cycle(cycle)
    for record in cycle_state.statements.values():
        if record.answer is None:
            record.answer = Answer.DEEMED_CONFIRMED
    cycle_state.confirmation_deadline_passed = True


def _issue_instructions(draft: Draft, cycle: str, cause: EventRef, day: DayStarted) -> None:
    cycle_state = draft.cycle(cycle)
    nets = {agency: record.net for agency, record in cycle_state.statements.items()}
    for instruction in net_transfer_instructions(cycle, nets):
        draft.emit(instruction)
        cycle_state.instructions[instruction.instruction_id] = InstructionState(
            instruction_id=instruction.instruction_id, payer=instruction.payer,
            payee=instruction.payee, amount=instruction.amount, due_on=instruction.due_on)
    draft.post(postings_for_clearing(
        cycle, {a: r.positions for a, r in cycle_state.statements.items()}, cause,
        start_of(day.date)))
    for record in cycle_state.statements.values():
        record.positions = {}  # now in the ledgers; the aggregate stays small
    cycle_state.status = CycleStatus.INSTRUCTIONS_ISSUED


def _flag_overdue(draft: Draft, cycle: str, cause: EventRef, day: date) -> None:
    """Report each payer still owing; its revolving fund advances what it owes."""
    cycle_state = draft.cycle(cycle)
    for payer in cycle_state.payers():
        if payer.outstanding > ZERO and not payer.overdue_reported:
            draft.emit(RemittanceOverdue(
                instruction_id=payer.instruction_id, cycle=cycle, payer=payer.payer,
                amount=payer.amount, received=payer.paid, due_on=payer.due_on))
            payer.overdue_reported = True
            fund.draw(draft, cause, day, payer.instruction_id, cycle, payer.payer,
                      payer.outstanding)
    cycle_state.overdue_checked = True


def _distribute(draft: Draft, cycle: str, cause: EventRef, day: DayStarted) -> None:
    """Pay receivers their share of what the hub has received; close when all is paid."""
    cycle_state = draft.cycle(cycle)
    received = sum((p.paid for p in cycle_state.payers()), ZERO)
    receivers = {r.payee: r for r in cycle_state.receivers()}
    targets = distribution_targets(received, {a: r.amount for a, r in receivers.items()})
    payouts = {a: targets[a] - r.paid for a, r in receivers.items() if targets[a] > r.paid}
    draft.post(postings_for_distribution(cycle, payouts, cause, start_of(day.date)))
    for agency, amount in payouts.items():
        receivers[agency].paid += amount
    settled = all(i.outstanding == ZERO for i in cycle_state.instructions.values())
    if settled:
        cycle_state.status = CycleStatus.CLOSED
        for agency, record in sorted(cycle_state.statements.items()):
            draft.emit(CycleClosed(cycle=cycle, agency=agency, net=record.net))
