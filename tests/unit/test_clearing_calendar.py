"""The clearing calendar (DayStarted → due actions) and daily reconciliation."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

import pytest

from services.clearing.domain.calendar import (
    CalendarInputs,
    CalendarNeeds,
    Distribute,
    FlagOverdueRemittances,
    IssueDailyReports,
    IssueInstructions,
    IssueStatements,
    PassConfirmationDeadline,
    due_actions,
    needs,
    on_day_started,
)
from services.clearing.domain.ledger import EventRef
from services.clearing.domain.reports import Answer, checksum
from services.clearing.domain.state import ClearingState, CycleState, CycleStatus
from shared.events.clearing import (
    DailyReport,
    DailyReportConfirmed,
    DailyReportDisputed,
    DayStarted,
    StatementConfirmed,
    StatementIssued,
    SubmissionRejected,
)
from tests.clearing_book import InMemoryBook
from tests.unit.test_clearing_ledger import A, B, C, at, completed, ref, refunded

OCT = "2026-10"


def _state(status: CycleStatus | None = None, reported_through: date | None = None,
           confirmation_deadline_passed: bool = False,
           overdue_checked: bool = False) -> ClearingState:
    """October in `status`; every earlier cycle already done."""
    state = ClearingState(reported_through=reported_through, issued_through="2026-09")
    if status is not None:
        state.cycles[OCT] = CycleState(
            cycle=OCT, status=status, confirmation_deadline_passed=confirmation_deadline_passed,
            overdue_checked=overdue_checked)
        if status is not CycleStatus.OPEN:
            state.issued_through = OCT
    return state


@pytest.mark.parametrize(("state", "day", "expected"), [
    # `reported_through` is the last date reported: on day D the reports of D − 1;
    # the first day ever reports only yesterday
    (_state(), date(2026, 10, 15), [IssueDailyReports(date(2026, 10, 14))]),
    # statements fall due on the 2nd, not the 1st
    (_state(CycleStatus.OPEN, date(2026, 10, 30)), date(2026, 11, 1),
     [IssueDailyReports(date(2026, 10, 31))]),
    (_state(CycleStatus.OPEN, date(2026, 10, 31)), date(2026, 11, 2),
     [IssueDailyReports(date(2026, 11, 1)), IssueStatements(OCT)]),
    # confirmations close at the end of the 5th
    (_state(CycleStatus.STATEMENTS_ISSUED, date(2026, 11, 3)), date(2026, 11, 5),
     [IssueDailyReports(date(2026, 11, 4))]),
    (_state(CycleStatus.STATEMENTS_ISSUED, date(2026, 11, 4)), date(2026, 11, 6),
     [IssueDailyReports(date(2026, 11, 5)), PassConfirmationDeadline(OCT)]),
    (_state(CycleStatus.STATEMENTS_ISSUED, date(2026, 11, 8),
            confirmation_deadline_passed=True), date(2026, 11, 10),
     [IssueDailyReports(date(2026, 11, 9)), IssueInstructions(OCT)]),
    # remittances are due on the 15th and overdue after it, checked once; 15 Nov 2026 is a
    # Sunday, so the due date moves to Monday the 16th (issue 16) and overdue is the 17th
    (_state(CycleStatus.INSTRUCTIONS_ISSUED, date(2026, 11, 13),
            confirmation_deadline_passed=True), date(2026, 11, 15),
     [IssueDailyReports(date(2026, 11, 14))]),
    (_state(CycleStatus.INSTRUCTIONS_ISSUED, date(2026, 11, 14),
            confirmation_deadline_passed=True), date(2026, 11, 16),
     [IssueDailyReports(date(2026, 11, 15))]),
    (_state(CycleStatus.INSTRUCTIONS_ISSUED, date(2026, 11, 15),
            confirmation_deadline_passed=True), date(2026, 11, 17),
     [IssueDailyReports(date(2026, 11, 16)), FlagOverdueRemittances(OCT)]),
    # distribution from the 20th, daily until the cycle closes
    (_state(CycleStatus.INSTRUCTIONS_ISSUED, date(2026, 11, 20),
            confirmation_deadline_passed=True, overdue_checked=True), date(2026, 11, 22),
     [IssueDailyReports(date(2026, 11, 21)), Distribute(OCT)]),
    (_state(CycleStatus.CLOSED, date(2026, 11, 20)), date(2026, 11, 22),
     [IssueDailyReports(date(2026, 11, 21))]),
    # a day after a gap catches up on everything, in order
    (_state(CycleStatus.OPEN, date(2026, 11, 22)), date(2026, 11, 25),
     [IssueDailyReports(date(2026, 11, 23)), IssueDailyReports(date(2026, 11, 24)),
      IssueStatements(OCT), PassConfirmationDeadline(OCT), IssueInstructions(OCT),
      FlagOverdueRemittances(OCT), Distribute(OCT)]),
    # a day seen again does nothing new
    (_state(CycleStatus.OPEN, date(2026, 10, 31)), date(2026, 10, 31), []),
])
def test_due_actions(state: ClearingState, day: date, expected: list[object]) -> None:
    assert due_actions(state, day) == expected


def test_last_month_gets_statements_even_without_items() -> None:
    state = ClearingState(reported_through=date(2026, 11, 30), issued_through="2026-10")
    actions = due_actions(state, date(2026, 12, 2))
    assert actions == [IssueDailyReports(date(2026, 12, 1)), IssueStatements("2026-11")]
    assert needs(actions) == CalendarNeeds(date(2026, 12, 1), ("2026-11",))


def test_the_first_day_ever_also_clears_last_month() -> None:
    assert due_actions(ClearingState(), date(2026, 11, 2)) == [
        IssueDailyReports(date(2026, 11, 1)), IssueStatements(OCT)]


def test_statements_need_the_cycles_items() -> None:
    with pytest.raises(ValueError, match="load the cycle's items"):
        on_day_started(_state(CycleStatus.OPEN, date(2026, 11, 1)),
                       DayStarted(date=date(2026, 11, 2)), ref("calendar"), CalendarInputs())


def _day(book: InMemoryBook, day: date) -> None:
    book.apply(DayStarted(date=day), EventRef("calendar", f"day-{day}"))


# ---- daily reports --------------------------------------------------------------------------


def test_daily_report_counts_amounts_and_checksum() -> None:
    book = InMemoryBook()
    s1 = completed("S1", insured=A, care=B, settled_at=at(10, 3, 9), fund_pay="1000.00")
    s2 = completed("S2", insured=B, care=A, settled_at=at(10, 3, 15), fund_pay="80.50")
    s3 = completed("S3", insured=A, care=C, settled_at=at(10, 3, 16), fund_pay="20.00")
    for event in (s1, s2, s3, refunded("R2", s2, at(10, 3, 17))):
        book.apply(event, ref())
    _day(book, date(2026, 10, 4))
    reports = {r.agency: r for r in book.payloads(DailyReport)}
    assert sorted(reports) == [A, B, C]
    a = reports[A]
    assert a.date == date(2026, 10, 3) and a.settlement_count == 4
    by_counterpart = {c.counterpart: c for c in a.counterparts}
    assert (by_counterpart[B].receivable_count, by_counterpart[B].receivable) == (2, Decimal(0))
    assert (by_counterpart[B].payable_count, by_counterpart[B].payable) == (1, Decimal("1000"))
    assert (by_counterpart[C].payable_count, by_counterpart[C].payable) == (1, Decimal("20"))
    lines = sorted(["S1:100000", "S2:8050", "S2:-8050", "S3:2000"])
    assert a.checksum == hashlib.sha256("\n".join(lines).encode()).hexdigest()
    assert reports[C].checksum == hashlib.sha256(b"S3:2000").hexdigest()


def test_checksum_does_not_depend_on_order() -> None:
    book = InMemoryBook()
    for n in range(5):
        book.apply(completed(f"S{n}", A, B, at(10, 3), f"{n + 1}.00"), ref())
    items = list(book.items.values())
    assert checksum(items) == checksum(reversed(items))


def test_late_items_go_into_the_next_report() -> None:
    book = InMemoryBook()
    _day(book, date(2026, 10, 4))
    book.apply(completed("LATE", A, B, at(10, 3, 23), "5.00"), ref())
    book.apply(completed("S2", A, B, at(10, 4, 9), "7.00"), ref())
    _day(book, date(2026, 10, 5))
    (report_a,) = [r for r in book.payloads(DailyReport) if r.agency == A]
    assert report_a.date == date(2026, 10, 4) and report_a.settlement_count == 2
    assert {i.reported_on for i in book.items.values()} == {date(2026, 10, 4)}


def test_answers_to_daily_reports_are_recorded_or_refused() -> None:
    book = InMemoryBook()
    book.apply(completed("S1", A, B, at(10, 3), "5.00"), ref())
    _day(book, date(2026, 10, 4))
    (report,) = [r for r in book.payloads(DailyReport) if r.agency == B]
    day = date(2026, 10, 3)

    wrong = book.apply(DailyReportConfirmed(agency=B, date=day, checksum="0" * 64), ref())
    unknown = book.apply(DailyReportDisputed(agency=B, date=day, settlement_ids=["S9"]), ref())
    missing = book.apply(DailyReportConfirmed(agency=C, date=day), ref())
    rejections = [d.results[0].payload for d in (wrong, unknown, missing)]
    assert all(isinstance(r, SubmissionRejected) for r in rejections)
    codes = [r.reasons[0]["code"] for r in rejections if isinstance(r, SubmissionRejected)]
    assert codes == ["checksum_mismatch", "unknown_settlement", "unknown_report"]
    assert [d.results[0].key for d in (wrong, unknown, missing)] == [B, B, C]

    book.apply(DailyReportConfirmed(agency=B, date=day, checksum=report.checksum), ref())
    assert book.reports[(B, day)].answer is Answer.CONFIRMED


def test_disputed_settlements_are_listed_until_resolved() -> None:
    book = InMemoryBook()
    s1 = completed("S1", A, B, at(10, 3), "5.00")
    s2 = completed("S2", C, B, at(10, 3), "6.00")
    book.apply(s1, ref())
    book.apply(s2, ref())
    _day(book, date(2026, 10, 4))
    book.apply(DailyReportDisputed(agency=A, date=date(2026, 10, 3), settlement_ids=["S1"],
                                   reason="not our insured"), ref())
    book.apply(DailyReportDisputed(agency=C, date=date(2026, 10, 3), settlement_ids=["S2"]),
               ref())
    assert book.reports[(A, date(2026, 10, 3))].answer is Answer.DISPUTED
    book.apply(completed("S3", A, B, at(10, 20), "1.00"), ref())
    book.apply(completed("S4", A, C, at(11, 20), "1.00"), ref())
    book.apply(refunded("R2", s2, at(10, 25)), ref())  # a refund resolves the dispute
    _day(book, date(2026, 11, 2))
    statements = {s.agency: s for s in book.payloads(StatementIssued)}
    assert statements[A].disputed_settlement_ids == ["S1"]
    assert statements[C].disputed_settlement_ids == []

    # confirming the statement that listed it resolves it
    book.apply(StatementConfirmed(agency=A, cycle=OCT, checksum=statements[A].checksum), ref())
    assert book.state.cycles[OCT].statements[A].answer is Answer.CONFIRMED
    assert book.state.open_disputes() == {}


def test_state_survives_a_json_round_trip() -> None:
    book = InMemoryBook()
    book.apply(completed("S1", A, B, at(10, 3), "5.00"), ref())
    book.apply(DailyReportDisputed(agency=A, date=date(2026, 10, 3), settlement_ids=["S1"]),
               ref())
    for day in range(1, 12):
        _day(book, date(2026, 11, day))
    assert book.state.cycles[OCT].status is CycleStatus.INSTRUCTIONS_ISSUED
    assert ClearingState.from_json(book.state.to_json()) == book.state
