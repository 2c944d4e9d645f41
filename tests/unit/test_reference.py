"""Reference data: the shipped files load, the lookups answer, broken files are named clearly."""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from shared import reference
from shared.events.filing import FilingCategory
from shared.reference import ReferenceDataError, load_reference
from shared.regions import RegionCodeError, is_county_area


@pytest.fixture(scope="module")
def ref() -> reference.ReferenceData:
    return load_reference(reference.DEFAULT_DIRECTORY)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A private copy of the shipped reference directory, to break in tests."""
    target = tmp_path / "reference"
    shutil.copytree(reference.DEFAULT_DIRECTORY, target)
    reference.clear_cache()
    yield target
    reference.clear_cache()


def problems_of(directory: Path) -> list[str]:
    reference.clear_cache()
    with pytest.raises(ReferenceDataError) as caught:
        load_reference(directory)
    return caught.value.problems


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in {file.name}"
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


# ---- the shipped data -------------------------------------------------------------------


def test_shipped_data_loads(ref: reference.ReferenceData) -> None:
    assert set(ref.agencies) == {"220100", "220200", "220281", "220500", "140100", "140200",
                                 "320100", "320500", "110100"}
    assert ref.version == "2026.1"
    assert len(ref.fingerprint) == 64
    assert ref.directory == reference.DEFAULT_DIRECTORY
    assert ref.region("220281").name == "蛟河市"
    assert ref.region("220102").name == "南关区"
    assert ref.region("140181").name == "古交市"
    assert ref.region("320505").name == "虎丘区"
    assert ref.region("999999") is None


def test_every_pool_has_hospitals_of_every_level(ref: reference.ReferenceData) -> None:
    levels: dict[str, set[int]] = defaultdict(set)
    for hospital in ref.hospitals.values():
        pool = ref.pool_covering(hospital.county)
        assert pool is not None
        levels[pool.code].add(hospital.level)
        assert hospital.county_area == is_county_area(hospital.county)
    assert {code: lv for code, lv in levels.items()} == {code: {1, 2, 3} for code in ref.agencies}
    assert any(h.kind == "pharmacy" for h in ref.hospitals.values())
    assert any(h.county_area for h in ref.hospitals.values())


@pytest.mark.parametrize(("county", "pool"), [
    ("220281", "220281"),  # 蛟河市 has its own pool
    ("220282", "220200"),  # 桦甸市 is covered by 吉林市
    ("220202", "220200"),
    ("220221", "220200"),
    ("220102", "220100"),
    ("220122", "220100"),
    ("220182", "220100"),
    ("220581", "220500"),
    ("220521", "220500"),
    ("140121", "140100"),
    ("140181", "140100"),
    ("140213", "140200"),
    ("320581", "320500"),
    ("320102", "320100"),
    ("110101", "110100"),
    ("220302", None),  # 四平市 is no pool of the clearing house
    ("320205", None),
])
def test_pool_covering(ref: reference.ReferenceData, county: str, pool: str | None) -> None:
    found = ref.pool_covering(county)
    assert (found.code if found else None) == pool


def test_pool_covering_needs_a_county_code(ref: reference.ReferenceData) -> None:
    with pytest.raises(RegionCodeError):
        ref.pool_covering("220200")


@pytest.mark.parametrize(("region", "pool", "within"), [
    ("220102", "220100", True),
    ("220100", "220100", True),  # the whole city, and the city pool excludes nothing
    ("220200", "220200", False),  # 吉林市 without 蛟河市
    ("220281", "220200", False),
    ("220281", "220281", True),
    ("220200", "220281", False),
    ("220000", "220100", False),
    ("220102", "999999", False),
])
def test_lies_within_pool(ref: reference.ReferenceData, region: str, pool: str,
                          within: bool) -> None:
    assert ref.lies_within_pool(region, pool) is within


def test_filing_policies(ref: reference.ReferenceData) -> None:
    jilin = ref.filing_policy("220281")
    assert (jilin.referral_months, jilin.emergency_outpatient_days, jilin.no_filing,
            jilin.no_filing_scope) == (6, 3, "lowest_tier", "province")
    assert jilin.exemptions == {"same_city_other_county_pool", "other_city_county_area",
                                "in_province_outpatient", "in_province_pharmacy"}
    assert FilingCategory.REFERRAL in jilin.commitment_categories
    assert ref.filing_policy("140100").exemptions == {
        "same_city_other_county_pool", "other_city_county_area", "other_city_district"}
    assert ref.filing_policy("140200").no_filing == "reject"
    assert ref.filing_policy("320500").referral_requires_hospital is True
    assert ref.filing_policy("110100").accepted_categories == set(FilingCategory)
    assert ref.filing_policy("999999") is None


# ---- loading ------------------------------------------------------------------------------


def test_cached_per_path_and_env_var(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_reference(copy)
    assert load_reference(str(copy)) is first
    monkeypatch.setenv(reference.ENV_VAR, str(copy))
    assert load_reference() is first
    monkeypatch.delenv(reference.ENV_VAR)
    assert load_reference() is not first


def test_missing_directory_says_what_to_set(tmp_path: Path) -> None:
    problems = problems_of(tmp_path / "nowhere")
    assert reference.ENV_VAR in problems[0]


BROKEN = [
    ("hospitals.csv", "H220102001,吉林大学第二医院,220102,", "H220199001,x,220199,",
     "hospitals.csv line 10: county 220199 is not in regions.csv"),
    ("hospitals.csv", "农安县人民医院,220122,2,true", "农安县人民医院,220122,2,false",
     "hospitals.csv line 13: county_area is false but 220122 农安县 is a county area"),
    ("hospitals.csv", "吉林大学第一医院,220104,3", "吉林大学第一医院,220104,4",
     "hospitals.csv line 9: level '4' must be 1, 2 or 3"),
    ("hospitals.csv", "益民大药房,220102,1", "益民大药房,220102,2",
     "a pharmacy has level 1"),
    ("hospitals.csv", "H220104002,", "H220104001,",
     "H220104001 is listed twice"),
    ("hospitals.csv", "H320106001,江苏省人民医院,320106", "H320106001,江苏省人民医院,320102",
     "code H320106001 names county 320106 but the county column says 320102"),
    ("hospitals.csv", "code,name,county,level,county_area,kind", "code,name,county,level,kind",
     "header is code,name,county,level,kind"),
    ("regions.csv", "220281,蛟河市", "220281,蛟河市\n220281,蛟河",
     "region 220281 is listed twice"),
    ("regions.csv", "220000,吉林省\n", "",
     "lies in 220000, which is not listed"),
    ("regions.csv", "320102,玄武区", "3201020,玄武区", "regions.csv line"),
    ("agencies.toml", 'province = "220000"\npool_level = "county"',
     'province = "220000"\npool_level = "town"',
     "key `pool_level` is 'town'"),
    ("agencies.toml", 'excluded = ["220281"]', "",
     "220281 has a pool of its own but city pool 220200 also covers it"),
    ("agencies.toml", 'province = "140000"', 'province = "220000"',
     "province is 220000 but 140100 lies in 140000"),
    ("agencies.toml", 'name = "通化市"', 'name = "通化市"\nnmae = "x"',
     "unknown key `nmae`"),
    ("agencies.toml", 'filing_policy = "110100"', 'filing_policy = "beijing"',
     "filing_policy 'beijing' has no file filing-policies/beijing.toml"),
    ("agencies.toml", "[[agency]]", "[[agency]\n", "agencies.toml: not valid TOML"),
    ("filing-policies/220100.toml", "referral_months = 6", "referral_months = 0",
     "key `referral_months` must be a positive number"),
    ("filing-policies/220100.toml", "referral_months = 6", 'referral_months = "6"',
     "key `referral_months` must be an integer"),
    ("filing-policies/220100.toml", '"in_province_pharmacy"]', '"tier3"]',
     "key `exemptions` has unknown value(s) ['tier3']"),
    ("filing-policies/220100.toml", 'settlement = "lowest_tier"', 'settlement = "lowest"',
     "[no_filing]: key `settlement` is 'lowest'"),
    ("filing-policies/220100.toml", "extension = true", "extension = true\nextention = true",
     "[validity]: unknown key `extention`"),
]


@pytest.mark.parametrize(("file", "old", "new", "expected"), BROKEN,
                         ids=[b[3][:40] for b in BROKEN])
def test_broken_files_are_named(copy: Path, file: str, old: str, new: str,
                                expected: str) -> None:
    edit(copy / file, old, new)
    problems = problems_of(copy)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(("reference/", str(copy))) for p in problems), problems


def test_unreferenced_and_missing_policy_files(copy: Path) -> None:
    (copy / "filing-policies" / "220500.toml").rename(copy / "filing-policies" / "220599.toml")
    problems = problems_of(copy)
    assert any("no agency in agencies.toml uses this policy" in p for p in problems)
    assert any("filing-policies/220500.toml; create it" in p for p in problems)


def test_every_problem_is_reported_at_once(copy: Path) -> None:
    edit(copy / "hospitals.csv", "H220102001,吉林大学第二医院,220102,", "H220199001,x,220199,")
    edit(copy / "filing-policies/140200.toml", "referral_months = 6", "referral_months = -1")
    problems = problems_of(copy)
    assert len(problems) == 2
    assert "reference data is invalid" in str(ReferenceDataError(problems))
