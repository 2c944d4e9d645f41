"""Daily reconciliation (日对账): the day's items per agency, with a checksum agencies can
recompute from their own records, and the agencies' answers."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from services.clearing.domain.items import ClearingItem
from shared.events.clearing import (
    DailyCounterpart,
    DailyReport,
    DailyReportConfirmed,
    DailyReportDisputed,
)
from shared.money import ZERO, to_fen


class Answer(StrEnum):
    """An agency's answer to a daily report or a statement."""

    CONFIRMED = "confirmed"
    DISPUTED = "disputed"
    #: Statements only: no answer by the confirmation deadline counts as confirmed.
    DEEMED_CONFIRMED = "deemed_confirmed"


def checksum(items: Iterable[ClearingItem]) -> str:
    """sha256 (hex) of the lines ``<settlement_id>:<signed amount in fen>``, one per item,
    sorted as byte strings and joined with newlines; a refund's amount is negative."""
    lines = sorted(f"{item.settlement_id}:{to_fen(item.signed_amount)}" for item in items)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ReportRecord:
    """What the clearing service keeps of a daily report it sent (one table row)."""

    agency: str
    date: date
    checksum: str
    settlement_ids: tuple[str, ...]
    answer: Answer | None = None


def items_for_report(items: Iterable[ClearingItem], day: date) -> list[ClearingItem]:
    """Items a report for `day` covers: not reported yet, business date on or before `day`
    (an item that arrived after its own day's report goes into the next one)."""
    return [i for i in items if i.reported_on is None and i.business_date <= day]


def _agency_report(agency: str, day: date, items: list[ClearingItem]) -> DailyReport:
    amounts: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        receiving = item.care_agency == agency
        counterpart = item.insured_agency if receiving else item.care_agency
        side = 0 if receiving else 1
        amounts[counterpart][side] += item.signed_amount
        counts[counterpart][side] += 1
    counterparts = [
        DailyCounterpart(counterpart=c, receivable_count=counts[c][0], receivable=amounts[c][0],
                         payable_count=counts[c][1], payable=amounts[c][1])
        for c in sorted(amounts)
    ]
    return DailyReport(agency=agency, date=day, counterparts=counterparts,
                       settlement_count=len(items), checksum=checksum(items))


def build_daily_reports(
    day: date, items: Iterable[ClearingItem],
) -> tuple[list[DailyReport], list[ReportRecord]]:
    """The report for `day` of every agency that has items in `items`, and the records to
    keep. Counts are items: a settlement and its refund count one each."""
    by_agency: dict[str, list[ClearingItem]] = defaultdict(list)
    for item in items:
        by_agency[item.care_agency].append(item)
        by_agency[item.insured_agency].append(item)
    reports, records = [], []
    for agency in sorted(by_agency):
        report = _agency_report(agency, day, by_agency[agency])
        reports.append(report)
        ids = tuple(sorted({i.settlement_id for i in by_agency[agency]}))
        records.append(ReportRecord(agency, day, report.checksum, ids))
    return reports, records


def confirmation_problems(
    record: ReportRecord | None, answer: DailyReportConfirmed | DailyReportDisputed,
) -> list[dict[str, str]]:
    """Why an agency's answer to a daily report cannot be recorded (empty when it can)."""
    if record is None:
        return [{"code": "unknown_report",
                 "message": f"no daily report of {answer.date} was sent to {answer.agency}; "
                            "answer only reports you received"}]
    if isinstance(answer, DailyReportConfirmed):
        if answer.checksum is not None and answer.checksum != record.checksum:
            return [{"code": "checksum_mismatch",
                     "message": f"checksum {answer.checksum} differs from the report's "
                                f"{record.checksum}; dispute the items that differ instead"}]
        return []
    unknown = sorted(set(answer.settlement_ids) - set(record.settlement_ids))
    if unknown:
        return [{"code": "unknown_settlement",
                 "message": f"settlement_ids {', '.join(unknown)} are not in the report of "
                            f"{answer.date}; dispute only settlements the report covers"}]
    return []
