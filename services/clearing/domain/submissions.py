"""Agencies' submissions on ``clearing.submissions``: answers to daily reports and
statements, and remittances to the hub. Each returns a `Decision`; a submission that
cannot be accepted yields a ``clearing.submission_rejected`` addressed to its sender."""

from __future__ import annotations

import dataclasses

from services.clearing.domain import disputes as dispute_loop
from services.clearing.domain import fund
from services.clearing.domain.decisions import Decision, Draft
from services.clearing.domain.items import ClearingItem
from services.clearing.domain.ledger import EventRef, postings_for_remittance
from services.clearing.domain.reports import Answer, ReportRecord, confirmation_problems
from services.clearing.domain.state import (
    ClearingState,
    InstructionState,
    StatementRecord,
)
from shared.events.clearing import (
    DailyReportConfirmed,
    DailyReportDisputed,
    RemittanceReported,
    RevolvingFundToppedUp,
    StatementConfirmed,
    StatementDisputed,
)
from shared.money import ZERO


def on_daily_report_confirmed(
    state: ClearingState, confirmed: DailyReportConfirmed, cause: EventRef,
    report: ReportRecord | None,
) -> Decision:
    """Record the confirmation (checksum must match when given); it closes the agency's
    disputes raised against that day's report, and the corrected ones whose correction the
    report carries (`disputes`)."""
    draft = Draft.of(state)
    problems = confirmation_problems(report, confirmed)
    if problems or report is None:
        draft.reject(cause, confirmed, confirmed.agency, problems)
        return draft.decision()
    draft.reports.append(dataclasses.replace(report, answer=Answer.CONFIRMED))
    mine = draft.state.disputes.get(confirmed.agency, {})
    settled = dispute_loop.settled_by_report(mine, confirmed.date, report.settlement_ids)
    for notice in dispute_loop.resolve_disputes(mine, confirmed.agency, settled,
                                                report_date=confirmed.date):
        draft.emit(notice)
    return draft.decision()


def on_daily_report_disputed(
    state: ClearingState, disputed: DailyReportDisputed, cause: EventRef,
    report: ReportRecord | None, items: list[ClearingItem] | None = None,
) -> Decision:
    """Record the disputed settlements (listed in the agency's statements until corrected)
    and tell both agencies of each; `items` are the settlement items the dispute names."""
    draft = Draft.of(state)
    problems = confirmation_problems(report, disputed)
    if problems or report is None:
        draft.reject(cause, disputed, disputed.agency, problems)
        return draft.decision()
    draft.reports.append(dataclasses.replace(report, answer=Answer.DISPUTED))
    for notice in dispute_loop.open_disputes(
            draft.state.disputes.setdefault(disputed.agency, {}), disputed.agency,
            disputed.settlement_ids, items or [], reason=disputed.reason,
            report_date=disputed.date):
        draft.emit(notice)
    return draft.decision()


def _statement(draft: Draft, answer: StatementConfirmed | StatementDisputed,
               cause: EventRef) -> StatementRecord | None:
    known = answer.cycle in draft.state.cycles
    record = draft.cycle(answer.cycle).statements.get(answer.agency) if known else None
    if record is None:
        draft.reject(cause, answer, answer.agency, [{
            "code": "unknown_statement",
            "message": f"no statement of cycle {answer.cycle} was issued to {answer.agency}; "
                       "answer only statements you received"}])
    return record


def on_statement_confirmed(
    state: ClearingState, confirmed: StatementConfirmed, cause: EventRef,
) -> Decision:
    """Record the confirmation; it resolves the disputes that statement listed and those
    raised against it. Confirming it again changes nothing."""
    draft = Draft.of(state)
    record = _statement(draft, confirmed, cause)
    if record is None:
        return draft.decision()
    if confirmed.checksum is not None and confirmed.checksum != record.checksum:
        draft.reject(cause, confirmed, confirmed.agency, [{
            "code": "checksum_mismatch",
            "message": f"checksum {confirmed.checksum} differs from the statement's "
                       f"{record.checksum}; dispute the settlements that differ instead"}])
        return draft.decision()
    if record.answer is Answer.CONFIRMED:
        # Confirmed already: the disputes it closed are closed. A repeat must not close
        # disputes the agency raised since, against other reports, on the same settlements.
        return draft.decision()
    record.answer = Answer.CONFIRMED
    mine = draft.state.disputes.get(confirmed.agency, {})
    settled = dispute_loop.settled_by_statement(mine, confirmed.cycle,
                                                record.disputed_settlement_ids)
    for notice in dispute_loop.resolve_disputes(mine, confirmed.agency, settled,
                                                statement_cycle=confirmed.cycle):
        draft.emit(notice)
    return draft.decision()


