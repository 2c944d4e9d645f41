"""Trip classification and the tier tables shipped in reference/tiers/, row by row."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from services.settlement.domain.policy import (
    NoFilingPolicy,
    NoFilingRule,
    NoFilingScope,
    PolicyError,
    load_policies,
    load_policy,
    load_tier_table,
)
from services.settlement.domain.tiers import (
    Basis,
    FilingOption,
    TierRow,
    TierTable,
    Trip,
    basis_of,
    choose_tier,
    classify_trip,
)
from shared.events.filing import FilingCategory
from shared.events.settlement import VisitType
from shared.reference import load_reference

REFERENCE = Path(__file__).resolve().parents[2] / "reference"
D = Decimal

# ---- classification -----------------------------------------------------------------------


@pytest.mark.parametrize(("insured", "care", "county", "county_area", "trip"), [
    # seeds/000: "吉林蛟河市参保人至吉林市本级就医" — same city, another county pool
    ("220281", "220200", "220202", False, Trip.SAME_CITY_OTHER_COUNTY_POOL),
    # seeds/000: "吉林蛟河市参保人至长春榆树市就医" — a county-area hospital of another city
    ("220281", "220100", "220182", True, Trip.OTHER_CITY_COUNTY_AREA),
    ("220200", "220281", "220281", True, Trip.SAME_CITY_OTHER_COUNTY_POOL),
    ("220200", "220200", "220221", True, Trip.SAME_POOL),  # 永吉县 lies in the 吉林市 pool
    ("220100", "220100", "220102", False, Trip.SAME_POOL),
    ("220100", "220200", "220202", False, Trip.OTHER_CITY_DISTRICT),
    ("220100", "220200", "220221", True, Trip.OTHER_CITY_COUNTY_AREA),
    ("220100", "220500", "220502", False, Trip.OTHER_CITY_DISTRICT),
    ("220100", "320100", "320102", False, Trip.OTHER_PROVINCE),
    ("220100", "320500", "320581", True, Trip.OTHER_PROVINCE),  # county area, other province
    ("140100", "140200", "140212", False, Trip.OTHER_CITY_DISTRICT),
    ("140100", "140200", "140221", True, Trip.OTHER_CITY_COUNTY_AREA),
    ("110100", "110100", "110105", False, Trip.SAME_POOL),
    ("320100", "110100", "110105", False, Trip.OTHER_PROVINCE),
])
def test_classify_trip(insured: str, care: str, county: str, county_area: bool,
                       trip: Trip) -> None:
    assert classify_trip(insured, care, county, county_area) is trip


def test_a_hospital_outside_its_care_agency_is_a_data_error() -> None:
    with pytest.raises(ValueError, match="outside its care agency"):
        classify_trip("220100", "220200", "220102", False)


def test_every_filing_category_has_a_basis() -> None:
    assert {c: basis_of(c) for c in FilingCategory} == {
        FilingCategory.RELOCATED_RETIREE: Basis.LONG_TERM,
        FilingCategory.LONG_TERM_RESIDENT: Basis.LONG_TERM,
        FilingCategory.RESIDENT_WORKER: Basis.LONG_TERM,
        FilingCategory.CHILDBIRTH: Basis.LONG_TERM,
        FilingCategory.REFERRAL: Basis.REFERRAL,
        FilingCategory.EMERGENCY: Basis.EMERGENCY,
        FilingCategory.TEMPORARY_OTHER: Basis.TEMPORARY_OTHER,
    }


# ---- the tables, transcribed by hand from the seeds --------------------------------------

T, L, R, E, TMP = (Trip, Basis.LONG_TERM, Basis.REFERRAL, Basis.EMERGENCY,
                   Basis.TEMPORARY_OTHER)
TIER_1 = (1, D("0.00"))

#: 吉医保联〔2022〕30号: tier 1 none, tier 2 −10 (referral, emergency), tier 3 −20.
JILIN = {
    **{(T.SAME_POOL, b): TIER_1 for b in (L, R, E, TMP)},
    **{(T.SAME_CITY_OTHER_COUNTY_POOL, b): TIER_1 for b in (L, R, E, TMP)},
    **{(T.OTHER_CITY_COUNTY_AREA, b): TIER_1 for b in (L, R, E, TMP)},
    (T.OTHER_CITY_DISTRICT, L): TIER_1,
    (T.OTHER_CITY_DISTRICT, R): (2, D("0.10")),
    (T.OTHER_CITY_DISTRICT, E): (2, D("0.10")),
    (T.OTHER_CITY_DISTRICT, TMP): (3, D("0.20")),
    (T.OTHER_PROVINCE, L): TIER_1,
    (T.OTHER_PROVINCE, R): (2, D("0.10")),
    (T.OTHER_PROVINCE, E): (2, D("0.10")),
    (T.OTHER_PROVINCE, TMP): (3, D("0.20")),
}

#: Shanxi: referral/emergency 0 in province, −10 across; other temporary −15 / −20.
SHANXI = {
    **{(T.SAME_POOL, b): TIER_1 for b in (L, R, E, TMP)},
    **{(T.SAME_CITY_OTHER_COUNTY_POOL, b): TIER_1 for b in (L, R, E, TMP)},
    **{(trip, b): TIER_1 for trip in (T.OTHER_CITY_COUNTY_AREA, T.OTHER_CITY_DISTRICT)
       for b in (L, R, E)},
    (T.OTHER_CITY_COUNTY_AREA, TMP): (3, D("0.15")),
    (T.OTHER_CITY_DISTRICT, TMP): (3, D("0.15")),
    (T.OTHER_PROVINCE, L): TIER_1,
    (T.OTHER_PROVINCE, R): (2, D("0.10")),
    (T.OTHER_PROVINCE, E): (2, D("0.10")),
    (T.OTHER_PROVINCE, TMP): (3, D("0.20")),
}

#: A concrete trip of each kind: (insuring pool, care pool, hospital county, county area).
SCENARIOS = {
    "jilin-2022": {
        T.SAME_POOL: ("220100", "220100", "220102", False),
        T.SAME_CITY_OTHER_COUNTY_POOL: ("220281", "220200", "220202", False),
        T.OTHER_CITY_COUNTY_AREA: ("220100", "220281", "220281", True),
        T.OTHER_CITY_DISTRICT: ("220100", "220200", "220202", False),
        T.OTHER_PROVINCE: ("220100", "320100", "320102", False),
    },
    "shanxi": {
        T.SAME_POOL: ("140100", "140100", "140105", False),
        T.SAME_CITY_OTHER_COUNTY_POOL: ("140100", "140181", "140181", True),  # 古交市, were
        T.OTHER_CITY_COUNTY_AREA: ("140100", "140200", "140221", True),      # it a pool
        T.OTHER_CITY_DISTRICT: ("140100", "140200", "140212", False),
        T.OTHER_PROVINCE: ("140100", "110100", "110105", False),
    },
}
EXPECTED = {"jilin-2022": JILIN, "shanxi": SHANXI}
CATEGORIES = {b: [c for c in FilingCategory if basis_of(c) is b] for b in (L, R, E, TMP)}


def _rows(name: str) -> list[tuple[str, TierRow]]:
    return [(name, row) for row in load_tier_table(REFERENCE, name).rows]


@pytest.mark.parametrize("name", ["jilin-2022", "shanxi"])
def test_the_table_is_exactly_the_transcription(name: str) -> None:
    table = load_tier_table(REFERENCE, name)
    assert {(r.trip, r.basis): (r.tier, r.reduction) for r in table.rows} == EXPECTED[name]


@pytest.mark.parametrize(("name", "row"), _rows("jilin-2022") + _rows("shanxi"),
                         ids=lambda v: v if isinstance(v, str) else f"{v.trip}-{v.basis}")
def test_every_row_from_a_concrete_trip(name: str, row: TierRow) -> None:
    """Classify a real trip, attach each filing category of the row's basis, and find the
    row's tier and reduction."""
    table = load_tier_table(REFERENCE, name)
    trip = classify_trip(*SCENARIOS[name][row.trip])
    assert trip is row.trip
    for category in CATEGORIES[row.basis]:
        choice = choose_tier(table, trip, [FilingOption("F-1", category)],
                             unfiled_allowed=False, emergency=False, referral=False)
        assert choice is not None
        assert (choice.basis, choice.filing_id) == (row.basis, "F-1")
        assert (choice.tier, choice.reduction) == EXPECTED[name][(row.trip, row.basis)]


