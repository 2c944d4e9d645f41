"""Settlement and refund decisions, end to end through the shipped reference data."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.settlement.domain import reasons
from services.settlement.domain.accumulators import (
    Held,
    Outcome,
    PersonState,
    SettlementRecord,
    Settlements,
    evolve,
    from_document,
    from_json,
    to_document,
    to_json,
)
from services.settlement.domain.decisions import (
    FilingFacts,
    HospitalFacts,
    SettlementContext,
    care_date,
    decide_refund,
    decide_settlement,
)
from services.settlement.domain.policy import load_catalogue, load_policies, load_tier_table
from services.settlement.domain.tiers import Basis, Trip
from shared.enrolment import EnrolmentSpan
from shared.events.filing import BenefitStatus, FilingCategory, InsuranceType
from shared.events.settlement import (
    RefundRejected,
    RefundRequested,
    SettlementCompleted,
    SettlementRefunded,
    SettlementRejected,
    SettlementSubmitted,
    VisitType,
)
from shared.reference import load_reference

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "reference"
POLICIES = load_policies(REFERENCE)
D = Decimal
EMPLOYEE, RESIDENT = InsuranceType.EMPLOYEE, InsuranceType.RESIDENT

#: Hospitals of reference/hospitals.csv, with the pool covering each (checked below).
HOSPITALS = {h.code: (h, care) for h, care in [
    (HospitalFacts("H220104001", "220104", 3, False), "220100"),  # 吉林大学第一医院
    (HospitalFacts("H220182001", "220182", 2, True), "220100"),  # 榆树市人民医院
    (HospitalFacts("H220202001", "220202", 3, False), "220200"),  # 吉林市中心医院
    (HospitalFacts("H220204001", "220204", 3, False), "220200"),  # 吉林市人民医院
    (HospitalFacts("H220204002", "220204", 1, False), "220200"),  # 船营区北极街社区
    (HospitalFacts("P220202001", "220202", 1, False), "220200"),  # 昌邑区惠民大药房
    (HospitalFacts("H220281001", "220281", 3, True), "220281"),  # 蛟河市人民医院
    (HospitalFacts("H320106002", "320106", 3, False), "320100"),  # 南京鼓楼医院
    (HospitalFacts("H140106001", "140106", 3, False), "140100"),  # 山西医科大学第一医院
    (HospitalFacts("H140213001", "140213", 3, False), "140200"),  # 大同市第一人民医院
    (HospitalFacts("H140221001", "140221", 2, True), "140200"),  # 阳高县人民医院
    (HospitalFacts("H110101001", "110101", 3, False), "110100"),  # 北京协和医院
]}

#: The bill of the worked examples (docs/settlement.md).
STAY = [
    {"code": "S-SURGERY", "name": "手术费", "category": "A", "amount": "5600.00"},
    {"code": "S-WARD", "name": "床位及护理", "category": "A", "amount": "2400.00"},
    {"code": "X-J01DD04", "name": "头孢曲松", "category": "B", "amount": "3000.00"},
    {"code": "Z-GINKGO-INJ", "name": "银杏叶提取物注射液", "category": "B", "amount": "125.55"},
    {"code": "S-VIP-WARD", "name": "特需病房", "category": "C", "amount": "500.00"},
]


def submission(**changes: Any) -> SettlementSubmitted:
    """A submission as it arrives on the wire; a change to None drops the field."""
    data: dict[str, Any] = {
        "settlement_id": "S-1", "hospital": "H220202001", "person_id": "P-1",
        "insured_agency": "220100", "insurance_type": "employee", "visit_type": "inpatient",
        "admitted_on": "2026-10-01", "discharged_on": "2026-10-09",
        "settled_at": "2026-10-09T10:00:00+08:00", "emergency": False, "referral": False,
        "personal_account_request": "1000.00", "items": STAY,
    }
    data.update(changes)
    return SettlementSubmitted.model_validate_json(
        json.dumps({k: v for k, v in data.items() if v is not None}))


def visit(amount: str = "100.00", **changes: Any) -> SettlementSubmitted:
    """An outpatient visit with one category-A item."""
    fields: dict[str, Any] = {
        "visit_type": "outpatient", "admitted_on": None, "discharged_on": None,
        "visit_date": "2026-10-09", "personal_account_request": None,
        "items": [{"code": "S-CONSULT", "name": "诊查", "category": "A", "amount": amount}]}
    return submission(**{**fields, **changes})


def filing(category: FilingCategory, destination: str = "220200", *, filing_id: str = "F-1",
           insured: str = "220100", insurance: InsuranceType = EMPLOYEE,
           hospital: str | None = None, emergency_visit: str | None = None) -> FilingFacts:
    return FilingFacts(filing_id, category, destination, insurance, insured, hospital,
                       emergency_visit)


def enrolled_as(sub: SettlementSubmitted) -> EnrolmentSpan:
    """The registry's span for a person enrolled as the submission says, long before."""
    return EnrolmentSpan(date(2020, 1, 1), sub.insured_agency, sub.insurance_type.value)


def context(sub: SettlementSubmitted, *filings: FilingFacts,
            status: BenefitStatus = BenefitStatus.ACTIVE) -> SettlementContext:
    hospital, care = HOSPITALS[sub.hospital]
    return SettlementContext(hospital=hospital, care_agency=care,
                             policy=POLICIES[sub.insured_agency],
                             catalogue=load_catalogue(REFERENCE, hospital.county),
                             filings=filings, benefit_status=status,
                             enrolment=enrolled_as(sub))


