"""Reference data: regions, pooling agencies, hospitals and filing policies, from versioned files.

Loaded once at start-up from ``reference/`` (or ``$CLEARINGHOUSE_REFERENCE_DIR``) and
validated as a whole: every problem is reported at once, naming the file, the line or key,
and what to do. Settlement policies live under ``<directory>/settlement-policies/`` and are
loaded by the settlement side; ``ReferenceData.directory`` is the hook for that.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from shared import regions
from shared.events.filing import FilingCategory
from shared.regions import RegionCodeError, RegionLevel
from shared.working_days import CalendarError, WorkingDays, load_working_days

ENV_VAR = "CLEARINGHOUSE_REFERENCE_DIR"
DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "reference"

PoolLevel = Literal["city", "county"]
NoFilingSettlement = Literal["lowest_tier", "reject"]
NoFilingScope = Literal["province", "everywhere"]

#: 免申即享: care settled directly without any filing. The trip kinds are those of the
#: settlement service's tier tables (services/settlement/domain/tiers.py `Trip`).
EXEMPTIONS = frozenset({
    "same_city_other_county_pool",  # 市(州)内跨县域就医: same city, another county pool
    "other_city_county_area",  # 跨市(州)县域就医: a county-area hospital in another city
    "other_city_district",  # a city district of another city in the province
    "other_province",  # anywhere outside the province
    "in_province_outpatient",  # 省内门诊就医 (outpatient and chronic outpatient)
    "in_province_pharmacy",  # 省内定点药店购药
})
LONG_TERM_CATEGORIES = frozenset({
    FilingCategory.RELOCATED_RETIREE, FilingCategory.LONG_TERM_RESIDENT,
    FilingCategory.RESIDENT_WORKER,
})

#: Kinds of filing for the rule on filings in force together (`FilingPolicy.coexisting`):
#: each category's group, emergency split by the visit it was made for.
FILING_KINDS = ("long_term", "referral", "emergency_outpatient", "emergency_inpatient",
                "temporary_other")


def filing_kind(category: FilingCategory, emergency_visit: str | None) -> str:
    """The kind of a filing: long-term residence (childbirth included, 按照本类人员管理),
    referral, emergency outpatient or inpatient, other temporary care."""
    if category in LONG_TERM_CATEGORIES or category is FilingCategory.CHILDBIRTH:
        return "long_term"
    if category is FilingCategory.EMERGENCY:
        return f"emergency_{emergency_visit or 'inpatient'}"
    return category.value


class ReferenceDataError(ValueError):
    """The reference files are inconsistent; `problems` lists each one with where and what to do."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("reference data is invalid:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Region:
    """A GB/T 2260 region: province, city or county-level unit."""

    code: str
    name: str
    level: RegionLevel


@dataclass(frozen=True)
class Agency:
    """An insuring / care-place agency; its code is the code of the pool it runs."""

    code: str
    name: str
    province: str
    pool_level: PoolLevel
    filing_policy: str
    settlement_policy: str
    excluded: tuple[str, ...] = ()

    def covers(self, county_code: str) -> bool:
        """Whether this pool covers the county-level unit `county_code`."""
        if self.pool_level == "county":
            return county_code == self.code
        return regions.contains(self.code, county_code) and county_code not in self.excluded


@dataclass(frozen=True)
class Hospital:
    """A designated hospital or pharmacy (定点医药机构) in a county-level unit."""

    code: str
    name: str
    county: str
    level: int
    county_area: bool
    kind: Literal["hospital", "pharmacy"]

    @property
    def city(self) -> str:
        return regions.city_of(self.county)

    @property
    def province(self) -> str:
        return regions.province_of(self.county)


@dataclass(frozen=True)
class FilingPolicy:
    """An insuring agency's filing rules (docs/filing.md says how each one is applied)."""

    name: str
    version: str
    referral_months: int = 6
    temporary_other_months: int = 6
    emergency_outpatient_days: int = 3
    extension: bool = True
    #: How many days valid_from may precede the request date (补办); None: no limit.
    retroactive_days_max: int | None = None
    commitment_categories: frozenset[FilingCategory] = frozenset()
    commitment_due_days: int = 180
    referral_requires_hospital: bool = False
    accepted_categories: frozenset[FilingCategory] = frozenset(FilingCategory)
    #: A settlement with no filing in force and no exemption: settled at the lowest tier
    #: (within `no_filing_scope`) or refused (the person claims manual reimbursement).
    no_filing: NoFilingSettlement = "reject"
    no_filing_scope: NoFilingScope = "everywhere"
    exemptions: frozenset[str] = frozenset()
    #: Pairs of filing kinds (`FILING_KINDS`) that may be in force on the same days (a pair
    #: of one kind: two filings of that kind). Any other overlap is refused.
    coexisting: frozenset[frozenset[str]] = frozenset()
    #: A hospital files an emergency filing within this many working days of its first day
    #: (医疗机构 … 应在2个工作日内 … 上传, seed 003); None: no limit.
    emergency_filing_working_days: int | None = 2

    def may_coexist(self, kind: str, other: str) -> bool:
        return frozenset({kind, other}) in self.coexisting