#: Unfiled care, where the agency settles it: the lowest tier of the trip.
UNFILED = {
    "jilin-2022": {T.SAME_POOL: TIER_1, T.SAME_CITY_OTHER_COUNTY_POOL: TIER_1,
                   T.OTHER_CITY_COUNTY_AREA: TIER_1, T.OTHER_CITY_DISTRICT: (3, D("0.20")),
                   T.OTHER_PROVINCE: (3, D("0.20"))},
    "shanxi": {T.SAME_POOL: TIER_1, T.SAME_CITY_OTHER_COUNTY_POOL: TIER_1,
               T.OTHER_CITY_COUNTY_AREA: (3, D("0.15")), T.OTHER_CITY_DISTRICT: (3, D("0.15")),
               T.OTHER_PROVINCE: (3, D("0.20"))},
}


@pytest.mark.parametrize(("name", "trip"), [(n, t) for n in UNFILED for t in Trip])
def test_unfiled_care_takes_the_lowest_tier_of_its_trip(name: str, trip: Trip) -> None:
    table = load_tier_table(REFERENCE, name)
    choice = choose_tier(table, trip, [], unfiled_allowed=True, emergency=True, referral=True)
    assert choice is not None and (choice.basis, choice.filing_id) == (Basis.NONE, None)
    assert (choice.tier, choice.reduction) == UNFILED[name][trip]
    assert choose_tier(table, trip, [], unfiled_allowed=False, emergency=False,
                       referral=False) is None


