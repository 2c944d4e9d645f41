"""The enrolment registry (参保登记): its fold, the filing service's rules for enrolment
commands, and what the settlement service makes of it at settled_at. Dates worked by hand."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.filing.domain import state as filing_state
from services.filing.domain.decisions import decide
from services.settlement.domain.accumulators import PersonState, evolve
from services.settlement.domain.decisions import decide_refund, decide_settlement
from services.settlement.facts import Facts
from shared import filing_view
from shared.business_time import SHANGHAI
from shared.enrolment import Enrolment, enrolled_on, span_on
from shared.events.base import Payload
from shared.events.enrolment import BalanceReported, InsuranceChanged, PersonEnrolled, PersonLeft
from shared.events.filing import FilingRegistered, FilingRejected, FilingRequested
from shared.events.settlement import (
    RefundRequested,
    SettlementCompleted,
    SettlementRejected,
    SettlementSubmitted,
)
from shared.filing_view import PersonFilings
from shared.reference import DEFAULT_DIRECTORY, load_reference

REF = load_reference(DEFAULT_DIRECTORY)
FACTS = Facts(REF)
PERSON = "P-220100-MOVER"
TODAY = date(2026, 9, 1)


def enrolled(agency: str = "220100", insurance: str = "employee",
             effective: date = date(2026, 1, 1)) -> PersonEnrolled:
    return PersonEnrolled.model_validate({"person_id": PERSON, "insured_agency": agency,
                                          "insurance_type": insurance, "effective": effective},
                                         strict=False)


def changed(agency: str, insurance: str = "employee",
            effective: date = date(2026, 10, 10)) -> InsuranceChanged:
    return InsuranceChanged.model_validate({"person_id": PERSON, "insured_agency": agency,
                                            "insurance_type": insurance, "effective": effective},
                                           strict=False)


def left(agency: str = "220100", effective: date = date(2026, 10, 20),
         reason: str = "emigration") -> PersonLeft:
    return PersonLeft.model_validate({"person_id": PERSON, "insured_agency": agency,
                                      "reason": reason, "effective": effective}, strict=False)


def balance(amount: str, as_of: str = "2026-10-01T00:00:00+08:00",
            agency: str = "220100") -> BalanceReported:
    return BalanceReported.model_validate_json(json.dumps({
        "person_id": PERSON, "insured_agency": agency, "balance": amount, "as_of": as_of}))


def registry(*events: Payload) -> PersonFilings:
    """The state after the filing service accepted every one of `events` in turn."""
    state = filing_state.empty(PERSON)
    for event in events:
        answer = decide(state, event, TODAY, REF)  # type: ignore[arg-type]
        assert answer == [event], answer
        state = filing_state.fold_all(state, answer)
    return state


def refused(state: PersonFilings, command: Any, today: date = TODAY) -> list[str]:
    (answer,) = decide(state, command, today, REF)
    assert isinstance(answer, FilingRejected), answer
    assert answer.command_type == command.TYPE
    return [r.code for r in answer.reasons]


# ---- the fold: spans by effective date -----------------------------------------------------

def test_a_person_who_moved_pools_on_the_10th_is_insured_by_the_old_pool_until_the_9th() -> None:
    view = registry(enrolled("220100"), changed("220200"))
    assert enrolled_on(view.enrolment, date(2025, 12, 31)) is None
    assert enrolled_on(view.enrolment, date(2026, 10, 9)).insured_agency == "220100"
    assert enrolled_on(view.enrolment, date(2026, 10, 10)).insured_agency == "220200"
    assert enrolled_on(view.enrolment, date(2026, 10, 11)).insured_agency == "220200"
    after = filing_state.fold(view, left("220200", date(2026, 11, 1), "death"))
    assert enrolled_on(after.enrolment, date(2026, 10, 31)).insured_agency == "220200"
    assert enrolled_on(after.enrolment, date(2026, 11, 1)) is None
    assert span_on(after.enrolment, date(2026, 11, 1)).left == "death"


def test_the_registry_survives_its_database_row() -> None:
    view = registry(enrolled("220100"), changed("220200", "resident"))
    view = filing_state.fold(view, balance("12.30"))
    assert PersonFilings.from_json(view.to_json()) == view
    # a person never enrolled keeps exactly the row it had before the registry existed
    assert "enrolment" not in PersonFilings(person_id=PERSON).to_json()
    assert Enrolment.from_dict(view.enrolment.to_dict()) == view.enrolment


# ---- the filing service's rules ------------------------------------------------------------

def test_a_person_is_enrolled_once_and_again_only_after_leaving() -> None:
    state = registry(enrolled())
    assert refused(state, enrolled("220200")) == ["already_enrolled"]
    state = registry(enrolled(), left("220100", date(2026, 5, 1)))
    assert refused(state, enrolled("220200", effective=date(2026, 4, 1))) == [
        "effective_before_latest"]
    assert decide(state, enrolled("220200", effective=date(2026, 6, 1)), TODAY, REF)[0].TYPE \
        == "person.enrolled"
    assert refused(filing_state.empty(PERSON), enrolled("220300")) == ["unknown_insured_agency"]


def test_changes_and_leavings_need_an_enrolled_person_in_date_order() -> None:
    never = filing_state.empty(PERSON)
    assert refused(never, changed("220200")) == ["person_not_enrolled"]
    assert refused(never, left()) == ["person_not_enrolled"]
    state = registry(enrolled(), changed("220200"))
    assert refused(state, changed("220281", effective=date(2026, 10, 9))) == [
        "effective_before_latest"]
    assert refused(state, changed("220200", effective=date(2026, 10, 12))) == [
        "enrolment_unchanged"]
    codes = refused(state, left("220100", date(2026, 10, 15)))
    assert codes == ["enrolment_mismatch"]
    (answer,) = decide(state, left("220100", date(2026, 10, 15)), TODAY, REF)
    assert "220100" in answer.reasons[0].message and "220200" in answer.reasons[0].message


def test_a_balance_is_reported_for_an_employee_of_the_reporting_agency() -> None:
    state = registry(enrolled())
    assert decide(state, balance("10.00"), TODAY, REF)[0].TYPE == \
        "personal_account.balance_reported"
    assert refused(state, balance("10.00", agency="220200")) == ["enrolment_mismatch"]
    assert refused(state, balance("10.00", as_of="2025-06-01T00:00:00+08:00")) == [
        "person_not_enrolled"]
    resident = registry(enrolled(insurance="resident"))
    assert refused(resident, balance("10.00")) == ["account_not_employee"]


def filing(**changes: Any) -> FilingRequested:
    values: dict[str, Any] = dict(
        filing_id="F1", person_id=PERSON, insured_agency="220100", insurance_type="employee",
        category="relocated_retiree", destination="320100", valid_from=TODAY,
        materials=["credential", "relocation_proof"], commitment=False, channel="online")
    return FilingRequested.model_validate({**values, **changes}, strict=False)


def test_a_filing_names_an_enrolled_person_of_the_filing_agency() -> None:
    assert refused(filing_state.empty(PERSON), filing()) == ["person_not_enrolled"]
    state = registry(enrolled("220100"), changed("220200"))
    assert isinstance(decide(state, filing(), TODAY, REF)[0], FilingRegistered)
    # from the 10th of October the person is 吉林市's
    assert refused(state, filing(valid_from=date(2026, 10, 10))) == ["enrolment_mismatch"]
    assert refused(state, filing(insurance_type="resident")) == ["enrolment_mismatch"]


# ---- the settlement service at settled_at --------------------------------------------------

def submission(insured_agency: str, day: int, *, insurance: str = "employee",
               settlement_id: str | None = None, request: str | None = None
               ) -> SettlementSubmitted:
    """An outpatient visit at 蛟河市人民医院 (tier 1 for 长春 and for 吉林市 persons)."""
    data: dict[str, Any] = {
        "settlement_id": settlement_id or f"S-{insured_agency}-{day}",
        "hospital": "H220281001", "person_id": PERSON, "insured_agency": insured_agency,
        "insurance_type": insurance, "visit_type": "outpatient",
        "visit_date": f"2026-10-{day:02d}", "settled_at": f"2026-10-{day:02d}T10:00:00+08:00",
        "emergency": False, "referral": False,
        "items": [{"code": "A1", "name": "诊查", "category": "A", "amount": "3000.00"}]}
    if request is not None:
        data["personal_account_request"] = request
    return SettlementSubmitted.model_validate_json(json.dumps(data))


def settle(view: PersonFilings | None, sub: SettlementSubmitted,
           state: PersonState | None = None) -> SettlementCompleted | SettlementRejected:
    return decide_settlement(state or PersonState.empty(PERSON), sub, FACTS.context(sub, view))


def reasons_of(outcome: Any) -> list[tuple[str, str]]:
    assert isinstance(outcome, SettlementRejected), outcome
    return [(r.code, r.message) for r in outcome.reasons]


@pytest.mark.parametrize(("agency", "day", "settles"), [
    ("220100", 9, True), ("220200", 9, False),
    ("220200", 10, True), ("220100", 10, False),
    ("220200", 11, True), ("220100", 11, False),
])
def test_moved_pools_on_the_10th_settles_under_the_old_pool_on_the_9th_the_new_on_the_11th(
        agency: str, day: int, settles: bool) -> None:
    view = registry(enrolled("220100"), changed("220200"))
    outcome = settle(view, submission(agency, day))
    if settles:
        assert isinstance(outcome, SettlementCompleted), outcome
        assert (outcome.insured_agency, outcome.tier) == (agency, 1)
    else:
        ((code, message),) = reasons_of(outcome)
        registered = "220100" if day < 10 else "220200"
        assert code == "enrolment_mismatch"
        assert f"insured_agency {agency}" in message and f"insured by {registered}" in message


def test_unknown_person_left_person_and_insurance_type_mismatch_are_refused() -> None:
    (code, message), = reasons_of(settle(None, submission("220100", 9)))
    assert code == "person_not_enrolled" and PERSON in message
    assert [c for c, _ in reasons_of(settle(PersonFilings(person_id=PERSON),
                                            submission("220100", 9)))] == ["person_not_enrolled"]
    gone = registry(enrolled("220100"), left("220100", date(2026, 10, 5), "death"))
    assert isinstance(settle(gone, submission("220100", 4)), SettlementCompleted)
    (code, message), = reasons_of(settle(gone, submission("220100", 9)))
    assert code == "person_not_enrolled" and "left pool 220100 on 2026-10-05 (death)" in message
    (code, message), = reasons_of(settle(registry(enrolled("220100")),
                                         submission("220100", 9, insurance="resident")))
    assert code == "enrolment_mismatch"
    assert "insurance_type resident" in message and "insured as employee" in message


def test_the_personal_account_pays_at_most_what_it_holds() -> None:
    view = registry(enrolled("220100"))
    view = filing_state.fold(view, balance("500.00", "2026-10-01T00:00:00+08:00"))
    # 3000.00 outpatient, 长春 employee at a level-3 county-area hospital: the request is cut
    first = settle(view, submission("220100", 9, request="1000.00"))
    assert isinstance(first, SettlementCompleted), first
    assert (first.account_pay, first.account_balance, first.account_capped) == (
        Decimal("500.00"), Decimal("500.00"), True)
    assert first.total == first.fund_pay + first.account_pay + first.cash_pay
    # the account is now empty until the next report
    state = evolve(PersonState.empty(PERSON), first)
    second = settle(view, submission("220100", 12, request="100.00"), state)
    assert (second.account_pay, second.account_balance, second.account_capped) == (
        Decimal("0.00"), Decimal("0.00"), True)
    # a refund gives the money back to the account
    refund = RefundRequested(refund_id="R1", settlement_id=first.settlement_id,
                             hospital=first.hospital, person_id=PERSON, reason="wrong",
                             refunded_at=datetime(2026, 10, 11, 9, tzinfo=SHANGHAI))
    state = evolve(state, decide_refund(state, refund))
    third = settle(view, submission("220100", 12, request="100.00"), state)
    assert (third.account_pay, third.account_balance, third.account_capped) == (
        Decimal("100.00"), Decimal("500.00"), False)
    # a report after settled_at is not known at settled_at; with none known, as sent
    later = filing_state.fold(registry(enrolled("220100")),
                              balance("1.00", "2026-10-20T00:00:00+08:00"))
    free = settle(later, submission("220100", 9, request="1000.00"))
    assert (free.account_pay, free.account_balance, free.account_capped) == (
        Decimal("1000.00"), None, None)


def test_enrolment_events_fold_into_the_settlement_view_like_filings() -> None:
    view = PersonFilings(person_id=PERSON)
    for event in (enrolled("220100"), changed("220200"), balance("3.00")):
        view = filing_view.fold(view, event, datetime(2026, 9, 1, tzinfo=SHANGHAI))
    assert enrolled_on(view.enrolment, date(2026, 10, 11)).insured_agency == "220200"
    assert view.enrolment.balances[0].balance == Decimal("3.00")


def test_the_bench_can_measure_without_the_check_and_nothing_else_can_change() -> None:
    """CLEARINGHOUSE_ENROLMENT_CHECK=off (the bench's comparison run) settles as before the
    registry existed; the default checks."""
    sub = submission("220100", 9, request="1000.00")
    view = filing_state.fold(registry(enrolled("220200")), balance("1.00"))
    unchecked = Facts(REF, enrolment_check=False)
    outcome = decide_settlement(PersonState.empty(PERSON), sub, unchecked.context(sub, None))
    assert isinstance(outcome, SettlementCompleted) and outcome.account_balance is None
    outcome = decide_settlement(PersonState.empty(PERSON), sub, unchecked.context(sub, view))
    assert isinstance(outcome, SettlementCompleted) and outcome.account_pay == Decimal("1000.00")
    assert [c for c, _ in reasons_of(settle(view, sub))] == ["enrolment_mismatch"]


def test_an_unknown_hospital_does_not_make_an_enrolled_person_unknown() -> None:
    sub = SettlementSubmitted.model_validate({**submission("220100", 9).model_dump(),
                                              "hospital": "H999999999"})
    codes = [c for c, _ in reasons_of(settle(registry(enrolled("220100")), sub))]
    assert "unknown_hospital" in codes and "person_not_enrolled" not in codes
