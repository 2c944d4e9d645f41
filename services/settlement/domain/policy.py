"""Insuring-place policies, tier tables and care-place catalogues, loaded from reference data.

Layout under the reference directory (passed in, never guessed):
``settlement-policies/<agency>.toml``, ``tiers/<table>.toml``, ``catalogues/<region>.toml``.
Money and ratios are TOML strings (``"900.00"``, ``"0.85"``), never floats. Every error
names the file and the key, so whoever edits the data knows what to fix.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from services.settlement.domain.tiers import FILED_BASES, Basis, TierRow, TierTable, Trip
from shared import regions
from shared.events.filing import InsuranceType
from shared.events.settlement import VisitType
from shared.money import MONEY_PATTERN

LEVELS = (1, 2, 3)
E = TypeVar("E", bound=enum.StrEnum)
_MONEY_RE = re.compile(MONEY_PATTERN)


class PolicyError(ValueError):
    """Reference data that cannot be used: says which file and which key."""

    def __init__(self, path: Path, key: str, problem: str):
        super().__init__(f"{path}: {key}: {problem}")
        self.path, self.key, self.problem = path, key, problem


class DeductibleMode(enum.StrEnum):
    PER_ADMISSION = "per_admission"  # inpatient: each stay pays its own deductible
    PER_YEAR = "per_year"  # outpatient: one deductible per calendar year (Asia/Shanghai)


class NoFilingRule(enum.StrEnum):
    """What an insuring agency does with care no filing covers (outside its exemptions)."""

    #: Settle directly at the lowest tier of the trip (Jilin 2022, in province).
    LOWEST_TIER = "lowest_tier"
    #: No direct settlement; the person claims manual reimbursement (手工报销).
    REJECT = "reject"


class NoFilingScope(enum.StrEnum):
    PROVINCE = "province"  # the rule applies in the insuring province; elsewhere: reject
    EVERYWHERE = "everywhere"


#: 免申即享 exemptions: trips, or in-province visit kinds, that never need a filing.
VISIT_EXEMPTIONS = {
    "in_province_outpatient": (VisitType.OUTPATIENT, VisitType.CHRONIC_OUTPATIENT),
    "in_province_pharmacy": (VisitType.PHARMACY,),
}
EXEMPTIONS = frozenset({t.value for t in Trip if t is not Trip.SAME_POOL} | set(VISIT_EXEMPTIONS))


@dataclass(frozen=True)
class NoFilingPolicy:
    """Whether care that no filing covers is settled directly (at the trip's lowest tier)."""

    rule: NoFilingRule
    scope: NoFilingScope
    exemptions: frozenset[str] = frozenset()

    def allows(self, trip: Trip, visit_type: VisitType) -> bool:
        if trip is Trip.SAME_POOL or trip.value in self.exemptions:
            return True
        if trip.in_province and any(visit_type in VISIT_EXEMPTIONS[e]
                                    for e in self.exemptions if e in VISIT_EXEMPTIONS):
            return True
        in_scope = self.scope is NoFilingScope.EVERYWHERE or trip.in_province
        return self.rule is NoFilingRule.LOWEST_TIER and in_scope


@dataclass(frozen=True)
class BenefitRule:
    """Deductible (起付线), ratio (支付比例) and annual cap (封顶线) for one hospital level."""

    deductible: Decimal
    ratio: Decimal
    annual_cap: Decimal


@dataclass(frozen=True)
class VisitRules:
    """How a visit type uses the deductible and cap; pools group visit types sharing them."""

    deductible_mode: DeductibleMode
    deductible_pool: str
    cap_pool: str


@dataclass(frozen=True)
class OtherPayerRule:
    """A further payer of the person's cash part (大病保险 serious-illness insurance, 医疗救助
    medical assistance): `ratio` of the compliant self-pay (合规自付: eligible − fund_pay) above
    `threshold` in the calendar year, at most `annual_cap` a year."""

    ratio: Decimal
    annual_cap: Decimal
    threshold: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class OtherPayers:
    """The insuring agency's further payers: serious-illness insurance by insurance type, and
    medical assistance by the assistance category the enrolment gives the person."""

    serious_illness: Mapping[InsuranceType, OtherPayerRule] = field(default_factory=dict)
    medical_assistance: Mapping[str, OtherPayerRule] = field(default_factory=dict)


@dataclass(frozen=True)
class SettlementPolicy:
    """The insuring agency's policy (参保地政策) for cross-region direct settlement."""

    agency: str
    name: str
    #: The tier table in force now (the latest `effective_from`).
    tier_table: TierTable
    no_filing: NoFilingPolicy
    personal_reason_reduction: Decimal
    visits: Mapping[VisitType, VisitRules]
    rules: Mapping[tuple[InsuranceType, VisitType, int], BenefitRule] = field(repr=False)
    other_payers: OtherPayers = OtherPayers()
    #: Every tier table of the policy, earliest first (`tier_table` and `earlier_tier_tables`).
    tier_tables: tuple[TierTable, ...] = ()

    def tier_table_on(self, care_on: date) -> TierTable | None:
        """The tier table for care on `care_on`: the one with the latest `effective_from` on
        or before it (a table without one applies to any date); None before them all."""
        tables = self.tier_tables or (self.tier_table,)
        found = [t for t in tables if t.effective_from is None or t.effective_from <= care_on]
        return max(found, key=lambda t: t.effective_from or date.min, default=None)

    def rule(self, insurance_type: InsuranceType, visit_type: VisitType,
             level: int) -> BenefitRule | None:
        return self.rules.get((insurance_type, visit_type, level))


@dataclass(frozen=True)
class Catalogue:
    """A care-place catalogue (就医地目录): the category-B self-pay-first share by item code."""

    region: str
    name: str
    default_b_share: Decimal
    b_shares: Mapping[str, Decimal] = field(repr=False)

    def b_share(self, item_code: str) -> Decimal:
        return self.b_shares.get(item_code, self.default_b_share)


# ---- loading ------------------------------------------------------------------------------


def load_policy(reference_dir: Path, agency: str) -> SettlementPolicy:
    """Load ``settlement-policies/<agency>.toml`` with the tier table it names."""
    path = reference_dir / "settlement-policies" / f"{agency}.toml"
    doc = _read(path)
    if _text(doc, "agency", path) != agency:
        raise PolicyError(path, "agency", f"must be {agency!r}, the file's name")
    visits = {vt: _visit_rules(_table(_table(doc, "visit_types", path), vt.value, path,
                                      f"visit_types.{vt.value}"), path, f"visit_types.{vt.value}")
              for vt in VisitType}
    rules: dict[tuple[InsuranceType, VisitType, int], BenefitRule] = {}
    for it in InsuranceType:
        scheme = _table(doc, it.value, path)
        for vt in VisitType:
            where = f"{it.value}.{vt.value}"
            by_level = _table(scheme, vt.value, path, where)
            for lv in LEVELS:
                rules[(it, vt, lv)] = _benefit_rule(
                    _table(by_level, f"level_{lv}", path, f"{where}.level_{lv}"),
                    path, f"{where}.level_{lv}")
    current = load_tier_table(reference_dir, _text(doc, "tier_table", path))
    earlier = doc.get("earlier_tier_tables", [])
    if not isinstance(earlier, list) or not all(isinstance(n, str) for n in earlier):
        raise PolicyError(path, "earlier_tier_tables", "must be a list of tier table names")
    tables = sorted([current, *(load_tier_table(reference_dir, n) for n in earlier)],
                    key=lambda t: t.effective_from or date.min)
    return SettlementPolicy(
        agency=agency,
        name=_text(doc, "name", path),
        tier_table=current,
        tier_tables=tuple(tables),
        no_filing=_no_filing(_table(doc, "no_filing", path), path),
        personal_reason_reduction=_ratio(doc, "personal_reason_reduction", path),
        visits=visits,
        rules=rules,
        other_payers=_other_payers(doc.get("other_payers", {}), path),
    )


def load_policies(reference_dir: Path) -> dict[str, SettlementPolicy]:
    """Every policy under ``settlement-policies/``, by agency code."""
    files = sorted((reference_dir / "settlement-policies").glob("*.toml"))
    return {f.stem: load_policy(reference_dir, f.stem) for f in files}


def load_tier_table(reference_dir: Path, name: str) -> TierTable:
    """Load ``tiers/<name>.toml``; every trip must have a row for every filed basis."""
    path = reference_dir / "tiers" / f"{name}.toml"
    doc = _read(path)
    raw_rows = doc.get("rows")
    if not isinstance(raw_rows, list) or not raw_rows:
        raise PolicyError(path, "rows", "must be a non-empty array of row tables")
    rows: list[TierRow] = []
    for i, raw in enumerate(raw_rows):
        where = f"rows[{i}]"
        if not isinstance(raw, dict):
            raise PolicyError(path, where, "must be a table {trip, basis, tier, reduction}")
        tier = raw.get("tier")
        if tier not in (1, 2, 3) or isinstance(tier, bool):
            raise PolicyError(path, f"{where}.tier", f"must be 1, 2 or 3, got {tier!r}")
        row = TierRow(trip=_enum(Trip, raw, "trip", path, where),
                      basis=_enum(Basis, raw, "basis", path, where), tier=tier,
                      reduction=_ratio(raw, "reduction", path, where),
                      note=str(raw.get("note", "")))
        if row.basis is Basis.NONE:
            raise PolicyError(path, f"{where}.basis", "\"none\" is not a row: unfiled care takes "
                              "the trip's lowest tier, and whether it is settled at all is the "
                              "agency policy's [no_filing]")
        if any(r.trip is row.trip and r.basis is row.basis for r in rows):
            raise PolicyError(path, where, f"second row for {row.trip}/{row.basis}")
        rows.append(row)
    for trip in Trip:
        for basis in FILED_BASES:
            if not any(r.trip is trip and r.basis is basis for r in rows):
                raise PolicyError(path, "rows", f"no row for trip {trip} and basis {basis}")
    visit_types = doc.get("visit_types")
    known = {v.value for v in VisitType}
    if visit_types is not None and (not isinstance(visit_types, list) or not visit_types
                                    or any(v not in known for v in visit_types)):
        raise PolicyError(path, "visit_types", f"must be a non-empty list of {sorted(known)}, "
                          f"got {visit_types!r}")
    dates = {}
    for key in ("effective_from", "transition_until"):
        value = doc.get(key)
        if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
            raise PolicyError(path, key, f"must be a TOML date such as 2022-11-01, got {value!r}")
        dates[key] = value
    return TierTable(name=name, title=_text(doc, "title", path), rows=tuple(rows),
                     visit_types=None if visit_types is None else frozenset(visit_types),
                     **dates)


def catalogue_candidates(region: str) -> list[str]:
    """File stems to try for a hospital's region: county, city, province, then default."""
    chain = [region]
    if regions.level(region) is regions.RegionLevel.COUNTY:
        chain.append(regions.city_of(region))
    if regions.level(region) is not regions.RegionLevel.PROVINCE:
        chain.append(regions.province_of(region))
    return [*chain, "default"]


def load_catalogue(reference_dir: Path, region: str) -> Catalogue:
    """The care-place catalogue for a hospital's county code: the most specific file wins."""
    for stem in catalogue_candidates(region):
        path = reference_dir / "catalogues" / f"{stem}.toml"
        if path.exists():
            doc = _read(path)
            shares = _table(doc, "b_share", path)
            return Catalogue(
                region=stem, name=_text(doc, "name", path),
                default_b_share=_ratio(doc, "default_b_share", path),
                b_shares={code: _ratio(shares, code, path, "b_share") for code in shares})
    raise PolicyError(reference_dir / "catalogues", "default.toml",
                      f"no catalogue for {region} and no default catalogue")


# ---- field readers ------------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise PolicyError(path, "(file)", "does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(path, "(file)", f"is not valid TOML: {exc}") from None


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _table(doc: Mapping[str, Any], key: str, path: Path, where: str = "") -> dict[str, Any]:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise PolicyError(path, where or key, "missing, or not a table")
    return value


def _text(doc: Mapping[str, Any], key: str, path: Path, where: str = "") -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise PolicyError(path, _key(where, key), "missing, or not a non-empty string")
    return value


def _enum(kind: type[E], doc: Mapping[str, Any], key: str, path: Path, where: str = "") -> E:
    value = doc.get(key)
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise PolicyError(path, _key(where, key), f"must be one of {allowed}; got {value!r}") \
            from None


def _money(doc: Mapping[str, Any], key: str, path: Path, where: str) -> Decimal:
    value = doc.get(key)
    if not isinstance(value, str) or not _MONEY_RE.match(value) or value.startswith("-"):
        raise PolicyError(path, _key(where, key), "must be a money string with two decimals "
                          f"such as \"900.00\" (never a TOML number); got {value!r}")
    return Decimal(value)


def _ratio(doc: Mapping[str, Any], key: str, path: Path, where: str = "") -> Decimal:
    value = doc.get(key)
    try:
        ratio = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        ratio = None
    if ratio is None or not ratio.is_finite() or not Decimal(0) <= ratio <= Decimal(1):
        raise PolicyError(path, _key(where, key), "must be a decimal string between \"0\" and "
                          f"\"1\" such as \"0.85\" (never a TOML number); got {value!r}")
    return ratio


def _benefit_rule(doc: Mapping[str, Any], path: Path, where: str) -> BenefitRule:
    return BenefitRule(deductible=_money(doc, "deductible", path, where),
                       ratio=_ratio(doc, "ratio", path, where),
                       annual_cap=_money(doc, "annual_cap", path, where))


def _no_filing(doc: Mapping[str, Any], path: Path) -> NoFilingPolicy:
    exemptions = doc.get("exemptions", [])
    if not isinstance(exemptions, list) or not set(exemptions) <= EXEMPTIONS:
        raise PolicyError(path, "no_filing.exemptions", "must be a list of "
                          f"{', '.join(sorted(EXEMPTIONS))}; got {exemptions!r}")
    return NoFilingPolicy(rule=_enum(NoFilingRule, doc, "settlement", path, "no_filing"),
                          scope=_enum(NoFilingScope, doc, "scope", path, "no_filing"),
                          exemptions=frozenset(exemptions))


def _visit_rules(doc: Mapping[str, Any], path: Path, where: str) -> VisitRules:
    return VisitRules(deductible_mode=_enum(DeductibleMode, doc, "deductible_mode", path, where),
                      deductible_pool=_text(doc, "deductible_pool", path, where),
                      cap_pool=_text(doc, "cap_pool", path, where))


def _other_payer(doc: Mapping[str, Any], path: Path, where: str, *,
                 threshold: bool) -> OtherPayerRule:
    return OtherPayerRule(ratio=_ratio(doc, "ratio", path, where),
                          annual_cap=_money(doc, "annual_cap", path, where),
                          threshold=(_money(doc, "threshold", path, where) if threshold
                                     else Decimal("0.00")))


def _other_payers(doc: Any, path: Path) -> OtherPayers:
    """``[other_payers.serious_illness.<insurance type>]`` (threshold, ratio, annual_cap) and
    ``[other_payers.medical_assistance.<category>]`` (ratio, annual_cap); both optional."""
    if not isinstance(doc, dict) or not set(doc) <= {"serious_illness", "medical_assistance"}:
        raise PolicyError(path, "other_payers", "must be a table of serious_illness and "
                          "medical_assistance")
    serious = doc.get("serious_illness", {})
    assistance = doc.get("medical_assistance", {})
    for key, table in (("serious_illness", serious), ("medical_assistance", assistance)):
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise PolicyError(path, f"other_payers.{key}", "must be a table of tables")
    by_type = {}
    for name, rule in serious.items():
        where = f"other_payers.serious_illness.{name}"
        try:
            insurance = InsuranceType(name)
        except ValueError:
            allowed = ", ".join(t.value for t in InsuranceType)
            raise PolicyError(path, where, f"must name an insurance type ({allowed})") from None
        by_type[insurance] = _other_payer(rule, path, where, threshold=True)
    return OtherPayers(
        serious_illness=by_type,
        medical_assistance={name: _other_payer(rule, path, f"other_payers.medical_assistance."
                                               f"{name}", threshold=False)
                            for name, rule in assistance.items()})