# ---- whether unfiled care is settled: the agency's [no_filing] ---------------------------

IP, OP, PH, CH = (VisitType.INPATIENT, VisitType.OUTPATIENT, VisitType.PHARMACY,
                  VisitType.CHRONIC_OUTPATIENT)


@pytest.mark.parametrize(("agency", "trip", "visit", "allowed"), [
    ("220100", T.SAME_POOL, IP, True),
    ("220100", T.SAME_CITY_OTHER_COUNTY_POOL, IP, True),  # 免申即享
    ("220100", T.OTHER_CITY_COUNTY_AREA, IP, True),  # 免申即享
    ("220100", T.OTHER_CITY_DISTRICT, IP, True),  # in province, at tier 3
    ("220100", T.OTHER_PROVINCE, IP, False),  # across provinces a filing is needed
    ("220100", T.OTHER_PROVINCE, OP, False),  # the outpatient exemption is in province only
    ("140100", T.OTHER_CITY_DISTRICT, IP, True),  # Taiyuan waived in-province filing
    ("140100", T.OTHER_PROVINCE, PH, False),
    ("140200", T.SAME_POOL, IP, True),
    ("140200", T.OTHER_CITY_COUNTY_AREA, OP, False),  # Datong requires a filing
    ("320100", T.OTHER_CITY_DISTRICT, IP, False),
    ("110100", T.OTHER_PROVINCE, CH, False),
])
def test_the_shipped_policies_on_unfiled_care(agency: str, trip: Trip, visit: VisitType,
                                             allowed: bool) -> None:
    assert load_policy(REFERENCE, agency).no_filing.allows(trip, visit) is allowed


def test_visit_exemptions_hold_in_province_only() -> None:
    policy = NoFilingPolicy(NoFilingRule.REJECT, NoFilingScope.EVERYWHERE,
                            frozenset({"in_province_outpatient", "in_province_pharmacy"}))
    assert [policy.allows(T.OTHER_CITY_DISTRICT, v) for v in (IP, OP, PH, CH)] == [
        False, True, True, True]
    assert not any(policy.allows(T.OTHER_PROVINCE, v) for v in (IP, OP, PH, CH))
    everywhere = NoFilingPolicy(NoFilingRule.LOWEST_TIER, NoFilingScope.EVERYWHERE)
    assert everywhere.allows(T.OTHER_PROVINCE, IP)


def test_settlement_and_filing_policies_agree_on_unfiled_care() -> None:
    """Both sides read the same [no_filing] rules; this catches one file edited alone."""
    reference = load_reference(REFERENCE)
    for agency, policy in load_policies(REFERENCE).items():
        filing_side = reference.filing_policy(agency)
        assert filing_side is not None, agency
        assert (policy.no_filing.rule.value, policy.no_filing.scope.value,
                policy.no_filing.exemptions) == (filing_side.no_filing,
                                                 filing_side.no_filing_scope,
                                                 filing_side.exemptions), agency