def refund(settlement_id: str = "S-1", *, refund_id: str = "R-1",
           hospital: str = "H220202001",
           at: str = "2026-10-10T09:00:00+08:00") -> RefundRequested:
    return RefundRequested.model_validate_json(json.dumps({
        "refund_id": refund_id, "settlement_id": settlement_id, "hospital": hospital,
        "person_id": "P-1", "reason": "wrong tier", "refunded_at": at}))


def settle(state: PersonState, sub: SettlementSubmitted, *filings: FilingFacts,
           status: BenefitStatus = BenefitStatus.ACTIVE) -> tuple[Any, PersonState]:
    outcome = decide_settlement(state, sub, context(sub, *filings, status=status))
    return outcome, evolve(state, outcome)


def completed(state: PersonState, sub: SettlementSubmitted,
              *filings: FilingFacts) -> tuple[SettlementCompleted, PersonState]:
    outcome, state = settle(state, sub, *filings)
    assert isinstance(outcome, SettlementCompleted), outcome
    return outcome, state


def codes(outcome: SettlementRejected | RefundRejected) -> list[str]:
    return [r.code for r in outcome.reasons]


EMPTY = PersonState.empty("P-1")


def test_the_hospital_facts_match_the_reference_data() -> None:
    data = load_reference(REFERENCE)
    for code, (facts, care) in HOSPITALS.items():
        hospital = data.hospital(code)
        assert hospital is not None, code
        assert (hospital.county, hospital.level, hospital.county_area) == (
            facts.county, facts.level, facts.county_area)
        pool = data.pool_covering(hospital.county)
        assert pool is not None and pool.code == care


# ---- the worked examples of docs/settlement.md --------------------------------------------

WORKED = [
    # (title, filing, tier, ratio, fund_pay, cash_pay, cleared_amount, filing_id)
    ("tier 1: relocated retiree", filing(FilingCategory.RELOCATED_RETIREE), 1, "0.85",
     "8420.71", "2204.84", "9420.71", "F-1"),
    ("tier 2: referral", filing(FilingCategory.REFERRAL), 2, "0.75", "7430.04", "3195.51",
     "8430.04", "F-1"),
    ("tier 3: no filing", None, 3, "0.65", "6439.37", "4186.18", "7439.37", None),
]


@pytest.mark.parametrize(("title", "filed", "tier", "ratio", "fund", "cash", "cleared",
                          "filing_id"), WORKED, ids=[w[0] for w in WORKED])
def test_worked_inpatient_stays(title: str, filed: FilingFacts | None, tier: int, ratio: str,
                                fund: str, cash: str, cleared: str,
                                filing_id: str | None) -> None:
    """长春 employee, 吉林市中心医院 (level 3, a city district): 900.00 deductible, 0.85."""
    sub = submission()
    event, _ = completed(EMPTY, sub, *([filed] if filed else []))
    assert (event.tier, event.ratio, event.trip, event.filing_id) == (
        tier, D(ratio), "other_city_district", filing_id)
    assert (event.total, event.self_pay_first, event.uncovered, event.eligible,
            event.deductible) == (D("11625.55"), D("318.83"), D("500.00"), D("10806.72"),
                                  D("900.00"))
    assert (event.fund_pay, event.account_pay, event.cash_pay, event.cleared_amount) == (
        D(fund), D("1000.00"), D(cash), D(cleared))
    assert event.care_agency == "220200"
    assert event.deductible_scope == "admission|H220202001|2026-10-01"
    assert event.cap_scope == "year|2026|employee|inpatient"
    assert event.model_dump(mode="json")["ratio"] == ratio


def test_worked_county_area_stay_needs_no_filing() -> None:
    """免申即享: 长春 to 蛟河市人民医院 (county area, another city) — tier 1 without a filing."""
    event, _ = completed(EMPTY, submission(hospital="H220281001"))
    assert (event.tier, event.trip, event.filing_id, event.care_agency) == (
        1, "other_city_county_area", None, "220281")
    assert (event.fund_pay, event.cash_pay) == (D("8420.71"), D("2204.84"))


def test_worked_personal_reason_reduction() -> None:
    """Tier 3 and not direct for the person's own reasons: 0.85 − 0.20 − 0.10 = 0.55."""
    event, _ = completed(EMPTY, submission(not_direct_personal_reason=True))
    assert (event.tier, event.ratio, event.fund_pay) == (3, D("0.55"), D("5448.70"))


def test_a_stated_total_settles_like_the_items() -> None:
    """The optional `total` (an extension) equals the items' sum; the result is the same."""
    plain, _ = completed(EMPTY, submission())
    stated, _ = completed(EMPTY, submission(total=f"{plain.total:.2f}"))
    assert stated == plain


def test_worked_resident_stay() -> None:
    """A resident: level 3 is 1000.00 and 0.60, tier 3 makes 0.40; no personal account."""
    event, _ = completed(EMPTY, submission(insurance_type="resident"))
    assert (event.ratio, event.deductible, event.fund_pay, event.account_pay,
            event.cash_pay) == (D("0.40"), D("1000.00"), D("3922.69"), D("0.00"),
                                D("7702.86"))


# ---- every row of both tier tables, end to end --------------------------------------------

