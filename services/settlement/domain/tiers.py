"""Benefit tiers (待遇档次): what kind of trip a settlement is, and the ratio reduction for it.

The trip comes from codes (insuring pool, care-place pool, hospital county); the basis from
the filing in force, or for unfiled care from the submission's emergency and referral flags;
the tier and reduction from the insuring agency's tier table, which is data
(reference/tiers/*.toml), never code. Whether unfiled care is settled at all is policy.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from shared import regions
from shared.events.filing import FilingCategory


class Trip(enum.StrEnum):
    """Where the hospital is relative to the insuring pool."""

    SAME_POOL = "same_pool"
    SAME_CITY_OTHER_COUNTY_POOL = "same_city_other_county_pool"
    OTHER_CITY_COUNTY_AREA = "other_city_county_area"
    OTHER_CITY_DISTRICT = "other_city_district"
    OTHER_PROVINCE = "other_province"

    @property
    def in_province(self) -> bool:
        return self is not Trip.OTHER_PROVINCE


class Basis(enum.StrEnum):
    """What entitles the person to the care: a filing's category group, or no filing."""

    LONG_TERM = "long_term"
    REFERRAL = "referral"
    EMERGENCY = "emergency"
    TEMPORARY_OTHER = "temporary_other"
    #: Optional rows: unfiled care the hospital flags an emergency / a referral. An agency
    #: that settles such care better than other unfiled care adds them to its table.
    UNFILED_EMERGENCY = "unfiled_emergency"
    UNFILED_REFERRAL = "unfiled_referral"
    #: Not a row: unfiled care without such a row takes the lowest tier of its trip.
    NONE = "none"


Tier = Literal[1, 2, 3]

#: Every trip of a table must have a row for each of these; the others are optional.
FILED_BASES = (Basis.LONG_TERM, Basis.REFERRAL, Basis.EMERGENCY, Basis.TEMPORARY_OTHER)

_BASIS_OF_CATEGORY = {
    FilingCategory.RELOCATED_RETIREE: Basis.LONG_TERM,
    FilingCategory.LONG_TERM_RESIDENT: Basis.LONG_TERM,
    FilingCategory.RESIDENT_WORKER: Basis.LONG_TERM,
    FilingCategory.CHILDBIRTH: Basis.LONG_TERM,  # 异地生育 is handled like long-term residence
    FilingCategory.REFERRAL: Basis.REFERRAL,
    FilingCategory.EMERGENCY: Basis.EMERGENCY,
    FilingCategory.TEMPORARY_OTHER: Basis.TEMPORARY_OTHER,
}


def basis_of(category: FilingCategory) -> Basis:
    """The tier-table basis of a filing category."""
    return _BASIS_OF_CATEGORY[category]


@dataclass(frozen=True)
class TierRow:
    """One row of a tier table: for this trip and basis, this tier and reduction."""

    trip: Trip
    basis: Basis
    tier: Tier
    reduction: Decimal
    note: str = ""


@dataclass(frozen=True)
class TierTable:
    """An agency's tier table, loaded from reference/tiers/<name>.toml."""

    name: str
    title: str
    rows: tuple[TierRow, ...]
    #: The visit types (VisitType values) the reductions apply to; care of any other type is
    #: settled at the local ratio (tier 1, no reduction). None: every visit type.
    visit_types: frozenset[str] | None = None
    #: First day of care the table applies to (None: always); the last day of its
    #: transition period (过渡期), documentation only: the earlier rules are not data here.
    effective_from: date | None = None
    transition_until: date | None = None

    def reduces(self, visit_type: str | None) -> bool:
        """Whether this table's reductions apply to a visit of `visit_type`."""
        return self.visit_types is None or visit_type is None or visit_type in self.visit_types

    def row(self, trip: Trip, basis: Basis) -> TierRow | None:
        return next((r for r in self.rows if r.trip is trip and r.basis is basis), None)

    def lowest(self, trip: Trip) -> TierRow:
        """The least favourable filed row of the trip: highest tier, then largest reduction."""
        return max((r for r in self.rows if r.trip is trip and r.basis in FILED_BASES),
                   key=lambda r: (r.tier, r.reduction))