# ---- choosing among titles ----------------------------------------------------------------


def test_the_best_title_wins() -> None:
    """择优识别: a long-term filing beats a temporary one; on a tie the filing is reported."""
    table = load_tier_table(REFERENCE, "shanxi")
    filings = [FilingOption("F-TMP", FilingCategory.TEMPORARY_OTHER),
               FilingOption("F-LONG", FilingCategory.RESIDENT_WORKER)]
    choice = choose_tier(table, T.OTHER_CITY_DISTRICT, filings, unfiled_allowed=True,
                         emergency=False, referral=False)
    assert choice is not None and (choice.filing_id, choice.tier) == ("F-LONG", 1)
    jilin = load_tier_table(REFERENCE, "jilin-2022")
    tie = choose_tier(jilin, T.OTHER_PROVINCE, filings[:1], unfiled_allowed=True,
                      emergency=False, referral=False)
    assert tie is not None and (tie.filing_id, tie.basis, tie.tier) == ("F-TMP", TMP, 3)
    # a temporary filing never makes a county-area trip worse than no filing (both tier 1)
    county = choose_tier(jilin, T.OTHER_CITY_COUNTY_AREA, filings[:1], unfiled_allowed=True,
                         emergency=False, referral=False)
    assert county is not None and county.tier == 1


def test_unfiled_emergency_rows_are_honoured_when_a_table_has_them() -> None:
    base = load_tier_table(REFERENCE, "jilin-2022")
    extra = TierRow(T.OTHER_PROVINCE, Basis.UNFILED_EMERGENCY, 2, D("0.10"), "视同备案")
    table = TierTable("test", "test", (*base.rows, extra))
    flagged = choose_tier(table, T.OTHER_PROVINCE, [], unfiled_allowed=True, emergency=True,
                          referral=False)
    assert flagged is not None
    assert (flagged.basis, flagged.tier, flagged.reduction) == (extra.basis, 2, D("0.10"))
    plain = choose_tier(table, T.OTHER_PROVINCE, [], unfiled_allowed=True, emergency=False,
                        referral=True)
    assert plain is not None and (plain.basis, plain.tier) == (Basis.NONE, 3)
    assert table.lowest(T.OTHER_PROVINCE).basis is TMP  # optional rows are never "lowest"


def test_lowest_is_the_least_favourable_row() -> None:
    table = load_tier_table(REFERENCE, "shanxi")
    assert (table.lowest(T.OTHER_CITY_DISTRICT).tier,
            table.lowest(T.OTHER_CITY_DISTRICT).reduction) == (3, D("0.15"))
    assert table.lowest(T.SAME_POOL).tier == 1


# ---- loading errors name the file and the key ---------------------------------------------

GOOD_ROW = '{ trip = "same_pool", basis = "long_term", tier = 1, reduction = "0.00" }'


def _write_table(tmp_path: Path, rows: list[str]) -> Path:
    (tmp_path / "tiers").mkdir()
    full = [f'{{ trip = "{t}", basis = "{b}", tier = 1, reduction = "0.00" }}'
            for t in Trip for b in ("long_term", "referral", "emergency", "temporary_other")]
    text = 'title = "t"\nrows = [\n' + ",\n".join(rows + full) + "\n]\n"
    path = tmp_path / "tiers" / "t.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("row", "key"), [
    ('{ trip = "same_pool", basis = "referral", tier = 4, reduction = "0.00" }', "rows[0].tier"),
    ('{ trip = "same_pool", basis = "referral", tier = 1, reduction = 0.1 }',
     "rows[0].reduction"),
    ('{ trip = "moon", basis = "referral", tier = 1, reduction = "0.00" }', "rows[0].trip"),
    ('{ trip = "same_pool", basis = "long_term", tier = 1, reduction = "0.00" }', "rows[1]"),
    ('{ trip = "same_pool", basis = "none", tier = 1, reduction = "0.00" }', "rows[0].basis"),
])
def test_bad_rows_are_refused_with_file_and_key(tmp_path: Path, row: str, key: str) -> None:
    path = _write_table(tmp_path, [row])
    with pytest.raises(PolicyError) as caught:
        load_tier_table(tmp_path, "t")
    assert caught.value.path == path and caught.value.key == key