#: Per table, a real trip of each kind: (insuring pool, hospital, care pool).
ROW_TRIPS = {
    "jilin-2022": {
        Trip.SAME_POOL: ("220100", HospitalFacts("H220104001", "220104", 3, False), "220100"),
        Trip.SAME_CITY_OTHER_COUNTY_POOL: ("220281", HOSPITALS["H220202001"][0], "220200"),
        Trip.OTHER_CITY_COUNTY_AREA: ("220100", HOSPITALS["H220281001"][0], "220281"),
        Trip.OTHER_CITY_DISTRICT: ("220100", HOSPITALS["H220202001"][0], "220200"),
        Trip.OTHER_PROVINCE: ("220100", HOSPITALS["H320106002"][0], "320100"),
    },
    "shanxi": {
        Trip.SAME_POOL: ("140100", HOSPITALS["H140106001"][0], "140100"),
        # Shanxi has no county pools; as if 古交市 (140181) had one of its own.
        Trip.SAME_CITY_OTHER_COUNTY_POOL: ("140100", HospitalFacts("H140181001", "140181", 2,
                                                                   True), "140181"),
        Trip.OTHER_CITY_COUNTY_AREA: ("140100", HOSPITALS["H140221001"][0], "140200"),
        Trip.OTHER_CITY_DISTRICT: ("140100", HOSPITALS["H140213001"][0], "140200"),
        Trip.OTHER_PROVINCE: ("140100", HOSPITALS["H110101001"][0], "110100"),
    },
}
CATEGORY_OF = {"long_term": FilingCategory.LONG_TERM_RESIDENT,
               "referral": FilingCategory.REFERRAL, "emergency": FilingCategory.EMERGENCY,
               "temporary_other": FilingCategory.TEMPORARY_OTHER}


@pytest.mark.parametrize(("name", "trip", "basis"), [
    (name, row.trip, row.basis.value) for name in ROW_TRIPS
    for row in load_tier_table(REFERENCE, name).rows])
def test_every_table_row_settles_at_its_tier(name: str, trip: Trip, basis: str) -> None:
    insured, hospital, care = ROW_TRIPS[name][trip]
    policy = POLICIES[insured]
    assert policy.tier_table.name == name
    row = policy.tier_table.row(trip, Basis(basis))
    assert row is not None
    sub = submission(hospital=hospital.code, insured_agency=insured)
    ctx = SettlementContext(hospital, care, policy, load_catalogue(REFERENCE, hospital.county),
                            (filing(CATEGORY_OF[basis], care, insured=insured),),
                            enrolment=enrolled_as(sub))
    event = decide_settlement(EMPTY, sub, ctx)
    assert isinstance(event, SettlementCompleted), event
    rule = policy.rule(EMPLOYEE, VisitType.INPATIENT, hospital.level)
    assert rule is not None
    assert (event.trip, event.tier, event.filing_id) == (trip.value, row.tier, "F-1")
    assert event.ratio == rule.ratio - row.reduction
    assert event.total == event.fund_pay + event.account_pay + event.cash_pay


# ---- rejections ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [
    (BenefitStatus.SUSPENDED, reasons.BENEFIT_SUSPENDED),
    (BenefitStatus.TERMINATED, reasons.BENEFIT_TERMINATED),
])
def test_suspended_or_terminated_benefits_are_rejected(status: BenefitStatus,
                                                       code: str) -> None:
    outcome, _ = settle(EMPTY, submission(), status=status)
    assert isinstance(outcome, SettlementRejected) and codes(outcome) == [code]
    assert (outcome.hospital, outcome.person_id) == ("H220202001", "P-1")


@pytest.mark.parametrize(("change", "code"), [
    ({"hospital": None}, reasons.UNKNOWN_HOSPITAL),
    ({"care_agency": None}, reasons.UNKNOWN_CARE_AGENCY),
    ({"care_agency": "220100"}, reasons.UNKNOWN_CARE_AGENCY),  # the county lies elsewhere
    ({"policy": None}, reasons.UNKNOWN_INSURED_AGENCY),
    ({"catalogue": None}, reasons.NO_CATALOGUE),
    ({"hospital": HospitalFacts("H220202001", "220202", 4, False)}, reasons.NO_BENEFIT_RULE),
])
def test_missing_reference_facts_are_rejected(change: dict[str, Any], code: str) -> None:
    sub = submission()
    ctx = context(sub)
    ctx = SettlementContext(**{**ctx.__dict__, **change})
    outcome = decide_settlement(EMPTY, sub, ctx)
    assert isinstance(outcome, SettlementRejected) and codes(outcome) == [code]


@pytest.mark.parametrize(("sub", "code"), [
    (submission(admitted_on=None), reasons.ADMISSION_DATES_MISSING),
    (submission(discharged_on=None), reasons.ADMISSION_DATES_MISSING),
    (submission(admitted_on="2026-10-10"), reasons.ADMITTED_AFTER_DISCHARGE),
    (submission(settled_at="2026-10-08T23:30:00+08:00"), reasons.DATE_AFTER_SETTLEMENT),
    (visit(visit_date=None), reasons.VISIT_DATE_MISSING),
    (visit(visit_date="2026-10-10"), reasons.DATE_AFTER_SETTLEMENT),
])
def test_care_dates(sub: SettlementSubmitted, code: str) -> None:
    outcome, _ = settle(EMPTY, sub)
    assert isinstance(outcome, SettlementRejected) and codes(outcome) == [code]


