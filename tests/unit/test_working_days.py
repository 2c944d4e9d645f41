"""The working-day calendar (reference/calendars/working-days.toml) and the clearing
timetable it moves (issue 16: deadlines on weekends and public holidays)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from services.clearing.domain.calendar import (
    FlagOverdueRemittances,
    IssueDailyReports,
    IssueInstructions,
    IssueStatements,
    PassConfirmationDeadline,
    due_actions,
)
from services.clearing.domain.periods import Timetable, timetable
from services.clearing.domain.state import ClearingState, CycleState, CycleStatus
from shared.working_days import CalendarError, WorkingDays, load_working_days

REFERENCE = Path(__file__).resolve().parents[2] / "reference"
CALENDAR = load_working_days(REFERENCE)


@pytest.mark.parametrize(("day", "working"), [
    (date(2026, 3, 13), True),    # Friday
    (date(2026, 3, 14), False),   # Saturday
    (date(2026, 3, 15), False),   # Sunday
    (date(2026, 2, 14), True),    # Saturday, make-up working day before 春节
    (date(2026, 2, 16), False),   # Monday inside 春节 (15–23 Feb)
    (date(2026, 2, 23), False),   # last day of 春节
    (date(2026, 2, 24), True),
    (date(2026, 10, 2), False),   # 国庆节 1–7 Oct
    (date(2026, 10, 5), False),
    (date(2026, 10, 8), True),
    (date(2026, 10, 10), True),   # Saturday, make-up working day
    (date(2026, 9, 20), True),    # Sunday, make-up working day
    (date(2026, 9, 25), False),   # Friday, 中秋节
    (date(2027, 1, 1), False),    # 2027 not announced: fixed-date 元旦 still known
    (date(2027, 5, 3), True),     # Monday: 劳动节 is 1–2 May only until 2027 is announced
    (date(2027, 10, 4), True),    # Monday: 国庆节 is 1–3 Oct only until 2027 is announced
    (date(2027, 2, 8), True),     # Monday near 春节 2027: lunar holidays not known yet
    (date(2027, 2, 6), False),    # Saturday
])
def test_working_days(day: date, working: bool) -> None:
    assert CALENDAR.is_working_day(day) is working


@pytest.mark.parametrize(("day", "on_or_after", "after_one", "after_three"), [
    (date(2026, 3, 15), date(2026, 3, 16), date(2026, 3, 16), date(2026, 3, 18)),
    (date(2026, 3, 13), date(2026, 3, 13), date(2026, 3, 16), date(2026, 3, 18)),
    (date(2026, 10, 1), date(2026, 10, 8), date(2026, 10, 8), date(2026, 10, 10)),
    (date(2026, 2, 13), date(2026, 2, 13), date(2026, 2, 14), date(2026, 2, 25)),
])
def test_counting_across_days_off(day: date, on_or_after: date, after_one: date,
                                  after_three: date) -> None:
    assert CALENDAR.on_or_after(day) == on_or_after
    assert CALENDAR.after(day) == after_one
    assert CALENDAR.after(day, 3) == after_three


def test_working_days_between() -> None:
    assert CALENDAR.between(date(2026, 9, 30), date(2026, 10, 12)) == 4  # 8, 9, 10 (Sat), 12
    assert CALENDAR.between(date(2026, 3, 13), date(2026, 3, 16)) == 1


@pytest.mark.parametrize(("cycle", "expected"), [
    # an ordinary month: every nominal day is a working day
    ("2026-02", Timetable(date(2026, 3, 2), date(2026, 3, 5), date(2026, 3, 10),
                          date(2026, 3, 16),  # the 15th is a Sunday: Monday the 16th
                          date(2026, 3, 20))),
    # 2nd and 5th inside 国庆节: statements on the 8th, three working days to confirm
    # (9, 10 = make-up Saturday, 12), instructions the working day after
    ("2026-09", Timetable(date(2026, 10, 8), date(2026, 10, 12), date(2026, 10, 13),
                          date(2026, 10, 15), date(2026, 10, 20))),
    # the 5th on a Saturday: confirmation deadline on Monday the 7th; the 20th is a Sunday
    # but a make-up working day (调休 before 国庆节), so the payout stays on it
    ("2026-08", Timetable(date(2026, 9, 2), date(2026, 9, 7), date(2026, 9, 10),
                          date(2026, 9, 15), date(2026, 9, 20))),
    # the 15th and 20th inside 春节 (15–23 Feb): remittance on the 24th, payout the 25th
    ("2026-01", Timetable(date(2026, 2, 2), date(2026, 2, 5), date(2026, 2, 10),
                          date(2026, 2, 24), date(2026, 2, 25))),
])
def test_the_timetable_moves_to_working_days(cycle: str, expected: Timetable) -> None:
    assert timetable(cycle, CALENDAR) == expected
    assert timetable(cycle) == expected  # the reference calendar is the default


def _issued(cycle: str, status: CycleStatus, day: date, **flags: bool) -> ClearingState:
    """`cycle` in `status` the evening before `day`, reported through the day before that."""
    state = ClearingState(reported_through=day - timedelta(days=2), issued_through=cycle)
    state.cycles[cycle] = CycleState(cycle=cycle, status=status, **flags)
    return state


def _reports(day: date) -> IssueDailyReports:
    return IssueDailyReports(day - timedelta(days=1))


MAR_16, MAR_17 = date(2026, 3, 16), date(2026, 3, 17)
OCT_2, OCT_6, OCT_8 = date(2026, 10, 2), date(2026, 10, 6), date(2026, 10, 8)
OCT_12, OCT_13 = date(2026, 10, 12), date(2026, 10, 13)


@pytest.mark.parametrize(("state", "day", "expected"), [
    # cycle 2026-02: due Sunday 15 March -> Monday 16th; not overdue on the 16th
    (_issued("2026-02", CycleStatus.INSTRUCTIONS_ISSUED, MAR_16,
             confirmation_deadline_passed=True), MAR_16, [_reports(MAR_16)]),
    (_issued("2026-02", CycleStatus.INSTRUCTIONS_ISSUED, MAR_17,
             confirmation_deadline_passed=True), MAR_17,
     [_reports(MAR_17), FlagOverdueRemittances("2026-02")]),
    # cycle 2026-09: no statements on 2 October (国庆节), nor any deadline passing on the 5th
    (ClearingState(reported_through=OCT_2 - timedelta(days=2), issued_through="2026-08"),
     OCT_2, [_reports(OCT_2)]),
    (ClearingState(reported_through=OCT_8 - timedelta(days=2), issued_through="2026-08"),
     OCT_8, [_reports(OCT_8), IssueStatements("2026-09")]),
    (_issued("2026-09", CycleStatus.STATEMENTS_ISSUED, OCT_6), OCT_6, [_reports(OCT_6)]),
    (_issued("2026-09", CycleStatus.STATEMENTS_ISSUED, OCT_12), OCT_12, [_reports(OCT_12)]),
    (_issued("2026-09", CycleStatus.STATEMENTS_ISSUED, OCT_13), OCT_13,
     [_reports(OCT_13), PassConfirmationDeadline("2026-09"), IssueInstructions("2026-09")]),
])
def test_deadlines_on_days_off_move(state: ClearingState, day: date,
                                    expected: list[object]) -> None:
    assert due_actions(state, day) == expected


def test_a_make_up_day_that_is_also_a_holiday_is_refused(tmp_path: Path) -> None:
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "working-days.toml").write_text(
        'weekend = ["saturday", "sunday"]\n[years.2026]\nannounced = true\n'
        'holidays = [["2026-10-01", "2026-10-07", "国庆节"]]\n'
        'make_up_working_days = ["2026-10-03"]\n', encoding="utf-8")
    with pytest.raises(CalendarError, match="both holidays and make-up"):
        load_working_days(tmp_path)


def test_a_weekend_of_its_own() -> None:
    friday_off = WorkingDays(weekend=frozenset({4}), holidays=frozenset(),
                             make_up_working_days=frozenset())
    assert friday_off.on_or_after(date(2026, 3, 13)) == date(2026, 3, 14)