@dataclass(frozen=True)
class FilingOption:
    """A filing in force that covers the hospital, as far as the tier is concerned."""

    filing_id: str
    category: FilingCategory


@dataclass(frozen=True)
class TierChoice:
    """The tier applied: from which row, and through which filing (None: unfiled)."""

    trip: Trip
    basis: Basis
    tier: Tier
    reduction: Decimal
    filing_id: str | None


@functools.lru_cache(maxsize=65_536)  # pure: the same pools and hospitals come back all month
def classify_trip(
    insured_agency: str, care_agency: str, hospital_county: str, county_area: bool
) -> Trip:
    """Classify a trip from the two pool codes (agency code == pool code) and the hospital.

    The care-place pool is needed besides the hospital's county: a city pool such as
    吉林市 (220200) does not cover 蛟河市 (220281), which has a pool of its own.
    """
    if not regions.contains(care_agency, hospital_county):
        raise ValueError(f"hospital county {hospital_county} lies outside its care agency "
                         f"{care_agency}: fix the hospital's reference data")
    if insured_agency == care_agency:
        return Trip.SAME_POOL
    insured_city, care_city = _city(insured_agency), _city(care_agency)
    if insured_city is not None and insured_city == care_city:
        return Trip.SAME_CITY_OTHER_COUNTY_POOL
    if regions.province_of(insured_agency) != regions.province_of(care_agency):
        return Trip.OTHER_PROVINCE
    return Trip.OTHER_CITY_COUNTY_AREA if county_area else Trip.OTHER_CITY_DISTRICT


def _city(pool: str) -> str | None:
    if regions.level(pool) is regions.RegionLevel.PROVINCE:
        return None
    return regions.city_of(pool)


def unfiled_row(table: TierTable, trip: Trip, *, emergency: bool, referral: bool) -> TierRow:
    """The row for care no filing covers (when the agency settles it at all): the table's
    row for a flagged emergency or referral if it has one, else the trip's lowest tier."""
    flags = ((Basis.UNFILED_EMERGENCY, emergency), (Basis.UNFILED_REFERRAL, referral))
    for basis in (basis for basis, flagged in flags if flagged):
        row = table.row(trip, basis)
        if row is not None:
            return row
    return table.lowest(trip)


def choose_tier(
    table: TierTable,
    trip: Trip,
    filings: Iterable[FilingOption],
    *,
    unfiled_allowed: bool,
    emergency: bool,
    referral: bool,
    visit_type: str | None = None,
) -> TierChoice | None:
    """The most favourable tier among the filings covering the care and, when the agency
    settles unfiled care here, the unfiled option.

    Jilin's 择优识别: a person is settled at the best tier any of their titles gives. On a tie
    a filing is preferred, so the event names it. None when there is no option at all.
    A `visit_type` outside the table's `visit_types` gets no reduction (tier 1).
    """
    choices: list[TierChoice] = []
    for filing in filings:
        basis = basis_of(filing.category)
        row = table.row(trip, basis)
        if row is None:  # a loaded table has every filed basis; guard against hand-made ones
            raise ValueError(f"tier table {table.name} has no row for {trip}/{basis}")
        choices.append(TierChoice(trip, basis, row.tier, row.reduction, filing.filing_id))
    if unfiled_allowed:
        row = unfiled_row(table, trip, emergency=emergency, referral=referral)
        basis = row.basis if row.basis not in FILED_BASES else Basis.NONE
        choices.append(TierChoice(trip, basis, row.tier, row.reduction, None))
    if not choices:
        return None
    if not table.reduces(visit_type):  # a visit type the table's reductions are not stated for
        choices = [TierChoice(c.trip, c.basis, 1, Decimal("0.00"), c.filing_id)
                   for c in choices]
    return min(choices, key=lambda c: (c.reduction, c.tier, c.filing_id is None))
