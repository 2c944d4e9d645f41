"""Business time: every date the rules speak of is a calendar date of Asia/Shanghai.

A time without an offset is refused (`ValueError`) wherever it is converted: the contract's
times carry one, and converting a naive time would silently use the host's zone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

#: Asia/Shanghai has kept UTC+8 without daylight saving since 1991: a fixed offset needs no
#: time-zone database on the host.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")


def in_business_zone(moment: datetime) -> datetime:
    """The same instant on the Asia/Shanghai clock; a naive time is refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"time {moment.isoformat()} has no offset; business times need one "
                         f"(for example +08:00 or Z)")
    return moment.astimezone(SHANGHAI)


def business_date(moment: datetime) -> date:
    """The Asia/Shanghai calendar date of an aware time (an envelope's ``time``)."""
    return in_business_zone(moment).date()


def at(day: date, clock: time = time(0)) -> datetime:
    """`clock` o'clock on a business day, Asia/Shanghai (`clock` must not carry a zone)."""
    if clock.tzinfo is not None:
        raise ValueError(f"clock time {clock.isoformat()} carries a zone; give the wall time")
    return datetime.combine(day, clock, tzinfo=SHANGHAI)


def start_of(day: date) -> datetime:
    """Midnight at the start of a business day: the business time of whatever the clearing
    calendar does on that day."""
    return at(day)


def end_of(day: date) -> datetime:
    """The last instant of a business day."""
    return at(day, time.max)


def parse_moment(text: str) -> datetime:
    """A business moment typed by a person: a date (``YYYY-MM-DD``) means the end of that
    day; a date and time with an offset is that instant; one without an offset is read on
    the Asia/Shanghai clock (said so in the commands' help), never in the host's zone."""
    if len(text) == 10:
        return end_of(date.fromisoformat(text))
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return at(moment.date(), moment.time())
    return moment
