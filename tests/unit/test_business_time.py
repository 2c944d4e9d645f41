"""One business time (shared.business_time): Asia/Shanghai dates, naive times refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from services.clearing.domain import periods
from services.settlement.domain import accumulators
from shared import business_time, filing_view
from shared.business_time import (
    SHANGHAI,
    at,
    business_date,
    end_of,
    in_business_zone,
    parse_moment,
    start_of,
)

NAIVE = datetime(2026, 10, 31, 23, 30)


@pytest.mark.parametrize(("moment", "expected"), [
    (datetime(2026, 10, 31, 15, 59, tzinfo=UTC), date(2026, 10, 31)),
    (datetime(2026, 10, 31, 16, 0, tzinfo=UTC), date(2026, 11, 1)),
    (datetime(2026, 12, 31, 16, 30, tzinfo=UTC), date(2027, 1, 1)),
    (datetime(2026, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=-5))), date(2026, 3, 1)),
    (datetime(2026, 3, 1, 23, 59, tzinfo=SHANGHAI), date(2026, 3, 1)),
])
def test_business_date_is_the_shanghai_calendar_date(moment: datetime, expected: date) -> None:
    assert business_date(moment) == expected
    assert in_business_zone(moment).utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize("convert", [
    business_date, in_business_zone, periods.cycle_of,
    # the settlement service's accumulators used to convert a naive time in the host's zone
    accumulators.business_date, filing_view.business_date,
])
def test_naive_times_are_refused_everywhere(convert) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="has no offset"):
        convert(NAIVE)


def test_the_services_share_the_one_definition() -> None:
    assert accumulators.business_date is business_time.business_date
    assert filing_view.business_date is business_time.business_date
    assert not hasattr(periods, "SHANGHAI") and not hasattr(accumulators, "BUSINESS_ZONE")


def test_days_start_and_end_in_shanghai() -> None:
    assert start_of(date(2026, 11, 2)).isoformat() == "2026-11-02T00:00:00+08:00"
    assert end_of(date(2026, 11, 2)) == datetime.combine(date(2026, 11, 2), time.max, SHANGHAI)
    assert at(date(2026, 11, 2), time(9, 30)).astimezone(UTC).hour == 1
    with pytest.raises(ValueError, match="carries a zone"):
        at(date(2026, 11, 2), time(9, 30, tzinfo=UTC))


def test_typed_moments_are_read_on_the_shanghai_clock() -> None:
    assert parse_moment("2026-11-02") == end_of(date(2026, 11, 2))
    assert parse_moment("2026-11-02T09:00") == at(date(2026, 11, 2), time(9))
    assert parse_moment("2026-11-02T09:00+00:00").utcoffset() == timedelta(0)