def on_statement_disputed(
    state: ClearingState, disputed: StatementDisputed, cause: EventRef,
    items: list[ClearingItem] | None = None,
) -> Decision:
    """Record the dispute and tell both agencies; it never holds the cycle back
    (corrections arrive as refunds and re-settlements, carried into the next open cycle)."""
    draft = Draft.of(state)
    record = _statement(draft, disputed, cause)
    if record is None:
        return draft.decision()
    record.answer = Answer.DISPUTED
    for notice in dispute_loop.open_disputes(
            draft.state.disputes.setdefault(disputed.agency, {}), disputed.agency,
            disputed.settlement_ids, items or [], reason=disputed.reason,
            statement_cycle=disputed.cycle):
        draft.emit(notice)
    return draft.decision()


def on_remittance_reported(
    state: ClearingState, reported: RemittanceReported, cause: EventRef,
    fund_policy: fund.FundPolicy | None = None,
) -> Decision:
    """Record money a net payer sent the hub: partial payments add up; more than what is
    still outstanding is refused, so the hub never holds money it cannot pay out. A
    repayment of the payer's revolving fund re-arms its warning (`fund_policy`)."""
    draft = Draft.of(state)
    cycle = state.cycle_of_instruction(reported.instruction_id)
    instruction = (draft.cycle(cycle).instructions[reported.instruction_id]
                   if cycle is not None else None)
    agency = reported.agency or (instruction.payer if instruction else cause.source)
    problems = remittance_problems(reported, instruction)
    if problems or cycle is None or instruction is None:
        draft.reject(cause, reported, agency, problems)
        return draft.decision()
    instruction.paid += reported.amount
    draft.post(postings_for_remittance(cycle, instruction.payer, reported.amount, cause,
                                       reported.paid_at))
    fund.repay(draft, cause, reported.instruction_id, instruction.payer, reported.amount,
               reported.paid_at)
    if fund_policy is not None:
        fund.rearm_warning(draft, fund_policy, instruction.payer)
    return draft.decision()


def remittance_problems(
    reported: RemittanceReported, instruction: InstructionState | None,
) -> list[dict[str, str]]:
    iid = reported.instruction_id
    if instruction is None:
        return [{"code": "unknown_instruction",
                 "message": f"no net-transfer instruction {iid} was issued; "
                            "report remittances against an instruction you received"}]
    if not instruction.into_hub:
        return [{"code": "not_a_payer_instruction",
                 "message": f"{iid} is a payment by the hub; only net payers report remittances"}]
    if reported.agency is not None and reported.agency != instruction.payer:
        return [{"code": "not_the_payer",
                 "message": f"{iid} is addressed to {instruction.payer}, not {reported.agency}"}]
    if reported.amount <= ZERO:
        return [{"code": "remittance_zero", "message": "a remittance must be more than 0.00"}]
    if reported.amount > instruction.outstanding:
        return [{"code": "remittance_exceeds_outstanding",
                 "message": f"{iid} has {instruction.outstanding} outstanding, the report says "
                            f"{reported.amount}; report only what was sent against it"}]
    return []


def refuse_other_sender(state: ClearingState, source: str, payload: object, cause: EventRef
                        ) -> Decision | None:
    """An agency answers only for itself: the envelope's `source` must be ``agency/<code>``
    of the agency the submission is about (for a remittance, the instruction's payer).
    The refusal when it is not; None for every other event and every rightful sender."""
    if not isinstance(payload, (DailyReportConfirmed, DailyReportDisputed, StatementConfirmed,
                                StatementDisputed, RemittanceReported,
                                RevolvingFundToppedUp)):
        return None
    claimed = payload.agency
    if isinstance(payload, RemittanceReported):
        cycle = state.cycle_of_instruction(payload.instruction_id)
        if cycle is not None:
            claimed = state.cycles[cycle].instructions[payload.instruction_id].payer
    if claimed is None or source == f"agency/{claimed}":
        return None
    sender = source.removeprefix("agency/")
    draft = Draft.of(state)
    draft.reject(cause, payload, sender, [{
        "code": "source_mismatch",
        "message": f"sent by {source} about agency {claimed}: an agency answers only "
                   f"for itself, with source agency/<its code>"}])
    return draft.decision()
