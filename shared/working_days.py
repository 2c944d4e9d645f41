"""Working days (工作日) of mainland China: weekends, public holidays and make-up working days
(调休), from reference data (reference/calendars/working-days.toml), never from code.

Pure once loaded: `WorkingDays` answers from its sets. Rules that count in working days (the
emergency filing's "2 个工作日") or move a deadline off a day off (the clearing timetable,
docs/rules.md) all use this one calendar.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: Far more than any run of days off (the longest is a 9-day 春节): a guard against bad data.
_LONGEST_BREAK = 60


class CalendarError(ValueError):
    """The calendar file is missing or wrong; the message names the file and the entry."""


@dataclass(frozen=True)
class WorkingDays:
    """The working-day calendar: which dates are days off, and counting across them."""

    weekend: frozenset[int]  # date.weekday() numbers
    holidays: frozenset[date]
    make_up_working_days: frozenset[date]
    #: (month, day) of statutory holidays applied to years without an announced schedule.
    fixed_date_holidays: tuple[tuple[int, int], ...] = ()
    announced_years: frozenset[int] = frozenset()

    def is_working_day(self, day: date) -> bool:
        if day in self.make_up_working_days:
            return True
        if day in self.holidays:
            return False
        if day.year not in self.announced_years and (day.month, day.day) in \
                self.fixed_date_holidays:
            return False
        return day.weekday() not in self.weekend

    def on_or_after(self, day: date) -> date:
        """`day` if it is a working day, else the next one (期间届满日遇休息日顺延)."""
        for offset in range(_LONGEST_BREAK):
            candidate = day + timedelta(days=offset)
            if self.is_working_day(candidate):
                return candidate
        raise CalendarError(f"no working day within {_LONGEST_BREAK} days from {day}: "
                            "check reference/calendars/working-days.toml")

    def after(self, day: date, working_days: int = 1) -> date:
        """The `working_days`-th working day after `day` (not counting `day` itself)."""
        if working_days < 0:
            raise ValueError(f"working_days {working_days} is negative")
        current = day
        for _ in range(working_days):
            current = self.on_or_after(current + timedelta(days=1))
        return current

    def between(self, first: date, last: date) -> int:
        """Working days in (first, last]: how many working days `last` lies after `first`."""
        return sum(1 for n in range(1, (last - first).days + 1)
                   if self.is_working_day(first + timedelta(days=n)))


def load_working_days(directory: str | Path) -> WorkingDays:
    """Read ``<directory>/calendars/working-days.toml``; every problem is named."""
    file = Path(directory) / "calendars" / "working-days.toml"
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CalendarError(f"{file}: missing; restore it from version control") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(f"{file}: not valid TOML ({exc})") from exc
    try:
        weekend = frozenset(_WEEKDAYS.index(name) for name in document["weekend"])
        fixed = tuple(_month_day(text) for text in document.get("fixed_date_holidays", ()))
        holidays: set[date] = set()
        make_up: set[date] = set()
        announced: set[int] = set()
        for year_text, entry in document.get("years", {}).items():
            year = int(year_text)
            if entry.get("announced", False):
                announced.add(year)
            for first, last, _name in entry.get("holidays", ()):
                holidays |= set(_span(date.fromisoformat(first), date.fromisoformat(last), year))
            for text in entry.get("make_up_working_days", ()):
                day = date.fromisoformat(text)
                _in_year(day, year)
                make_up.add(day)
    except (KeyError, ValueError, TypeError) as exc:
        raise CalendarError(f"{file}: {exc!r}; each year needs announced, holidays as "
                            "[first, last, name] and make_up_working_days as dates") from exc
    if holidays & make_up:
        raise CalendarError(f"{file}: {sorted(holidays & make_up)} are both holidays and "
                            "make-up working days")
    return WorkingDays(weekend=weekend, holidays=frozenset(holidays),
                       make_up_working_days=frozenset(make_up), fixed_date_holidays=fixed,
                       announced_years=frozenset(announced))


@functools.cache
def _cached(directory: Path) -> WorkingDays:
    return load_working_days(directory)


def default_working_days() -> WorkingDays:
    """The calendar of the reference directory in use (CLEARINGHOUSE_REFERENCE or the
    project's reference/), loaded once per process."""
    from shared.reference import DEFAULT_DIRECTORY, ENV_VAR

    return _cached(Path(os.environ.get(ENV_VAR) or DEFAULT_DIRECTORY).resolve())


def _month_day(text: str) -> tuple[int, int]:
    month, day = text.split("-")
    date(2000, int(month), int(day))  # a real day of the year (2000: 29 Feb allowed)
    return int(month), int(day)


def _span(first: date, last: date, year: int) -> Iterable[date]:
    if last < first:
        raise ValueError(f"holiday {first}..{last} ends before it starts")
    _in_year(first, year)
    return (first + timedelta(days=n) for n in range((last - first).days + 1))


def _in_year(day: date, year: int) -> None:
    if day.year != year:
        raise ValueError(f"{day} is listed under year {year}")
