"""GB/T 2260 region codes: province ``22``, city ``2201``, county-level ``220102``.

Digits 5–6 of a county-level code say what it is: 01–20 a city district
(市辖区), 21–80 a county (县), 81–99 a county-level city (县级市). A six-digit
code ending in ``00`` names a city (``220100``) or, ending in ``0000``, a
province (``220000``).
"""

from __future__ import annotations

import enum
import functools
import re

_CODE_RE = re.compile(r"^[1-8][0-9]{5}$")


class RegionLevel(enum.StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"  # any county-level unit


class CountyKind(enum.StrEnum):
    DISTRICT = "district"  # 市辖区, 01–20
    COUNTY = "county"  # 县, 21–80
    COUNTY_CITY = "county_city"  # 县级市, 81–99


class RegionCodeError(ValueError):
    """Not a GB/T 2260 six-digit region code."""


def validate(code: str) -> str:
    if not isinstance(code, str) or not _CODE_RE.match(code):
        raise RegionCodeError(f"region code must be six digits (GB/T 2260), got {code!r}")
    if code[2:4] == "00" and code[4:] != "00":
        raise RegionCodeError(f"region code {code!r} has a county part but no city part")
    return code


def level(code: str) -> RegionLevel:
    if not isinstance(code, str):
        validate(code)  # raises RegionCodeError
    return _level(code)


@functools.lru_cache(maxsize=16_384)  # pure; asked several times a settlement
def _level(code: str) -> RegionLevel:
    validate(code)
    if code[2:] == "0000":
        return RegionLevel.PROVINCE
    if code[4:] == "00":
        return RegionLevel.CITY
    return RegionLevel.COUNTY


def province_of(code: str) -> str:
    return validate(code)[:2] + "0000"


def city_of(code: str) -> str:
    """The city a code belongs to; a province code has none."""
    if level(code) is RegionLevel.PROVINCE:
        raise RegionCodeError(f"{code} is a province and belongs to no city")
    return code[:4] + "00"


def county_kind(code: str) -> CountyKind:
    if level(code) is not RegionLevel.COUNTY:
        raise RegionCodeError(f"{code} is not a county-level code")
    n = int(code[4:])
    if n <= 20:
        return CountyKind.DISTRICT
    if n <= 80:
        return CountyKind.COUNTY
    return CountyKind.COUNTY_CITY


def is_county_area(code: str) -> bool:
    """县域: a county or a county-level city, not a city district."""
    return county_kind(code) is not CountyKind.DISTRICT


def contains(outer: str, inner: str) -> bool:
    """Whether region `inner` lies inside (or is) region `outer`."""
    lv = level(outer)
    validate(inner)
    if lv is RegionLevel.PROVINCE:
        return inner[:2] == outer[:2]
    if lv is RegionLevel.CITY:
        return inner[:4] == outer[:4]
    return inner == outer
