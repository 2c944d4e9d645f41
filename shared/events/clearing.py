"""Clearing results (``clearing.results``), agencies' answers (``clearing.submissions``)
and the clearing calendar's schedule events (``clearing.schedule``, internal)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from shared.events.base import Code, Payload, Text
from shared.money import Money, NonNegativeMoney

Cycle = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
"""A clearing cycle: a calendar month of ``settled_at`` in Asia/Shanghai, ``YYYY-MM``."""

#: The provincial fund centre through which every net amount flows.
HUB = "hub"


# ---- the calendar ---------------------------------------------------------------------------


class DayStarted(Payload):
    """A business day (Asia/Shanghai) has begun: the clearing calendar acts on it."""

    TYPE = "calendar.day_started"
    date: date
    #: The cut between days, as positions in the log: for each input topic, for each
    #: partition, the offset of the first record that belongs *after* this day started.
    #: Records before it are applied first, records from it on after, so that a replay acts
    #: on exactly the same records whatever the interleaving in which it reads them.
    watermarks: dict[str, dict[str, int]] = Field(default_factory=dict)


# ---- results --------------------------------------------------------------------------------


class DailyCounterpart(Payload):
    counterpart: Code
    receivable_count: int
    receivable: Money
    payable_count: int
    payable: Money


class DailyReport(Payload):
    TYPE = "clearing.daily_report"
    agency: Code
    date: date
    counterparts: list[DailyCounterpart]
    settlement_count: int
    checksum: str


class StatementLine(Payload):
    counterpart: Code
    receivable: Money
    receivable_count: int
    payable: Money
    payable_count: int
    #: Late items and differences carried from earlier cycles (positive: owed to the agency).
    adjustments: Money
    adjustment_count: int
    net: Money


class StatementIssued(Payload):
    TYPE = "clearing.statement_issued"
    cycle: Cycle
    agency: Code
    lines: list[StatementLine]
    receivable: Money
    payable: Money
    adjustments: Money
    net: Money
    checksum: str
    disputed_settlement_ids: list[Code] = Field(default_factory=list)
    #: Head of the hash chain over the agency's ledger when the statement was issued.
    chain_head: str | None = None
    #: Extension: the sequence number of the last posting `chain_head` covers.
    chain_sequence: int | None = None


class NetTransferInstruction(Payload):
    TYPE = "clearing.net_transfer_instruction"
    instruction_id: Code
    cycle: Cycle
    payer: Code
    payee: Code
    amount: NonNegativeMoney
    due_on: date


class DifferenceNotice(Payload):
    TYPE = "clearing.difference_notice"
    agency: Code
    original_settlement_id: Code
    settlement_id: Code
    original_cycle: Cycle
    cycle: Cycle
    insured_agency: Code
    care_agency: Code
    fund_pay: Money
    account_pay: Money
    cash_pay: Money
    cleared_amount: Money
    #: The cycle into which the difference is carried, when the original was already cleared.
    carried_into: Cycle | None = None
    #: Extension: the hospital of both settlements (settlement ids are unique per hospital).
    hospital: Code | None = None
    #: Extension: the difference of the further payers (大病保险, 医疗救助), part of
    #: `cleared_amount`'s difference; absent when neither settlement had any.
    other_payers_pay: Money | None = None


class RemittanceOverdue(Payload):
    TYPE = "clearing.remittance_overdue"
    instruction_id: Code
    cycle: Cycle
    payer: Code
    amount: NonNegativeMoney
    received: NonNegativeMoney
    due_on: date


class CycleClosed(Payload):
    TYPE = "clearing.cycle_closed"
    cycle: Cycle
    agency: Code
    net: Money


class DisputeOpened(Payload):
    """Extension: an agency disputed a settlement of a daily report or a statement. Sent to
    the disputing agency and to the other agency of the settlement (the care-place agency
    has its hospital correct it, by a refund and a re-settlement)."""

    TYPE = "clearing.dispute_opened"
    #: Who this copy is addressed to.
    agency: Code
    disputed_by: Code
    settlement_id: Code
    #: The hospital and the other agency of the settlement, where the clearing knows it.
    hospital: Code | None = None
    counterpart: Code | None = None
    #: What it was raised against: a daily report (date) or a statement (cycle).
    report_date: date | None = None
    statement_cycle: Cycle | None = None
    reason: Text | None = None


class DisputeCorrected(Payload):
    """Extension: the hospital refunded a disputed settlement; the dispute waits for the
    disputing agency to re-confirm (by confirming the daily report that carries the
    correction, or the day's or the statement's report it was raised against)."""

    TYPE = "clearing.dispute_corrected"
    agency: Code
    disputed_by: Code
    settlement_id: Code
    hospital: Code
    refund_id: Code
    counterpart: Code | None = None


class DisputeResolved(Payload):
    """Extension: a dispute is closed: `reconfirmed` after a correction, `withdrawn` when
    the agency confirmed what it had disputed without one."""

    TYPE = "clearing.dispute_resolved"
    agency: Code
    disputed_by: Code
    settlement_id: Code
    outcome: Literal["reconfirmed", "withdrawn"]
    #: The confirmation that closed it: a daily report's date or a statement's cycle.
    confirmed_report_date: date | None = None
    confirmed_statement_cycle: Cycle | None = None
    hospital: Code | None = None
    counterpart: Code | None = None


class SubmissionRejected(Payload):
    """Extension: an agency's submission that was refused, addressed back to it."""

    TYPE = "clearing.submission_rejected"
    agency: Code
    submission_type: str
    reasons: list[dict[str, str]]


# ---- agencies' submissions ------------------------------------------------------------------


class DailyReportConfirmed(Payload):
    TYPE = "clearing.daily_report_confirmed"
    agency: Code
    date: date
    checksum: str | None = None


class DailyReportDisputed(Payload):
    TYPE = "clearing.daily_report_disputed"
    agency: Code
    date: date
    settlement_ids: list[Code] = Field(min_length=1)
    reason: Text | None = None


class StatementConfirmed(Payload):
    TYPE = "clearing.statement_confirmed"
    agency: Code
    cycle: Cycle
    checksum: str | None = None


class StatementDisputed(Payload):
    TYPE = "clearing.statement_disputed"
    agency: Code
    cycle: Cycle
    settlement_ids: list[Code] = Field(default_factory=list)
    reason: Text | None = None


class RemittanceReported(Payload):
    TYPE = "clearing.remittance_reported"
    instruction_id: Code
    amount: NonNegativeMoney
    paid_at: AwareDatetime
    agency: Code | None = None