@dataclass(frozen=True)
class ReferenceData:
    """Every reference table, with lookups that return None for unknown codes."""

    directory: Path
    version: str
    #: sha256 of the files this module reads, to record which data a run used.
    fingerprint: str
    regions: Mapping[str, Region] = field(repr=False)
    agencies: Mapping[str, Agency] = field(repr=False)
    hospitals: Mapping[str, Hospital] = field(repr=False)
    filing_policies: Mapping[str, FilingPolicy] = field(repr=False)
    #: The working-day calendar (calendars/working-days.toml); None where the directory has
    #: none (then rules counted in working days are not checked).
    working_days: WorkingDays | None = field(default=None, repr=False)

    def region(self, code: str) -> Region | None:
        return self.regions.get(code)

    def agency(self, code: str) -> Agency | None:
        return self.agencies.get(code)

    def hospital(self, code: str) -> Hospital | None:
        return self.hospitals.get(code)

    def filing_policy(self, agency_code: str) -> FilingPolicy | None:
        agency = self.agencies.get(agency_code)
        return None if agency is None else self.filing_policies.get(agency.filing_policy)

    def pool_covering(self, county_code: str) -> Agency | None:
        """The pool (and so the care-place agency) of a county-level unit: the county's own
        pool if it has one, else its city's pool; None when no pool here covers it."""
        if regions.level(county_code) is not RegionLevel.COUNTY:
            raise RegionCodeError(f"{county_code} is not a county-level code")
        own = self.agencies.get(county_code)
        if own is not None:
            return own
        city = self.agencies.get(regions.city_of(county_code))
        return city if city is not None and city.covers(county_code) else None

    def lies_within_pool(self, region_code: str, agency_code: str) -> bool:
        """Whether all of `region_code` is covered by pool `agency_code` (so it is no trip away)."""
        agency = self.agencies.get(agency_code)
        if agency is None:
            return False
        match regions.level(region_code):
            case RegionLevel.COUNTY:
                return agency.covers(region_code)
            case RegionLevel.CITY:
                return agency.pool_level == "city" and agency.code == region_code \
                    and not agency.excluded
            case _:
                return False


def load_reference(path: str | Path | None = None) -> ReferenceData:
    """Load and validate the reference directory (cached per resolved path)."""
    directory = Path(path or os.environ.get(ENV_VAR) or DEFAULT_DIRECTORY).resolve()
    return _load_cached(directory)


def clear_cache() -> None:
    """Forget loaded reference data (tests that rewrite files use it)."""
    _load_cached.cache_clear()


@functools.lru_cache(maxsize=8)
def _load_cached(directory: Path) -> ReferenceData:
    return _load(directory)