def test_business_dates_are_those_of_shanghai() -> None:
    """17:00 UTC on 8 October is 01:00 on 9 October in Shanghai: discharge on the 9th is fine,
    and a settlement at 16:30 UTC on 31 December counts in the next year."""
    event, _ = completed(EMPTY, submission(settled_at="2026-10-08T17:00:00Z"))
    assert event.fund_pay == D("6439.37")
    new_year, _ = completed(EMPTY, visit(settled_at="2026-12-31T16:30:00Z",
                                         visit_date="2027-01-01"))
    assert new_year.cap_scope == "year|2027|employee|outpatient"


def test_all_problems_are_reported_at_once() -> None:
    outcome, _ = settle(EMPTY, submission(admitted_on=None), status=BenefitStatus.SUSPENDED)
    assert isinstance(outcome, SettlementRejected)
    assert codes(outcome) == [reasons.ADMISSION_DATES_MISSING, reasons.BENEFIT_SUSPENDED]


# ---- filings ------------------------------------------------------------------------------


def test_a_filing_for_elsewhere_leaves_jilin_care_unfiled_at_tier_3() -> None:
    event, _ = completed(EMPTY, submission(), filing(FilingCategory.RELOCATED_RETIREE,
                                                     "320100"))
    assert (event.tier, event.filing_id) == (3, None)


def test_unfiled_care_refused_by_the_agency() -> None:
    sub = submission(insured_agency="140200", hospital="H140106001")
    outcome, _ = settle(EMPTY, sub)
    assert isinstance(outcome, SettlementRejected)
    assert codes(outcome) == [reasons.FILING_REQUIRED]
    elsewhere = filing(FilingCategory.TEMPORARY_OTHER, "110100", insured="140200")
    outcome, _ = settle(EMPTY, sub, elsewhere)
    assert isinstance(outcome, SettlementRejected)
    assert codes(outcome) == [reasons.FILING_NOT_FOR_HOSPITAL]
    event, _ = completed(EMPTY, sub, filing(FilingCategory.TEMPORARY_OTHER, "140000",
                                            insured="140200"))
    assert (event.tier, event.ratio) == (3, D("0.85") - D("0.15"))  # 大同 level 3: 0.85


def test_jilin_care_in_another_province_needs_a_filing() -> None:
    outcome, _ = settle(EMPTY, submission(hospital="H320106002"))
    assert isinstance(outcome, SettlementRejected)
    assert codes(outcome) == [reasons.FILING_REQUIRED]


def test_a_filing_naming_another_hospital_does_not_cover() -> None:
    named = filing(FilingCategory.REFERRAL, hospital="H220204001")
    event, _ = completed(EMPTY, submission(), named)
    assert (event.tier, event.filing_id) == (3, None)
    event, _ = completed(EMPTY, submission(hospital="H220204001"), named)
    assert (event.tier, event.filing_id) == (2, "F-1")


@pytest.mark.parametrize(("emergency_visit", "tier"), [("outpatient", 3), ("inpatient", 2),
                                                       (None, 2)])
def test_an_emergency_filing_covers_the_visit_kind_it_was_made_for(
        emergency_visit: str | None, tier: int) -> None:
    urgent = filing(FilingCategory.EMERGENCY, emergency_visit=emergency_visit)
    event, _ = completed(EMPTY, submission(emergency=True), urgent)
    assert event.tier == tier


@pytest.mark.parametrize(("filed", "code"), [
    (filing(FilingCategory.REFERRAL, insurance=RESIDENT), reasons.FILING_INSURANCE_TYPE_MISMATCH),
    (filing(FilingCategory.REFERRAL, insured="220200"), reasons.FILING_AGENCY_MISMATCH),
])
def test_a_covering_filing_of_another_scheme_or_agency_is_rejected(filed: FilingFacts,
                                                                    code: str) -> None:
    outcome, _ = settle(EMPTY, submission(), filed)
    assert isinstance(outcome, SettlementRejected) and codes(outcome) == [code]


def test_a_mismatched_filing_that_does_not_cover_is_ignored() -> None:
    other = filing(FilingCategory.REFERRAL, "320100", insurance=RESIDENT)
    event, _ = completed(EMPTY, submission(), other)
    assert event.tier == 3


# ---- accumulators -------------------------------------------------------------------------


def test_the_deductible_is_per_admission_for_inpatient_care() -> None:
    """A second settlement of the same stay (中途结算) finds its deductible used; a new stay
    pays its own."""
    _, state = completed(EMPTY, submission())
    part, state = completed(state, submission(settlement_id="S-2", admitted_on="2026-10-01",
                                              discharged_on="2026-10-20",
                                              settled_at="2026-10-20T10:00:00+08:00"))
    assert (part.deductible, part.fund_pay) == (D("0.00"), D("7024.37"))  # 10806.72 × 0.65
    again, _ = completed(state, submission(settlement_id="S-3", admitted_on="2026-11-01",
                                           discharged_on="2026-11-05",
                                           settled_at="2026-11-05T10:00:00+08:00"))
    assert again.deductible == D("900.00")


