"""Clearing's periods: monthly cycles (``YYYY-MM``) of business time (`shared.business_time`).

The timetable follows Jiangsu's rules (DOMAIN.md, flow 6): statements by the 2nd,
confirmations by the 5th, nets by the 10th, remittances by the 15th, payouts by the 20th,
each moved off days off by the working-day calendar (`timetable`, docs/rules.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime

from shared.business_time import in_business_zone
from shared.working_days import WorkingDays, default_working_days

#: Day of the month after a cycle on which each step falls due.
STATEMENTS_DAY = 2
CONFIRMATION_DEADLINE_DAY = 5
INSTRUCTIONS_DAY = 10
REMITTANCE_DUE_DAY = 15
DISTRIBUTION_DAY = 20


def cycle_of(moment: datetime) -> str:
    """The clearing cycle of a moment: its calendar month in Asia/Shanghai."""
    return cycle_of_date(in_business_zone(moment))  # the same text as strftime("%Y-%m"), faster


def cycle_of_date(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _year_month(cycle: str) -> tuple[int, int]:
    year, month = cycle.split("-")
    return int(year), int(month)


def next_cycle(cycle: str) -> str:
    year, month = _year_month(cycle)
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def previous_cycle(cycle: str) -> str:
    year, month = _year_month(cycle)
    return f"{year - (month == 1):04d}-{(month - 2) % 12 + 1:02d}"


#: Agencies get at least this many working days after the statements to confirm them (the
#: 2nd to the 5th of Jiangsu's timetable), also when the statements' day was moved.
CONFIRMATION_WORKING_DAYS = 3


def nominal_milestone(cycle: str, day_of_month: int) -> date:
    """A day of the month that follows `cycle` as the rules name it, before any move
    (statements, deadlines and payments of a cycle all fall in the next month)."""
    year, month = _year_month(next_cycle(cycle))
    return date(year, month, day_of_month)


@dataclass(frozen=True)
class Timetable:
    """The dates of one cycle's steps, on working days."""

    statements: date
    confirmation_deadline: date  # the last day to answer; unanswered count as confirmed after
    instructions: date
    remittance_due: date  # payers -> hub; overdue from the day after
    distribution: date  # hub -> receivers

    def by_day_of_month(self) -> dict[int, date]:
        return {STATEMENTS_DAY: self.statements,
                CONFIRMATION_DEADLINE_DAY: self.confirmation_deadline,
                INSTRUCTIONS_DAY: self.instructions, REMITTANCE_DUE_DAY: self.remittance_due,
                DISTRIBUTION_DAY: self.distribution}


def timetable(cycle: str, calendar: WorkingDays | None = None) -> Timetable:
    """The cycle's timetable on `calendar` (the reference calendar by default).

    Rules (docs/rules.md, "Working days"): a step whose nominal day is not a working day
    moves to the next working day (期间届满日遇法定休假日顺延, as 民法典 art. 203 counts
    periods); the confirmation deadline is moreover at least `CONFIRMATION_WORKING_DAYS`
    working days after the statements; and each later step comes at least one working day
    after the one before it, so a moved step never overtakes the next."""
    if calendar is None:
        return _default_timetable(cycle)
    on = calendar.on_or_after
    statements = on(nominal_milestone(cycle, STATEMENTS_DAY))
    confirmation = max(on(nominal_milestone(cycle, CONFIRMATION_DEADLINE_DAY)),
                       calendar.after(statements, CONFIRMATION_WORKING_DAYS))
    instructions = max(on(nominal_milestone(cycle, INSTRUCTIONS_DAY)),
                       calendar.after(confirmation))
    remittance = max(on(nominal_milestone(cycle, REMITTANCE_DUE_DAY)),
                     calendar.after(instructions))
    distribution = max(on(nominal_milestone(cycle, DISTRIBUTION_DAY)),
                       calendar.after(remittance))
    return Timetable(statements, confirmation, instructions, remittance, distribution)


@functools.lru_cache(maxsize=512)
def _default_timetable(cycle: str) -> Timetable:
    return timetable(cycle, default_working_days())


def milestone(cycle: str, day_of_month: int) -> date:
    """The working day on which the step named by its nominal day (`STATEMENTS_DAY`, ...)
    falls for `cycle` (`timetable`); another day of the month moves to a working day too."""
    dates = _default_timetable(cycle).by_day_of_month()
    if day_of_month in dates:
        return dates[day_of_month]
    return default_working_days().on_or_after(nominal_milestone(cycle, day_of_month))
