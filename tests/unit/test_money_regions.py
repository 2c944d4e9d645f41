"""Money helpers and GB/T 2260 region codes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared import regions
from shared.money import MoneyError, format_money, from_fen, parse_money, round_fen, to_fen


@pytest.mark.parametrize(("value", "rounded"), [
    ("0.005", "0.01"), ("0.004", "0.00"), ("1.235", "1.24"), ("1.245", "1.25"),
    ("-0.005", "-0.01"), ("2.675", "2.68"),
])
def test_round_fen_is_half_up(value: str, rounded: str) -> None:
    assert round_fen(Decimal(value)) == Decimal(rounded)


def test_money_round_trips_through_fen() -> None:
    for text in ("0.00", "0.01", "1234.50", "999999999999.99", "-12.30"):
        assert format_money(from_fen(to_fen(parse_money(text)))) == text


@pytest.mark.parametrize("bad", [1.5, 1, "1.5", "1.005", "01.00", "1e3", "", None, "NaN"])
def test_parse_money_refuses_anything_but_two_decimal_strings(bad: object) -> None:
    with pytest.raises(MoneyError):
        parse_money(bad)


@pytest.mark.parametrize(("code", "level", "kind", "county_area"), [
    ("220000", regions.RegionLevel.PROVINCE, None, None),
    ("220100", regions.RegionLevel.CITY, None, None),
    ("220102", regions.RegionLevel.COUNTY, regions.CountyKind.DISTRICT, False),
    ("220122", regions.RegionLevel.COUNTY, regions.CountyKind.COUNTY, True),
    ("220281", regions.RegionLevel.COUNTY, regions.CountyKind.COUNTY_CITY, True),
    ("140121", regions.RegionLevel.COUNTY, regions.CountyKind.COUNTY, True),
])
def test_region_levels_and_kinds(code: str, level: object, kind: object,
                                 county_area: object) -> None:
    assert regions.level(code) is level
    if kind is not None:
        assert regions.county_kind(code) is kind
        assert regions.is_county_area(code) is county_area


def test_region_containment() -> None:
    assert regions.province_of("220281") == "220000"
    assert regions.city_of("220281") == "220200"
    assert regions.contains("220000", "220281")
    assert regions.contains("220200", "220281")
    assert not regions.contains("220100", "220281")
    assert regions.contains("220281", "220281")


@pytest.mark.parametrize("bad", ["22", "2201001", "920000", "220099x", "220012", 220100])
def test_invalid_region_codes(bad: object) -> None:
    with pytest.raises(regions.RegionCodeError):
        regions.level(bad)  # type: ignore[arg-type]