def test_the_outpatient_deductible_is_per_year_and_shared_with_pharmacies() -> None:
    """长春 employee outpatient: 200.00 a year for outpatient care and pharmacies together;
    unfiled in Jilin, at the local ratio: Jilin's tier reductions are stated for inpatient
    care only (issue 16; 0.50 at level 3, 0.50 at a pharmacy)."""
    first, state = completed(EMPTY, visit("150.00", hospital="H220204001"))
    assert (first.deductible, first.fund_pay, first.ratio) == (D("150.00"), D("0.00"),
                                                               D("0.50"))
    second, state = completed(state, visit("100.00", settlement_id="S-2",
                                           hospital="P220202001", visit_type="pharmacy"))
    assert (second.deductible, second.fund_pay) == (D("50.00"), D("25.00"))  # 50 × 0.50
    assert state.deductible_used == {"year|2026|employee|outpatient": D("200.00")}
    next_year, _ = completed(state, visit("100.00", settlement_id="S-3",
                                          visit_date="2027-01-02",
                                          settled_at="2027-01-02T10:00:00+08:00"))
    assert next_year.deductible == D("100.00")


def test_the_annual_cap_binds_and_a_refund_frees_it() -> None:
    """Outpatient cap 3000.00: (20000 − 200) × 0.70 = 13860.00 is capped at 3000.00 (the
    local ratio: Jilin's tier reductions are stated for inpatient care, issue 16)."""
    big, state = completed(EMPTY, visit("20000.00", hospital="H220204002"))
    assert (big.ratio, big.fund_pay) == (D("0.70"), D("3000.00"))
    more, capped = completed(state, visit("1000.00", settlement_id="S-2",
                                          hospital="H220204002",
                                          personal_account_request="300.00"))
    assert (more.fund_pay, more.account_pay, more.cash_pay) == (D("0.00"), D("300.00"),
                                                                D("700.00"))
    refunded = decide_refund(state, refund("S-1", hospital="H220204002"))
    assert isinstance(refunded, SettlementRefunded)
    freed = evolve(state, refunded)
    assert freed.cap_used == {} and freed.deductible_used == {}
    again, _ = completed(freed, visit("1000.00", settlement_id="S-2", hospital="H220204002"))
    assert again.fund_pay == D("560.00")  # (1000 − 200) × 0.70


# ---- duplicates ---------------------------------------------------------------------------


def test_a_second_message_reusing_a_settlement_id_is_rejected() -> None:
    _, state = completed(EMPTY, submission())
    outcome, after = settle(state, visit())
    assert isinstance(outcome, SettlementRejected)
    assert codes(outcome) == [reasons.DUPLICATE_SETTLEMENT_ID]
    assert after == state  # the rejection does not mark the completed id rejected
    other, _ = completed(state, submission(hospital="H220204001"))  # another hospital's S-1
    assert other.settlement_id == "S-1"


def test_a_rejected_id_may_be_submitted_again() -> None:
    outcome, state = settle(EMPTY, submission(), status=BenefitStatus.SUSPENDED)
    assert isinstance(outcome, SettlementRejected)
    assert state.rejected == {("H220202001", "S-1")}
    _, state = completed(state, submission())
    assert state.rejected == frozenset()


# ---- refunds (隔笔退费) ---------------------------------------------------------------------


def test_any_earlier_settlement_can_be_refunded_in_full_once() -> None:
    before = EMPTY
    first, state = completed(before, submission())
    _, state = completed(state, visit(settlement_id="S-2"))
    after_visit_only = completed(EMPTY, visit(settlement_id="S-2"))[1]
    outcome = decide_refund(state, refund("S-1"))
    assert isinstance(outcome, SettlementRefunded)
    assert (outcome.total, outcome.deductible, outcome.fund_pay, outcome.account_pay,
            outcome.cash_pay, outcome.cleared_amount) == (
        first.total, first.deductible, first.fund_pay, first.account_pay, first.cash_pay,
        first.cleared_amount)
    assert (outcome.insured_agency, outcome.care_agency, outcome.settled_at) == (
        "220100", "220200", first.settled_at)
    state = evolve(state, outcome)
    assert state.deductible_used == after_visit_only.deductible_used
    assert state.cap_used == after_visit_only.cap_used
    twice = decide_refund(state, refund("S-1", refund_id="R-2"))
    assert isinstance(twice, RefundRejected) and codes(twice) == [reasons.ALREADY_REFUNDED]


def test_only_the_settling_hospital_can_refund() -> None:
    _, state = completed(EMPTY, submission())
    outcome = decide_refund(state, refund("S-1", hospital="H220204001"))
    assert isinstance(outcome, RefundRejected)
    assert codes(outcome) == [reasons.REFUND_OTHER_HOSPITAL]


def test_a_refund_before_its_settlement_is_rejected() -> None:
    _, state = completed(EMPTY, submission())
    outcome = decide_refund(state, refund(at="2026-10-09T09:59:59+08:00"))
    assert isinstance(outcome, RefundRejected)
    assert codes(outcome) == [reasons.REFUND_BEFORE_SETTLEMENT]


def test_a_refund_of_an_unknown_settlement_is_held_until_it_is_decided() -> None:
    early = refund("S-1")
    held = decide_refund(EMPTY, early)
    assert isinstance(held, Held) and held.code == reasons.SETTLEMENT_NOT_YET_KNOWN
    state = evolve(evolve(EMPTY, held), held)
    assert state.held_refunds == (early,)
    _, state = completed(state, submission())
    (waiting,) = state.held_for("S-1")
    outcome = decide_refund(state, waiting)
    assert isinstance(outcome, SettlementRefunded)
    assert evolve(state, outcome).held_refunds == ()


