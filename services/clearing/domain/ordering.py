"""Which records may be decided before the calendar day that follows them is known.

A ``calendar.day_started`` cuts the inputs at its watermarks: records before the cut are
decided before the day acts, records past it after. Once the calendar has started, a
record read past the cut of every day read so far belongs after the last day read and
before some day not read yet, perhaps after several (the days sit on another partition,
read at another pace). Deciding it at once is right only when no day that may still come
before it would act differently for it, or it for the day. `decidable_now` says when that
holds; the handler holds every other record back until its place is known.

- **Settlements and refunds**: daily reports take only items that precede the reporting
  day's cut (items remember their input position), so reports never mind the order. What
  a day can change is the cycle (carry-over, ``carried_into``, disputes a refund
  resolves): only statements are issued on the way. Such a record waits when the next
  statements day may come before it: after the last day acted, and no later than
  `LATENESS_DAYS` after its business date. A record written to the log later than that
  after its business date, *and* read by the clearing service before a statements day
  written before it, would be decided as if read after the day before: the one
  assumption (see docs/reliability.md).
- **Answers and remittances** (`independent_of_days`): refusals that no day can change,
  confirmations that resolve no dispute; everything else (disputes, listed in later
  statements; accepted remittances, read by overdue flags and distributions; answers to
  what a coming day may still issue) waits for its place.

Pure: the handler looks up the daily report an answer refers to and passes it in.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services.clearing.domain.periods import (
    STATEMENTS_DAY,
    cycle_of_date,
    milestone,
    next_cycle,
    previous_cycle,
)
from services.clearing.domain.reports import Answer, ReportRecord, confirmation_problems
from services.clearing.domain.state import ClearingState, CycleStatus
from services.clearing.domain.submissions import remittance_problems
from shared.business_time import business_date
from shared.events.clearing import (
    DailyReportConfirmed,
    DailyReportDisputed,
    RemittanceReported,
    StatementConfirmed,
    StatementDisputed,
)
from shared.events.settlement import (
    RefundRejected,
    SettlementCompleted,
    SettlementRefunded,
    SettlementRejected,
)

ANSWERS = (DailyReportConfirmed, DailyReportDisputed, StatementConfirmed, StatementDisputed)
#: How long after its business date a settlement or refund is taken to reach the log at
#: the latest, for deciding it before the next day is read (module docstring).
LATENESS_DAYS = 14


def decidable_now(state: ClearingState, source: str, payload: Any,
                  report: ReportRecord | None = None, lateness: int = LATENESS_DAYS) -> bool:
    """True when a record read past the cut of every day read so far (the last one acted:
    `state.today`, None before the first) may be decided now: the same decision as after
    the days that may still come before it, and none of them acting differently for it."""
    if isinstance(payload, SettlementCompleted | SettlementRefunded):
        return not _statements_may_come_first(state, payload, lateness)
    return independent_of_days(state, source, payload, report)


def next_statements_day(state: ClearingState) -> date | None:
    """The first day after `state.today` on which statements may be issued (None before
    the calendar's first day)."""
    if state.today is None:
        return None
    following = state.today + timedelta(days=1)
    cycle = (next_cycle(state.issued_through) if state.issued_through
             else previous_cycle(cycle_of_date(following)))
    return max(following, milestone(cycle, STATEMENTS_DAY))


def _statements_may_come_first(state: ClearingState,
                               payload: SettlementCompleted | SettlementRefunded,
                               lateness: int) -> bool:
    if isinstance(payload, SettlementCompleted):
        moment, origin = payload.settled_at, payload.settled_at
    else:
        moment, origin = payload.refunded_at, payload.settled_at
    latest = business_date(moment) + timedelta(days=lateness)
    first = next_statements_day(state)
    if first is None:  # no day yet: the first statements day that would carry it
        if isinstance(payload, SettlementCompleted) and payload.resettles:
            return True  # its original's cycle is not known here
        first = milestone(cycle_of_date(business_date(origin)), STATEMENTS_DAY)
    return first <= latest


def independent_of_days(state: ClearingState, source: str, payload: Any,
                        report: ReportRecord | None = None) -> bool:
    """True when deciding `payload` (sent by `source`) now gives the same decision as after
    any calendar days still to come, and none of those days would act differently for it.

    `report` is the daily report a `DailyReportConfirmed`/`Disputed` answers (None when none
    was sent)."""
    if isinstance(payload, SettlementRejected | RefundRejected):
        return True  # owes no clearing: nothing is decided
    if isinstance(payload, ANSWERS):
        if source != f"agency/{payload.agency}":
            return True  # refused for its sender, whatever the state
        if isinstance(payload, StatementConfirmed | StatementDisputed):
            return _statement_answer(state, payload)
        return _report_answer(state, payload, report)
    if isinstance(payload, RemittanceReported):
        cycle = state.cycle_of_instruction(payload.instruction_id)
        if cycle is None:
            return False  # the instructions may still be issued
        instruction = state.cycles[cycle].instructions[payload.instruction_id]
        if source != f"agency/{instruction.payer}":
            return True  # refused for its sender
        # A refusal depends only on the instruction (its outstanding amount changes only
        # with remittances, which follow on their partition); money received is not
        # independent: the overdue flags and the distributions read it.
        return bool(remittance_problems(payload, instruction))
    return False


def _statement_answer(state: ClearingState,
                      answer: StatementConfirmed | StatementDisputed) -> bool:
    cycle = state.cycles.get(answer.cycle)
    if cycle is None or cycle.status is CycleStatus.OPEN:
        return False  # the statements may still be issued
    record = cycle.statements.get(answer.agency)
    if record is None:
        return True  # refused: no statement will be issued to it any more
    if isinstance(answer, StatementConfirmed):
        if answer.checksum is not None and answer.checksum != record.checksum:
            return True  # refused
        # Recorded as confirmed whether or not the deadline passed first; it resolves the
        # disputes the statement listed and those raised against it, which later statements
        # would list. Confirmed already: a repeat changes nothing.
        if record.answer is Answer.CONFIRMED:
            return True
        raised = [d for d in state.disputes.get(answer.agency, {}).values()
                  if d.statement_cycle == answer.cycle]
        return not record.disputed_settlement_ids and not raised
    # Recorded as disputed either way; disputes raised are listed in later statements.
    return not answer.settlement_ids


def _report_answer(state: ClearingState, answer: DailyReportConfirmed | DailyReportDisputed,
                   report: ReportRecord | None) -> bool:
    if report is None:
        # Refused as unknown, unless the report of that date may still be issued.
        return state.reported_through is not None and answer.date <= state.reported_through
    if confirmation_problems(report, answer):
        return True  # refused
    if isinstance(answer, DailyReportConfirmed):
        raised = [d for d in state.disputes.get(answer.agency, {}).values()
                  if d.report_date == answer.date]
        return not raised  # resolving disputes changes later statements
    return not answer.settlement_ids