def test_a_missing_row_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tiers").mkdir()
    (tmp_path / "tiers" / "t.toml").write_text(f'title = "t"\nrows = [{GOOD_ROW}]\n')
    with pytest.raises(PolicyError, match="no row for trip same_pool and basis referral"):
        load_tier_table(tmp_path, "t")


# ---- the visit types a table's reductions apply to (issue 16) -----------------------------

@pytest.mark.parametrize(("name", "visit_type", "trip", "category", "tier", "reduction"), [
    # Jilin: 住院待遇支付比例 … 执行三档待遇 (seed 000): inpatient care is reduced …
    ("jilin-2022", "inpatient", Trip.OTHER_CITY_DISTRICT, FilingCategory.REFERRAL, 2, "0.10"),
    ("jilin-2022", "inpatient", Trip.OTHER_PROVINCE, FilingCategory.TEMPORARY_OTHER, 3, "0.20"),
    # … other visit types are settled at the local ratio
    ("jilin-2022", "outpatient", Trip.OTHER_CITY_DISTRICT, FilingCategory.REFERRAL, 1, "0.00"),
    ("jilin-2022", "pharmacy", Trip.OTHER_PROVINCE, FilingCategory.TEMPORARY_OTHER, 1, "0.00"),
    ("jilin-2022", "chronic_outpatient", Trip.OTHER_PROVINCE, FilingCategory.EMERGENCY, 1,
     "0.00"),
    # Shanxi: 省内/跨省住院支付比例 … 下调 (seed 002): inpatient only as well
    ("shanxi", "inpatient", Trip.OTHER_PROVINCE, FilingCategory.TEMPORARY_OTHER, 3, "0.20"),
    ("shanxi", "inpatient", Trip.OTHER_CITY_DISTRICT, FilingCategory.TEMPORARY_OTHER, 3, "0.15"),
    ("shanxi", "outpatient", Trip.OTHER_PROVINCE, FilingCategory.TEMPORARY_OTHER, 1, "0.00"),
])
def test_reductions_apply_to_the_visit_types_of_the_table(
        name: str, visit_type: str, trip: Trip, category: FilingCategory, tier: int,
        reduction: str) -> None:
    table = load_tier_table(REFERENCE, name)
    choice = choose_tier(table, trip, [FilingOption("F-1", category)], unfiled_allowed=False,
                         emergency=False, referral=False, visit_type=visit_type)
    assert choice is not None
    assert (choice.tier, choice.reduction, choice.filing_id) == (tier, D(reduction), "F-1")


def test_unfiled_outpatient_care_is_not_reduced_where_the_table_is_for_inpatients() -> None:
    table = load_tier_table(REFERENCE, "jilin-2022")
    assert table.visit_types == frozenset({"inpatient"})
    choice = choose_tier(table, Trip.OTHER_CITY_DISTRICT, [], unfiled_allowed=True,
                         emergency=False, referral=False, visit_type="outpatient")
    assert choice is not None and (choice.tier, choice.reduction) == (1, D("0.00"))


@pytest.mark.parametrize(("line", "accepted"), [
    ('visit_types = ["inpatient", "outpatient"]\n', True),
    ("", True),  # absent: every visit type
    ('visit_types = ["ward"]\n', False),
    ("visit_types = []\n", False),
])
def test_visit_types_of_a_tier_table_are_checked(tmp_path: Path, line: str,
                                                 accepted: bool) -> None:
    (tmp_path / "tiers").mkdir()
    text = (REFERENCE / "tiers" / "jilin-2022.toml").read_text(encoding="utf-8")
    text = text.replace('visit_types = ["inpatient"]\n', line)
    (tmp_path / "tiers" / "t.toml").write_text(text, encoding="utf-8")
    if accepted:
        assert load_tier_table(tmp_path, "t").reduces("outpatient") is ("outpatient" in line
                                                                       or not line)
    else:
        with pytest.raises(PolicyError, match="visit_types"):
            load_tier_table(tmp_path, "t")