def test_a_held_refund_of_a_rejected_settlement_is_rejected() -> None:
    state = evolve(EMPTY, decide_refund(EMPTY, refund("S-1")))
    _, state = settle(state, submission(), status=BenefitStatus.SUSPENDED)
    (waiting,) = state.held_for("S-1")
    outcome = decide_refund(state, waiting)
    assert isinstance(outcome, RefundRejected)
    assert codes(outcome) == [reasons.SETTLEMENT_REJECTED]
    assert evolve(state, outcome).held_refunds == ()


# ---- re-settlement ------------------------------------------------------------------------


def _refunded_stay() -> PersonState:
    _, state = completed(EMPTY, submission())
    outcome = decide_refund(state, refund("S-1"))
    assert isinstance(outcome, SettlementRefunded)
    return evolve(state, outcome)


def test_a_refunded_settlement_is_settled_again_once() -> None:
    state = _refunded_stay()
    fixed = submission(settlement_id="S-1R", resettles="S-1",
                       settled_at="2026-10-10T10:00:00+08:00")
    event, state = completed(state, fixed, filing(FilingCategory.REFERRAL))
    assert (event.resettles, event.tier, event.deductible, event.fund_pay) == (
        "S-1", 2, D("900.00"), D("7430.04"))
    original = state.find("H220202001", "S-1")
    assert original is not None and original.resettled_by == "S-1R"
    outcome, _ = settle(state, submission(settlement_id="S-1S", resettles="S-1",
                                          settled_at="2026-10-11T10:00:00+08:00"))
    assert isinstance(outcome, SettlementRejected)
    assert codes(outcome) == [reasons.ALREADY_RESETTLED]


@pytest.mark.parametrize(("resettles", "hospital", "code"), [
    ("S-404", "H220202001", reasons.RESETTLES_UNKNOWN),
    ("S-1", "H220204001", reasons.RESETTLES_OTHER_HOSPITAL),
])
def test_resettles_must_name_a_settlement_of_the_same_hospital(resettles: str, hospital: str,
                                                               code: str) -> None:
    outcome, _ = settle(_refunded_stay(), submission(settlement_id="S-9", hospital=hospital,
                                                     resettles=resettles))
    assert isinstance(outcome, SettlementRejected) and codes(outcome) == [code]


def test_resettles_must_name_a_refunded_settlement() -> None:
    _, state = completed(EMPTY, submission())
    outcome, _ = settle(state, submission(settlement_id="S-2", resettles="S-1"))
    assert isinstance(outcome, SettlementRejected)
    assert codes(outcome) == [reasons.RESETTLES_NOT_REFUNDED]


# ---- storage and documentation ------------------------------------------------------------


def test_the_state_round_trips_through_json() -> None:
    outcomes: list[Outcome] = []
    state = EMPTY
    for step in (lambda s: decide_settlement(s, submission(), context(submission())),
                 lambda s: decide_settlement(s, visit(settlement_id="S-2"),
                                             context(visit())),
                 lambda s: decide_refund(s, refund("S-1")),
                 lambda s: decide_refund(s, refund("S-7", refund_id="R-7")),
                 lambda s: decide_settlement(s, visit(settlement_id="S-3"),
                                             context(visit(), status=BenefitStatus.SUSPENDED))):
        outcome = step(state)
        outcomes.append(outcome)
        state = evolve(state, outcome)
        assert from_json(to_json(state)) == state
    assert [type(o).__name__ for o in outcomes] == [
        "SettlementCompleted", "SettlementCompleted", "SettlementRefunded", "Held",
        "SettlementRejected"]
    document = json.loads(to_json(state))
    assert (document["deductible_used"], document["cap_used"]) == (
        {"year|2026|employee|outpatient": "100.00"}, {})
    assert document["rejected"] == [["H220202001", "S-3"]]
    assert [r["refund_id"] for r in document["held_refunds"]] == ["R-7"]


def test_every_reason_code_is_documented() -> None:
    text = (ROOT / "docs" / "settlement.md").read_text(encoding="utf-8")
    every = (*reasons.SETTLEMENT_REJECTION_CODES, *reasons.REFUND_REJECTION_CODES,
             reasons.SETTLEMENT_NOT_YET_KNOWN)
    assert [c for c in every if f"`{c}`" not in text] == []


# ---- a long history costs no more per event (Settlements) ---------------------------------


def _history(n: int) -> PersonState:
    """A person with `n` completed outpatient visits at one hospital, as stored and loaded."""
    state = EMPTY
    for i in range(n):
        at = f"2026-10-09T{8 + i // 60:02d}:{i % 60:02d}:00+08:00"
        _, state = completed(state, visit(settlement_id=f"S-{i}", settled_at=at))
    return from_document(orjson.loads(orjson.dumps(to_document(state))))


def test_a_loaded_history_is_read_only_where_an_event_looks(monkeypatch) -> None:
    import services.settlement.domain.accumulators as accumulators

    loaded = _history(40)
    stored = to_document(loaded)["settlements"]
    read: list[str] = []
    real = accumulators.record_from_document

    def counting(doc: Any) -> SettlementRecord:
        read.append(doc["settlement_id"])
        return real(doc)

    monkeypatch.setattr(accumulators, "record_from_document", counting)
    outcome, state = settle(loaded, visit(settlement_id="S-new"))
    assert isinstance(outcome, SettlementCompleted)
    refunded = decide_refund(state, refund("S-7", at="2026-10-10T09:00:00+08:00"))
    assert isinstance(refunded, SettlementRefunded)
    state = evolve(state, refunded)
    assert read == ["S-7"]  # only the refunded one, once (kept for its change); no other
    documents = to_document(state)["settlements"]
    assert len(documents) == 42 - 1
    # Untouched settlements are written back as they were loaded (the same objects).
    assert all(documents[i] is stored[i] for i in range(40) if i != 7)
    assert documents[7] == {**stored[7], "refund_id": "R-1"}
    assert documents[40]["settlement_id"] == "S-new"