def _fingerprint(files: list[Path], directory: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(file.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def _read_csv(file: Path, columns: list[str], problems: list[str], where: str
              ) -> list[tuple[int, dict[str, str]]]:
    """Rows of a UTF-8 CSV with `#` comment lines, each with its physical line number."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(f"{where}: file is missing; restore it from version control")
        return []
    except UnicodeDecodeError as exc:
        problems.append(f"{where}: not UTF-8 ({exc}); save the file as UTF-8")
        return []
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), 1)
                if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        problems.append(f"{where}: no header line; the first line must be {','.join(columns)}")
        return []
    header = next(csv.reader([numbered[0][1]]))
    if [h.strip() for h in header] != columns:
        problems.append(f"{where} line {numbered[0][0]}: header is {','.join(header)}; "
                        f"it must be exactly {','.join(columns)}")
        return []
    rows = []
    for n, values in zip((n for n, _ in numbered[1:]),
                         csv.reader(line for _, line in numbered[1:]), strict=True):
        if len(values) != len(columns):
            problems.append(f"{where} line {n}: {len(values)} fields, expected {len(columns)} "
                            f"({','.join(columns)})")
            continue
        rows.append((n, dict(zip(columns, (v.strip() for v in values), strict=True))))
    return rows


# ---- loading and validation ----------------------------------------------------------------

_REQUIRED = object()
_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list",
               dict: "a table"}


class _Keys:
    """Reads one TOML table key by key; wrong types and unknown keys become problems."""

    def __init__(self, table: dict[str, Any], where: str, problems: list[str]):
        self.table, self.where, self.problems = table, where, problems
        self.seen: set[str] = set()

    def get(self, key: str, kind: type, default: Any = _REQUIRED) -> Any:
        self.seen.add(key)
        if key not in self.table:
            if default is _REQUIRED:
                self.problems.append(f"{self.where}: key `{key}` is missing; add it")
                return None
            return default
        value = self.table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(f"{self.where}: key `{key}` must be {_KIND_NAMES[kind]}, "
                                 f"got {value!r}")
            return None
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: Any = _REQUIRED) -> Any:
        value = self.get(key, str, default)
        if value is not None and value not in allowed:
            self.problems.append(f"{self.where}: key `{key}` is {value!r}; it must be one of "
                                 + ", ".join(repr(a) for a in allowed))
            return None
        return value

    def words(self, key: str, allowed: frozenset[str], default: Any = _REQUIRED) -> Any:
        values = self.get(key, list, default)
        if values is None:
            return None
        unknown = [v for v in values if v not in allowed]
        if unknown:
            self.problems.append(f"{self.where}: key `{key}` has unknown value(s) {unknown!r}; "
                                 f"known values: {', '.join(sorted(allowed))}")
            return None
        return frozenset(values)

    def positive(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self.get(key, int, default)
        if value is not None and value <= 0:
            self.problems.append(f"{self.where}: key `{key}` must be a positive number, "
                                 f"got {value}")
            return None
        return value

    def done(self) -> None:
        for key in sorted(set(self.table) - self.seen):
            self.problems.append(f"{self.where}: unknown key `{key}`; remove it or fix its "
                                 f"spelling (known: {', '.join(sorted(self.seen))})")


def _label(directory: Path, file: Path) -> str:
    return f"{directory.name}/{file.relative_to(directory).as_posix()}"


def _read_toml(directory: Path, file: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        problems.append(f"{_label(directory, file)}: file is missing; restore it from version "
                        "control")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{_label(directory, file)}: not valid TOML ({exc}); fix the syntax")
    return None


def _load_regions(directory: Path, problems: list[str]) -> dict[str, Region]:
    file = directory / "regions.csv"
    label = _label(directory, file)
    found: dict[str, Region] = {}
    lines: dict[str, int] = {}
    for n, row in _read_csv(file, ["code", "name"], problems, label):
        code, name = row["code"], row["name"]
        try:
            level = regions.level(code)
        except RegionCodeError as exc:
            problems.append(f"{label} line {n}: {exc}; use a GB/T 2260 code")
            continue
        if not name:
            problems.append(f"{label} line {n}: region {code} has no name; add its name")
        elif code in found:
            problems.append(f"{label} line {n}: region {code} is listed twice (first on line "
                            f"{lines[code]}); remove one row")
        else:
            found[code], lines[code] = Region(code, name, level), n
    for code, region in found.items():
        parents = [] if region.level is RegionLevel.PROVINCE else [regions.province_of(code)]
        if region.level is RegionLevel.COUNTY:
            parents.append(regions.city_of(code))
        for parent in parents:
            if parent not in found:
                problems.append(f"{label} line {lines[code]}: {code} {region.name} lies in "
                                f"{parent}, which is not listed; add a row for {parent}")
    return found


def _load_agencies(directory: Path, known: Mapping[str, Region], problems: list[str]
                   ) -> tuple[str, dict[str, Agency]]:
    file = directory / "agencies.toml"
    label = _label(directory, file)
    data = _read_toml(directory, file, problems)
    if data is None:
        return "", {}
    top = _Keys(data, label, problems)
    version, items = top.get("version", str), top.get("agency", list)
    top.done()
    found: dict[str, Agency] = {}
    for i, item in enumerate(items or []):
        where = f"{label} [[agency]] #{i + 1}"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table")
            continue
        keys = _Keys(item, where, problems)
        before = len(problems)
        code = keys.get("code", str)
        where = keys.where = f"{where} (code {code})"
        agency = Agency(
            code=code, name=keys.get("name", str), province=keys.get("province", str),
            pool_level=keys.choice("pool_level", ("city", "county")),
            filing_policy=keys.get("filing_policy", str),
            settlement_policy=keys.get("settlement_policy", str),
            excluded=tuple(keys.get("excluded", list, [])),
        )
        keys.done()
        if len(problems) > before:
            continue
        region = known.get(code)
        expected = RegionLevel.CITY if agency.pool_level == "city" else RegionLevel.COUNTY
        if region is None:
            problems.append(f"{where}: {code} is not in regions.csv; add the region first")
        elif region.level is not expected:
            problems.append(f"{where}: pool_level {agency.pool_level!r} needs a "
                            f"{expected.value}-level code, but {code} is a {region.level.value}")
        elif agency.province != regions.province_of(code):
            problems.append(f"{where}: province is {agency.province} but {code} lies in "
                            f"{regions.province_of(code)}; correct `province`")
        elif code in found:
            problems.append(f"{where}: agency {code} is listed twice; remove one")
        else:
            found[code] = agency
    for agency in found.values():
        for county in agency.excluded:
            own = found.get(county)
            if own is None or own.pool_level != "county" or not regions.contains(agency.code,
                                                                                  county):
                problems.append(f"{label} (code {agency.code}): excluded {county} must be a "
                                f"county pool inside {agency.code}; add it as an agency with "
                                "pool_level = \"county\" or drop it from `excluded`")
        if agency.pool_level == "county":
            city = found.get(regions.city_of(agency.code))
            if city is not None and agency.code not in city.excluded:
                problems.append(f"{label} (code {agency.code}): {agency.code} has a pool of its "
                                f"own but city pool {city.code} also covers it; add "
                                f"\"{agency.code}\" to `excluded` of {city.code}")
    return version or "", found


_HOSPITAL_COLUMNS = ["code", "name", "county", "level", "county_area", "kind"]


def _load_hospitals(directory: Path, known: Mapping[str, Region],
                    agencies: Mapping[str, Agency], problems: list[str]) -> dict[str, Hospital]:
    file = directory / "hospitals.csv"
    label = _label(directory, file)
    found: dict[str, Hospital] = {}
    for n, row in _read_csv(file, _HOSPITAL_COLUMNS, problems, label):
        where, code, county = f"{label} line {n}", row["code"], row["county"]
        before = len(problems)
        if row["kind"] not in ("hospital", "pharmacy"):
            problems.append(f"{where}: kind {row['kind']!r} must be hospital or pharmacy")
        elif (len(code) != 10 or not code[1:].isdigit()
              or code[0] != {"hospital": "H", "pharmacy": "P"}[row["kind"]]):
            problems.append(f"{where}: code {code!r} must be H (hospital) or P (pharmacy), the "
                            "six-digit county and a three-digit serial, e.g. H220102001")
        elif code[1:7] != county:
            problems.append(f"{where}: code {code} names county {code[1:7]} but the county "
                            f"column says {county}; make them agree")
        if row["level"] not in ("1", "2", "3"):
            problems.append(f"{where}: level {row['level']!r} must be 1, 2 or 3")
        elif row["kind"] == "pharmacy" and row["level"] != "1":
            problems.append(f"{where}: a pharmacy has level 1, got {row['level']}")
        if row["county_area"] not in ("true", "false"):
            problems.append(f"{where}: county_area {row['county_area']!r} must be true or false")
        region = known.get(county)
        if region is None:
            problems.append(f"{where}: county {county} is not in regions.csv; add it there or "
                            "correct the county")
        elif region.level is not RegionLevel.COUNTY:
            problems.append(f"{where}: county {county} is a {region.level.value}, not a "
                            "county-level unit; use the code of the district, county or "
                            "county-level city")
        else:
            derived = "true" if regions.is_county_area(county) else "false"
            kind = "a county area" if derived == "true" else "a city district"
            if row["county_area"] in ("true", "false") and row["county_area"] != derived:
                problems.append(f"{where}: county_area is {row['county_area']} but {county} "
                                f"{region.name} is {kind}; set county_area to {derived}")
            if not any(a.covers(county) for a in agencies.values()):
                problems.append(f"{where}: no pool in agencies.toml covers {county} "
                                f"{region.name}; add the pool or move the hospital")
        if not row["name"]:
            problems.append(f"{where}: {code} has no name; add its name")
        if code in found:
            problems.append(f"{where}: {code} is listed twice; remove one row")
        if len(problems) == before:
            found[code] = Hospital(code, row["name"], county, int(row["level"]),
                                   row["county_area"] == "true", row["kind"])  # type: ignore[arg-type]
    return found


_CATEGORIES = frozenset(c.value for c in FilingCategory)


def _load_policy(directory: Path, file: Path, problems: list[str]) -> FilingPolicy | None:
    label = _label(directory, file)
    data = _read_toml(directory, file, problems)
    if data is None:
        return None
    before = len(problems)
    top = _Keys(data, label, problems)
    version = top.get("version", str)
    accepted = top.words("accepted_categories", _CATEGORIES, _CATEGORIES)
    tables = {name: top.get(name, dict) or {}
              for name in ("validity", "materials", "no_filing", "coexistence")}
    top.done()
    coexistence = _Keys(tables["coexistence"], f"{label} [coexistence]", problems)
    pairs = coexistence.get("pairs", list, [])
    coexistence.done()
    coexisting = set()
    for pair in pairs:
        if (not isinstance(pair, list) or len(pair) != 2
                or any(kind not in FILING_KINDS for kind in pair)):
            problems.append(f"{label} [coexistence] pairs: {pair!r} is not a pair of "
                            f"{', '.join(FILING_KINDS)}; write it as [\"long_term\", "
                            "\"referral\"]")
        else:
            coexisting.add(frozenset(pair))
    validity = _Keys(tables["validity"], f"{label} [validity]", problems)
    materials = _Keys(tables["materials"], f"{label} [materials]", problems)
    no_filing = _Keys(tables["no_filing"], f"{label} [no_filing]", problems)
    values = dict(
        referral_months=validity.positive("referral_months", 6),
        temporary_other_months=validity.positive("temporary_other_months", 6),
        emergency_outpatient_days=validity.positive("emergency_outpatient_days", 3),
        extension=validity.get("extension", bool, True),
        retroactive_days_max=validity.positive("retroactive_days_max", None),
        emergency_filing_working_days=validity.positive("emergency_filing_working_days", 2),
        commitment_categories=materials.words("commitment_categories", _CATEGORIES, frozenset()),
        commitment_due_days=materials.positive("commitment_due_days", 180),
        referral_requires_hospital=materials.get("referral_requires_hospital", bool, False),
        no_filing=no_filing.choice("settlement", ("lowest_tier", "reject")),
        no_filing_scope=no_filing.choice("scope", ("province", "everywhere"), "everywhere"),
        exemptions=no_filing.words("exemptions", EXEMPTIONS, frozenset()),
    )
    # Documented in the file, fixed in code: there is no other meaning to choose from.
    validity.choice("emergency_inpatient", ("until_discharge",), "until_discharge")
    validity.choice("long_term", ("until_revoked",), "until_revoked")
    for keys in (validity, materials, no_filing):
        keys.done()
    if len(problems) > before:
        return None
    return FilingPolicy(
        name=file.stem, version=version,
        accepted_categories=frozenset(FilingCategory(c) for c in accepted),
        coexisting=frozenset(coexisting),
        **{**values, "commitment_categories": frozenset(
            FilingCategory(c) for c in values["commitment_categories"])},
    )


def _load_policies(directory: Path, agencies: Mapping[str, Agency], problems: list[str]
                   ) -> tuple[dict[str, FilingPolicy], list[Path]]:
    folder = directory / "filing-policies"
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    found = {}
    for file in files:
        policy = _load_policy(directory, file, problems)
        if policy is not None:
            found[policy.name] = policy
    wanted = {a.filing_policy for a in agencies.values()}
    for agency in agencies.values():
        if agency.filing_policy not in {f.stem for f in files}:
            problems.append(f"{_label(directory, directory / 'agencies.toml')} (code "
                            f"{agency.code}): filing_policy {agency.filing_policy!r} has no file "
                            f"filing-policies/{agency.filing_policy}.toml; create it")
    for file in files:
        if file.stem not in wanted:
            problems.append(f"{_label(directory, file)}: no agency in agencies.toml uses this "
                            "policy; name it in an agency's filing_policy or delete the file")
    return found, files


def _load(directory: Path) -> ReferenceData:
    if not directory.is_dir():
        raise ReferenceDataError([f"{directory}: reference directory not found; set "
                                  f"{ENV_VAR} to the folder holding regions.csv"])
    problems: list[str] = []
    known = _load_regions(directory, problems)
    version, agencies = _load_agencies(directory, known, problems)
    hospitals = _load_hospitals(directory, known, agencies, problems)
    policies, policy_files = _load_policies(directory, agencies, problems)
    if problems:
        raise ReferenceDataError(problems)
    files = [directory / n for n in ("regions.csv", "agencies.toml", "hospitals.csv")]
    calendar_file = directory / "calendars" / "working-days.toml"
    working_days = None
    if calendar_file.exists():
        try:
            working_days = load_working_days(directory)
        except CalendarError as exc:
            raise ReferenceDataError([str(exc)]) from exc
        files.append(calendar_file)
    return ReferenceData(
        working_days=working_days,
        directory=directory, version=version,
        fingerprint=_fingerprint(files + policy_files, directory),
        regions=MappingProxyType(known), agencies=MappingProxyType(agencies),
        hospitals=MappingProxyType(hospitals), filing_policies=MappingProxyType(policies),
    )
