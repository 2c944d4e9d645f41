"""Clearing's periods: monthly cycles (``YYYY-MM``) of business time (`shared.business_time`).

The timetable follows Jiangsu's rules (DOMAIN.md, flow 6): statements by the 2nd,
confirmations by the 5th, nets by the 10th, remittances by the 15th, payouts by the 20th.
"""

from __future__ import annotations

from datetime import date, datetime

from shared.business_time import in_business_zone

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


def milestone(cycle: str, day_of_month: int) -> date:
    """A day of the month that follows `cycle` (statements, deadlines and payments of
    a cycle all fall in the next month)."""
    year, month = _year_month(next_cycle(cycle))
    return date(year, month, day_of_month)