def test_lazy_settlements_equal_their_records_and_round_trip() -> None:
    loaded = _history(5)
    built = Settlements(list(loaded.settlements))
    assert loaded.settlements == built == tuple(built)
    assert from_document(to_document(loaded)) == loaded
    assert [s.settlement_id for s in loaded.settlements[1:3]] == ["S-1", "S-2"]
    assert loaded.settlements.index_of("H220202001", "S-4") == 4
    assert loaded.settlements.index_of("H220202999", "S-4") is None
    with pytest.raises(ValueError):
        loaded.settlements.replaced(0, loaded.settlements[1])  # another settlement's place
    resettled = dataclasses.replace(loaded, settlements=loaded.settlements.replaced(
        2, dataclasses.replace(loaded.settlements[2], refund_id="R-9")))
    assert loaded.settlements[2].refund_id is None  # the original is unchanged
    assert resettled.settlements[2].refund_id == "R-9" and resettled != loaded


# ---- the year of the care (issue 16) ------------------------------------------------------

#: 220100 employee inpatient cap 300,000.00, of which 295,000.00 used in 2026 already.
CAP_2026 = "year|2026|employee|inpatient"
BIG_STAY = [{"code": "S-SURGERY", "name": "手术费", "category": "A", "amount": "20000.00"}]


def _stay_of_december() -> tuple[SettlementCompleted, PersonState]:
    """A 2026-12 referral stay: (20000 − 900) × 0.75 = 14,325.00, capped at the 5,000.00 left."""
    used = dataclasses.replace(EMPTY, cap_used={CAP_2026: D("295000.00")})
    return completed(used, submission(admitted_on="2026-12-20", discharged_on="2026-12-28",
                                      settled_at="2026-12-28T10:00:00+08:00", items=BIG_STAY,
                                      personal_account_request=None),
                     filing(FilingCategory.REFERRAL))


@pytest.mark.parametrize(("resettled_at", "fund_pay", "cap_scope"), [
    ("2026-12-30T10:00:00+08:00", "5000.00", CAP_2026),  # same year: the cap binds
    ("2027-01-05T10:00:00+08:00", "5000.00", CAP_2026),  # next year: still the 2026 cap
])
def test_a_resettlement_draws_on_the_cap_of_the_original_care(resettled_at: str, fund_pay: str,
                                                               cap_scope: str) -> None:
    first, state = _stay_of_december()
    assert (first.fund_pay, first.cap_scope) == (D("5000.00"), CAP_2026)
    outcome = decide_refund(state, refund("S-1", at="2027-01-04T09:00:00+08:00"))
    assert isinstance(outcome, SettlementRefunded)
    state = evolve(state, outcome)
    again, state = completed(state, submission(
        settlement_id="S-1R", resettles="S-1", admitted_on="2026-12-20",
        discharged_on="2026-12-28", settled_at=resettled_at, items=BIG_STAY,
        personal_account_request=None), filing(FilingCategory.REFERRAL))
    assert (again.fund_pay, again.cap_scope) == (D(fund_pay), cap_scope)
    assert state.cap_used == {CAP_2026: D("300000.00")}


def test_the_care_date_follows_a_chain_of_resettlements_to_the_first() -> None:
    first, state = _stay_of_december()
    state = evolve(state, decide_refund(state, refund("S-1", at="2027-01-04T09:00:00+08:00")))
    second, state = completed(state, submission(
        settlement_id="S-1R", resettles="S-1", settled_at="2027-01-05T10:00:00+08:00",
        admitted_on="2026-12-20", discharged_on="2026-12-28", items=BIG_STAY,
        personal_account_request=None), filing(FilingCategory.REFERRAL))
    state = evolve(state, decide_refund(state, refund("S-1R", refund_id="R-2",
                                                      at="2027-02-01T09:00:00+08:00")))
    third = submission(settlement_id="S-1S", resettles="S-1R", admitted_on="2026-12-20",
                       discharged_on="2026-12-28", settled_at="2027-02-02T10:00:00+08:00")
    assert care_date(state, third) == date(2026, 12, 28)
    assert care_date(state, submission(settled_at="2027-02-02T10:00:00+08:00")) == \
        date(2027, 2, 2)


# ---- an emergency inpatient filing is valid for one stay (issue 16) ------------------------

EMERGENCY_STAY = filing(FilingCategory.EMERGENCY, filing_id="F-EM", emergency_visit="inpatient")


