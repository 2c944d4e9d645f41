"""Filings of different kinds in force together (issue 16): a long-term resident keeps the
long-term filing and may still file an emergency stay or a referral elsewhere; settlement
takes the best tier among the filings covering the hospital (择优, Jilin)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from services.filing.domain import state as domain_state
from services.filing.domain.decisions import decide
from services.settlement.domain.accumulators import PersonState
from services.settlement.domain.decisions import decide_settlement
from services.settlement.facts import Facts
from shared import filing_view
from shared.events.enrolment import PersonEnrolled
from shared.events.filing import (
    FilingEmergencyReviewed,
    FilingRegistered,
    FilingRejected,
    FilingRequested,
    InsuranceType,
)
from shared.events.settlement import SettlementCompleted
from shared.reference import DEFAULT_DIRECTORY, load_reference
from tests.unit.test_settlement_decisions import submission

REF = load_reference(DEFAULT_DIRECTORY)
FACTS = Facts(REF)
PERSON = "P-1"
TODAY = date(2026, 9, 1)
LONG_TERM_IN_BEIJING = dict(filing_id="F-LT", category="long_term_resident",
                            destination="110000", materials=["credential", "residence_proof"])
EMERGENCY_STAY = dict(filing_id="F-EM", category="emergency", destination="220200",
                      emergency_visit="inpatient", channel="hospital", materials=["credential"])
REFERRAL = dict(filing_id="F-RF", category="referral", destination="220200",
                materials=["credential", "referral_certificate"])


def request(**values: Any) -> FilingRequested:
    return FilingRequested.model_validate({
        "person_id": PERSON, "insured_agency": "220100", "insurance_type": "employee",
        "valid_from": TODAY, "commitment": False, "channel": "online", **values}, strict=False)


def file_all(*requests: dict[str, Any]) -> tuple[domain_state.PersonFilingState, list[Any]]:
    state = domain_state.fold(domain_state.empty(PERSON), PersonEnrolled(
        person_id=PERSON, insured_agency="220100", insurance_type=InsuranceType.EMPLOYEE,
        effective=date(2020, 1, 1)))
    answers = []
    for values in requests:
        events = decide(state, request(**values), TODAY, REF)
        answers.append(events[-1])
        state = domain_state.fold_all(state, events)
    return state, answers


def outcome(answer: Any) -> str:
    if isinstance(answer, FilingRegistered):
        return "registered"
    assert isinstance(answer, FilingRejected)
    return ",".join(r.code for r in answer.reasons)


@pytest.mark.parametrize(("first", "second", "expected"), [
    # different kinds coexist (the case: 220100 -> 110000, open-ended)
    (LONG_TERM_IN_BEIJING, EMERGENCY_STAY, "registered"),
    (LONG_TERM_IN_BEIJING, REFERRAL, "registered"),
    (LONG_TERM_IN_BEIJING, {**EMERGENCY_STAY, "emergency_visit": "outpatient",
                            "valid_until": date(2026, 9, 3)}, "registered"),
    (REFERRAL, EMERGENCY_STAY, "registered"),
    # two emergency stays: each filing is for one stay (住院急诊备案一次有效)
    (EMERGENCY_STAY, {**EMERGENCY_STAY, "filing_id": "F-EM2"}, "registered"),
    # the same kind still may not overlap
    (LONG_TERM_IN_BEIJING, {**LONG_TERM_IN_BEIJING, "filing_id": "F-LT2",
                            "destination": "320100"}, "overlapping_filing"),
    (REFERRAL, {**REFERRAL, "filing_id": "F-RF2"}, "overlapping_filing"),
    # a referral and other temporary care exclude each other (其他外出就医 fits neither)
    (REFERRAL, dict(filing_id="F-TO", category="temporary_other", destination="220500",
                    materials=["credential"]), "overlapping_filing"),
])
def test_filings_of_different_kinds_coexist(first: dict[str, Any], second: dict[str, Any],
                                            expected: str) -> None:
    _, answers = file_all(first, second)
    assert outcome(answers[0]) == "registered"
    assert outcome(answers[1]) == expected


def _settle(filings: list[dict[str, Any]], **changes: Any) -> SettlementCompleted:
    state, answers = file_all(*filings)
    assert all(isinstance(a, FilingRegistered) for a in answers), answers
    view = filing_view.PersonFilings(person_id=PERSON)  # the settlement side's own copy
    for event in [PersonEnrolled(person_id=PERSON, insured_agency="220100",
                                 insurance_type=InsuranceType.EMPLOYEE,
                                 effective=date(2020, 1, 1)), *answers]:
        view = filing_view.fold(view, event)
    sub = submission(admitted_on="2026-10-01", discharged_on="2026-10-09", **changes)
    decided = decide_settlement(PersonState.empty(PERSON), sub, FACTS.context(sub, view))
    assert isinstance(decided, SettlementCompleted), decided
    return decided


LONG_TERM_IN_JILIN_CITY = {**LONG_TERM_IN_BEIJING, "destination": "220200"}


@pytest.mark.parametrize(("filings", "hospital", "filing_id", "tier", "ratio", "fund_pay"), [
    # the emergency stay in 吉林市 takes the emergency filing's tier 2 (0.85 − 0.10), not
    # tier 3 unfiled: the STAY bill's eligible 10806.72, (10806.72 − 900) × 0.75 = 7430.04
    ([LONG_TERM_IN_BEIJING, EMERGENCY_STAY], "H220202001", "F-EM", 2, "0.75", "7430.04"),
    # in Beijing the long-term filing gives tier 1: × 0.85 (北京协和, level 3)
    ([LONG_TERM_IN_BEIJING, EMERGENCY_STAY], "H110101001", "F-LT", 1, "0.85", None),
    # both cover 吉林市: the best tier wins (择优), whichever was registered last:
    # (10806.72 − 900) × 0.85 = 8420.71
    ([LONG_TERM_IN_JILIN_CITY, REFERRAL], "H220202001", "F-LT", 1, "0.85", "8420.71"),
    ([REFERRAL, LONG_TERM_IN_JILIN_CITY], "H220202001", "F-LT", 1, "0.85", "8420.71"),
])
def test_settlement_takes_the_best_tier_among_the_filings_in_force(
        filings: list[dict[str, Any]], hospital: str, filing_id: str, tier: int, ratio: str,
        fund_pay: str | None) -> None:
    event = _settle(filings, hospital=hospital)
    assert (event.filing_id, event.tier, str(event.ratio)) == (filing_id, tier, ratio)
    if fund_pay is not None:
        assert event.fund_pay == Decimal(fund_pay)


@pytest.mark.parametrize(("approved", "tier", "filing_id"), [(True, 2, "F-EM"),
                                                             (False, 3, None)])
def test_the_review_of_an_emergency_reaches_the_settlement(approved: bool, tier: int,
                                                           filing_id: str | None) -> None:
    """filing.emergency_reviewed folded into the settlement side's view decides the tier."""
    state, answers = file_all(EMERGENCY_STAY)
    view = filing_view.PersonFilings(person_id=PERSON)
    for event in [PersonEnrolled(person_id=PERSON, insured_agency="220100",
                                 insurance_type=InsuranceType.EMPLOYEE,
                                 effective=date(2020, 1, 1)), *answers,
                  FilingEmergencyReviewed(filing_id="F-EM", person_id=PERSON,
                                          approved=approved, reviewed_on=TODAY)]:
        view = filing_view.fold(view, event)
    sub = submission(admitted_on="2026-10-01", discharged_on="2026-10-09")
    decided = decide_settlement(PersonState.empty(PERSON), sub, FACTS.context(sub, view))
    assert isinstance(decided, SettlementCompleted), decided
    assert (decided.tier, decided.filing_id) == (tier, filing_id)