@pytest.mark.parametrize(("later", "filings", "tier", "filing_id"), [
    # another stay months later: the filing ended at the first discharge -> tier 3 unfiled
    (dict(settlement_id="S-2", admitted_on="2027-03-01", discharged_on="2027-03-05",
          settled_at="2027-03-05T10:00:00+08:00"), (EMERGENCY_STAY,), 3, None),
    # another stay at another hospital of the same place, the next week: also ended
    (dict(settlement_id="S-2", hospital="H220204001", admitted_on="2026-10-15",
          discharged_on="2026-10-20", settled_at="2026-10-20T10:00:00+08:00"),
     (EMERGENCY_STAY,), 3, None),
    # a new emergency filing for the new stay gives tier 2 again
    (dict(settlement_id="S-2", admitted_on="2027-03-01", discharged_on="2027-03-05",
          settled_at="2027-03-05T10:00:00+08:00"),
     (EMERGENCY_STAY, dataclasses.replace(EMERGENCY_STAY, filing_id="F-EM2")), 2, "F-EM2"),
    # a long-term filing is not used up by a stay
    (dict(settlement_id="S-2", admitted_on="2027-03-01", discharged_on="2027-03-05",
          settled_at="2027-03-05T10:00:00+08:00"),
     (filing(FilingCategory.LONG_TERM_RESIDENT, filing_id="F-LT"),), 1, "F-LT"),
])
def test_an_emergency_inpatient_filing_ends_at_the_discharge_settlement(
        later: dict[str, Any], filings: tuple[FilingFacts, ...], tier: int,
        filing_id: str | None) -> None:
    first, state = completed(EMPTY, submission(), EMERGENCY_STAY)
    assert (first.tier, first.filing_id, first.filings_consumed) == (2, "F-EM", ["F-EM"])
    assert state.consumed_filings == {"F-EM": "admission|H220202001|2026-10-01"}
    event, _ = completed(state, submission(**later), *filings)
    assert (event.tier, event.filing_id) == (tier, filing_id)


def test_the_same_stay_settled_again_keeps_its_emergency_filing() -> None:
    _, state = completed(EMPTY, submission(), EMERGENCY_STAY)
    state = evolve(state, decide_refund(state, refund("S-1")))
    again, state = completed(state, submission(settlement_id="S-1R", resettles="S-1",
                                               settled_at="2026-10-10T10:00:00+08:00"),
                             EMERGENCY_STAY)
    assert (again.tier, again.filing_id, again.filings_consumed) == (2, "F-EM", ["F-EM"])
    assert from_json(to_json(state)) == state
    assert to_document(state)["consumed_filings"] == {
        "F-EM": "admission|H220202001|2026-10-01"}
    assert "consumed_filings" not in to_document(EMPTY)  # earlier rows stay as they were


def test_an_outpatient_visit_does_not_use_up_an_inpatient_emergency_filing() -> None:
    event, state = completed(EMPTY, visit(), filing(FilingCategory.EMERGENCY, filing_id="F-EO",
                                                    emergency_visit="outpatient"))
    assert event.filings_consumed is None and state.consumed_filings == {}


@pytest.mark.parametrize(("approved", "tier", "filing_id", "fund_pay"), [
    (None, 2, "F-EM", "7430.04"),   # not reviewed yet: the filing counts
    (True, 2, "F-EM", "7430.04"),   # approved: (10806.72 − 900) × 0.75
    (False, 3, None, "6439.37"),    # refused: 按自行就医待遇, unfiled tier 3: × 0.65
])
def test_a_refused_emergency_settles_as_self_referred_care(approved: bool | None, tier: int,
                                                           filing_id: str | None,
                                                           fund_pay: str) -> None:
    reviewed = dataclasses.replace(EMERGENCY_STAY, emergency_approved=approved)
    event, _ = completed(EMPTY, submission(), reviewed)
    assert (event.tier, event.filing_id, event.fund_pay) == (tier, filing_id, D(fund_pay))


# ---- tier tables chosen by the date of care (issue 16) ------------------------------------

@pytest.mark.parametrize(("settled_at", "expected"), [
    ("2022-10-31T10:00:00+08:00", reasons.NO_TIER_TABLE),  # before 吉医保联〔2022〕30号
    ("2022-11-01T10:00:00+08:00", 2),                        # its first day
    ("2022-12-31T10:00:00+08:00", 2),                        # inside the transition
    ("2026-10-09T10:00:00+08:00", 2),
])
def test_the_tier_table_is_chosen_by_the_date_of_care(settled_at: str,
                                                      expected: int | str) -> None:
    day = settled_at[:10]
    sub = submission(admitted_on=day, discharged_on=day, settled_at=settled_at)
    outcome = decide_settlement(EMPTY, sub, dataclasses.replace(
        context(sub, filing(FilingCategory.REFERRAL)),
        enrolment=EnrolmentSpan(date(2000, 1, 1), "220100", "employee")))
    if isinstance(expected, str):
        assert isinstance(outcome, SettlementRejected) and codes(outcome) == [expected]
    else:
        assert isinstance(outcome, SettlementCompleted) and outcome.tier == expected


def test_an_earlier_table_applies_to_care_before_the_current_one() -> None:
    """A policy naming an earlier table (as a pool still on its old rules would): care before
    2022-11-01 takes it, later care the 2022 table."""
    policy = POLICIES["220100"]
    older = dataclasses.replace(load_tier_table(REFERENCE, "shanxi"), name="old",
                                effective_from=date(2020, 1, 1))
    both = dataclasses.replace(policy, tier_tables=(older, policy.tier_table))
    assert both.tier_table_on(date(2022, 10, 31)) is older
    assert both.tier_table_on(date(2022, 11, 1)) is policy.tier_table
    assert both.tier_table_on(date(2019, 12, 31)) is None
    assert load_tier_table(REFERENCE, "jilin-2022").transition_until == date(2022, 12, 31)
