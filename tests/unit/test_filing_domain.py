"""The filing service's decisions, rule by rule, with hand-worked dates."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.filing.domain import reasons
from services.filing.domain import state as domain_state
from services.filing.domain.decisions import add_months, decide, expire
from shared import topics
from shared.business_time import SHANGHAI
from shared.events import decode, encode, make_event
from shared.events.enrolment import PersonEnrolled
from shared.events.filing import (
    BenefitStatus,
    ChangeBenefitStatus,
    ChangeDestination,
    ExtendFiling,
    FilingCategory,
    FilingDestinationChanged,
    FilingEmergencyReviewed,
    FilingExpired,
    FilingExtended,
    FilingMaterialsOverdue,
    FilingMaterialsSupplied,
    FilingRegistered,
    FilingRejected,
    FilingRequested,
    FilingRevoked,
    InsuranceType,
    Material,
    ReviewEmergency,
    RevokeFiling,
    SupplyMaterials,
)
from shared.filing_view import in_force
from shared.reference import DEFAULT_DIRECTORY, filing_kind, load_reference

REF = load_reference(DEFAULT_DIRECTORY)
TODAY = date(2026, 3, 1)
PERSON = "P-220281-0001"
WORK_PROOF, CERTIFICATE = Material.WORK_PROOF, Material.REFERRAL_CERTIFICATE


def request(**changes: Any) -> FilingRequested:
    """A valid referral from 蛟河市 to 长春市, changed as a case needs."""
    values: dict[str, Any] = dict(
        filing_id="F1", person_id=PERSON, insured_agency="220281", insurance_type="employee",
        category="referral", destination="220100", destination_hospital=None,
        valid_from=TODAY, valid_until=None, materials=["credential", "referral_certificate"],
        commitment=False, channel="online", emergency_visit=None)
    values.update(changes)
    return FilingRequested.model_validate(values, strict=False)


def enrolled(agency: str = "220281", insurance_type: str = "employee"):
    """The state of PERSON enrolled with `agency` long before any date used here: filings
    must name an enrolled person of the filing agency."""
    return domain_state.fold(domain_state.empty(PERSON), PersonEnrolled(
        person_id=PERSON, insured_agency=agency, insurance_type=InsuranceType(insurance_type),
        effective=date(2020, 1, 1)))


def enrolled_for(command: FilingRequested):
    return enrolled(command.insured_agency, command.insurance_type.value)


def with_policy(agency: str, **changes: Any):
    """The shipped reference data with one agency's filing policy changed."""
    policies = dict(REF.filing_policies)
    policies[agency] = dataclasses.replace(policies[agency], **changes)
    return dataclasses.replace(REF, filing_policies=MappingProxyType(policies))


def registered(*commands: FilingRequested, today: date = TODAY):
    """The state after registering `commands`, each of which must be accepted."""
    state = enrolled(commands[0].insured_agency)
    for command in commands:
        events = decide(state, command, today, REF)
        assert [type(e) for e in events] == [FilingRegistered], events
        state = domain_state.fold_all(state, events)
    return state


def codes(events: list) -> set[str]:
    (rejected,) = [e for e in events if isinstance(e, FilingRejected)]
    return {reason.code for reason in rejected.reasons}


# ---- filing.requested -------------------------------------------------------------------

REQUEST_CASES = [
    # (case, changes, today, expected reason codes or None when registered)
    ("referral with certificate", {}, TODAY, None),
    ("no credential", {"materials": ["referral_certificate"]}, TODAY, {"credential_missing"}),
    ("no credential under commitment", {"materials": [], "commitment": True}, TODAY,
     {"credential_missing"}),
    ("referral without certificate", {"materials": ["credential"]}, TODAY,
     {"referral_certificate_missing"}),
    ("referral under commitment", {"materials": ["credential"], "commitment": True}, TODAY,
     None),
    ("long term with residence proof", {"category": "long_term_resident",
                                        "materials": ["credential", "residence_proof"]},
     TODAY, None),
    ("retiree with relocation proof", {"category": "relocated_retiree",
                                       "materials": ["credential", "relocation_proof"]},
     TODAY, None),
    ("worker without proof", {"category": "resident_worker", "materials": ["credential"]},
     TODAY, {"long_term_proof_missing"}),
    ("worker with a referral certificate only", {"category": "resident_worker"}, TODAY,
     {"long_term_proof_missing"}),
    ("childbirth without handbook", {"category": "childbirth", "materials": ["credential"]},
     TODAY, {"maternal_handbook_missing"}),
    ("childbirth with handbook", {"category": "childbirth",
                                  "materials": ["credential", "maternal_handbook"]},
     TODAY, None),
    ("temporary needs only the credential", {"category": "temporary_other",
                                             "materials": ["credential"]}, TODAY, None),
    ("unknown insuring pool 四平", {"insured_agency": "220300"}, TODAY,
     {"unknown_insured_agency"}),
    ("unknown destination", {"destination": "440100"}, TODAY, {"unknown_destination"}),
    ("unknown hospital", {"destination_hospital": "H220102999"}, TODAY, {"unknown_hospital"}),
    ("hospital outside destination", {"destination_hospital": "H220202001"}, TODAY,
     {"hospital_outside_destination"}),
    ("hospital inside destination", {"destination_hospital": "H220102001"}, TODAY, None),
    ("own pool county", {"destination": "220281"}, TODAY, {"destination_in_own_pool"}),
    ("吉林市 from 蛟河 is another pool", {"destination": "220200"}, TODAY, None),
    ("长春 person to own district", {"insured_agency": "220100", "destination": "220102"},
     TODAY, {"destination_in_own_pool"}),
    ("长春 person to own city", {"insured_agency": "220100", "destination": "220100"},
     TODAY, {"destination_in_own_pool"}),
    ("长春 person, province-wide, own-pool hospital",
     {"insured_agency": "220100", "destination": "220000",
      "destination_hospital": "H220102001"}, TODAY, {"destination_in_own_pool"}),
    ("吉林市 person to 蛟河", {"insured_agency": "220200", "destination": "220281"}, TODAY,
     None),
    ("吉林市 person to own city (蛟河 excluded)", {"insured_agency": "220200",
                                             "destination": "220200"}, TODAY, None),
    ("cross-province", {"destination": "110000"}, TODAY, None),
    ("emergency without visit", {"category": "emergency", "materials": ["credential"]},
     TODAY, {"emergency_visit_required"}),
    ("visit on a referral", {"emergency_visit": "outpatient"}, TODAY,
     {"emergency_visit_not_allowed"}),
    ("dates out of order", {"valid_until": date(2026, 2, 28)}, TODAY, {"dates_out_of_order"}),
    ("referral of 6 months exactly", {"valid_until": date(2026, 8, 31)}, TODAY, None),
    ("referral one day too long", {"valid_until": date(2026, 9, 1)}, TODAY,
     {"validity_too_long"}),
    ("emergency outpatient 3 days", {"category": "emergency", "materials": ["credential"],
                                     "emergency_visit": "outpatient",
                                     "valid_until": date(2026, 3, 3)}, TODAY, None),
    ("emergency outpatient 4 days", {"category": "emergency", "materials": ["credential"],
                                     "emergency_visit": "outpatient",
                                     "valid_until": date(2026, 3, 4)}, TODAY,
     {"validity_too_long"}),
    ("retroactive 补办", {"valid_from": date(2025, 12, 1)}, TODAY, None),
    ("苏州 referral needs a hospital", {"insured_agency": "320500", "destination": "320100"},
     TODAY, {"destination_hospital_required"}),
    ("苏州 referral with a hospital", {"insured_agency": "320500", "destination": "320100",
                                     "destination_hospital": "H320106002"}, TODAY, None),
    ("everything wrong at once", {"insured_agency": "220300", "destination": "440100",
                                  "materials": [], "emergency_visit": "inpatient"}, TODAY,
     {"unknown_insured_agency", "unknown_destination", "credential_missing",
      "referral_certificate_missing", "emergency_visit_not_allowed"}),
]


@pytest.mark.parametrize(("case", "changes", "today", "expected"), REQUEST_CASES,
                         ids=[c[0] for c in REQUEST_CASES])
def test_filing_requested(case: str, changes: dict, today: date,
                          expected: set[str] | None) -> None:
    events = decide(enrolled_for(request(**changes)), request(**changes), today, REF)
    if expected is None:
        assert [type(e) for e in events] == [FilingRegistered], events
    else:
        assert codes(events) == expected
        assert events[0].command_type == "filing.requested"


@pytest.mark.parametrize(("changes", "valid_until", "materials_due"), [
    # referral from 1 Mar: six months end on 31 Aug
    ({}, date(2026, 8, 31), None),
    # temporary from 31 Aug 2026: 28 Feb 2027 (the period runs to the month's end)
    ({"category": "temporary_other", "materials": ["credential"],
      "valid_from": date(2026, 8, 31)}, date(2027, 2, 28), None),
    ({"category": "temporary_other", "materials": ["credential"],
      "valid_from": date(2026, 1, 15)}, date(2026, 7, 14), None),
    ({"category": "emergency", "materials": ["credential"], "emergency_visit": "outpatient"},
     date(2026, 3, 3), None),
    ({"category": "emergency", "materials": ["credential"], "emergency_visit": "inpatient"},
     None, None),
    ({"category": "long_term_resident", "materials": ["credential", "work_proof"]}, None, None),
    # commitment: the materials are due 180 days after the request (1 Mar + 180 = 28 Aug)
    ({"materials": ["credential"], "commitment": True}, date(2026, 8, 31), date(2026, 8, 28)),
    # a commitment with every material owes nothing
    ({"commitment": True}, date(2026, 8, 31), None),
    # a long-term filing may be given an end
    ({"category": "resident_worker", "materials": ["credential", "work_proof"],
      "valid_until": date(2027, 6, 30)}, date(2027, 6, 30), None),
])
def test_registered_validity(changes: dict, valid_until: date | None,
                             materials_due: date | None) -> None:
    (event,) = decide(enrolled_for(request(**changes)), request(**changes), TODAY, REF)
    assert isinstance(event, FilingRegistered)
    assert (event.valid_until, event.materials_due, event.requested_on) == (
        valid_until, materials_due, TODAY)


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 3, 1), 6, date(2026, 9, 1)),
    (date(2026, 8, 31), 6, date(2027, 3, 1)),
    (date(2026, 1, 31), 1, date(2026, 3, 1)),
    (date(2027, 12, 31), 2, date(2028, 3, 1)),
    (date(2026, 11, 30), 3, date(2027, 3, 1)),
    (date(2026, 7, 15), 12, date(2027, 7, 15)),
])
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


@pytest.mark.parametrize(("agency", "changes", "expected"), [
    ("220281", {"retroactive_days_max": 30}, {"valid_from_too_early"}),
    ("220281", {"retroactive_days_max": 90}, None),  # 1 Dec is 90 days before 1 Mar
    ("220281", {"commitment_categories": frozenset()},
     {"commitment_not_allowed", "referral_certificate_missing"}),
    ("220281", {"accepted_categories": frozenset({FilingCategory.EMERGENCY})},
     {"category_not_accepted"}),
])
def test_policy_knobs(agency: str, changes: dict, expected: set[str] | None) -> None:
    command = request(valid_from=date(2025, 12, 1), materials=["credential"], commitment=True)
    events = decide(enrolled_for(command), command, TODAY, with_policy(agency, **changes))
    if expected is None:
        assert isinstance(events[0], FilingRegistered)
    else:
        assert codes(events) == expected


def test_duplicate_filing_id_and_person_mismatch() -> None:
    state = registered(request())
    later = request(valid_from=date(2026, 9, 1))
    assert codes(decide(state, later, TODAY, REF)) == {"duplicate_filing_id"}
    stranger = request(filing_id="F9", person_id="P-other", valid_from=date(2026, 9, 1))
    assert codes(decide(state, stranger, TODAY, REF)) == {"person_mismatch"}


@pytest.mark.parametrize(("valid_from", "valid_until", "revoke", "expected"), [
    (date(2026, 8, 31), None, None, {"overlapping_filing"}),  # last day of F1
    (date(2026, 9, 1), None, None, None),  # the day after F1
    (date(2026, 1, 1), date(2026, 2, 28), None, None),  # the days before F1
    (date(2026, 1, 1), date(2026, 3, 1), None, {"overlapping_filing"}),
    (date(2026, 5, 1), None, date(2026, 5, 1), None),  # F1 revoked from 1 May
    (date(2026, 4, 30), None, date(2026, 5, 1), {"overlapping_filing"}),
    (date(2026, 3, 1), None, date(2026, 3, 1), None),  # revoked before it began
])
def test_overlapping_filings(valid_from: date, valid_until: date | None, revoke: date | None,
                             expected: set[str] | None) -> None:
    state = registered(request())
    if revoke is not None:
        events = decide(state, RevokeFiling(filing_id="F1", effective=revoke), TODAY, REF)
        state = domain_state.fold_all(state, events)
    command = request(filing_id="F2", category="temporary_other", materials=["credential"],
                      valid_from=valid_from, valid_until=valid_until)
    events = decide(state, command, TODAY, REF)
    assert (None if isinstance(events[0], FilingRegistered) else codes(events)) == expected


# ---- revocation, extension, materials, change of destination ------------------------------

def test_revocation() -> None:
    state = registered(request())
    cases = [
        (RevokeFiling(filing_id="F9", effective=TODAY), {"unknown_filing"}),
        (RevokeFiling(filing_id="F1", effective=date(2026, 2, 28)), {"effective_in_past"}),
        (RevokeFiling(filing_id="F1", effective=date(2026, 9, 1)), {"filing_ended"}),
        (RevokeFiling(filing_id="F1", effective=TODAY, person_id="P-other"),
         {"person_mismatch"}),
    ]
    for command, expected in cases:
        assert codes(decide(state, command, TODAY, REF)) == expected, command
    events = decide(state, RevokeFiling(filing_id="F1", effective=date(2026, 4, 1)), TODAY, REF)
    assert events == [FilingRevoked(filing_id="F1", person_id=PERSON, effective=date(2026, 4, 1))]
    state = domain_state.fold_all(state, events)
    again = decide(state, RevokeFiling(filing_id="F1", effective=date(2026, 4, 1)), TODAY, REF)
    assert codes(again) == {"filing_revoked"}


@pytest.mark.parametrize(("changes", "today", "valid_until", "expected"), [
    ({}, TODAY, date(2026, 12, 31), None),
    ({}, TODAY, date(2027, 2, 28), None),  # six more months from 1 Sep
    ({}, TODAY, date(2027, 3, 1), {"validity_too_long"}),
    ({}, TODAY, date(2026, 8, 31), {"extension_not_later"}),
    ({}, date(2026, 9, 1), date(2026, 12, 31), {"filing_ended"}),
    ({"category": "temporary_other", "materials": ["credential"]}, TODAY, date(2026, 12, 31),
     {"extension_not_allowed"}),
])
def test_extension(changes: dict, today: date, valid_until: date,
                   expected: set[str] | None) -> None:
    state = registered(request(**changes))
    events = decide(state, ExtendFiling(filing_id="F1", valid_until=valid_until), today, REF)
    answer = [e for e in events if not isinstance(e, FilingExpired)]
    if expected is None:
        assert answer == [FilingExtended(filing_id="F1", person_id=PERSON,
                                         valid_until=valid_until)]
    else:
        assert codes(answer) == expected


def test_extension_cannot_run_into_a_later_filing() -> None:
    state = registered(request(), request(filing_id="F2", category="temporary_other",
                                          materials=["credential"], valid_from=date(2026, 10, 1)))
    events = decide(state, ExtendFiling(filing_id="F1", valid_until=date(2026, 10, 1)), TODAY,
                    REF)
    assert codes(events) == {"overlapping_filing"}
    events = decide(state, ExtendFiling(filing_id="F1", valid_until=date(2026, 9, 30)), TODAY,
                    REF)
    assert isinstance(events[0], FilingExtended)


def test_extension_not_allowed_by_policy() -> None:
    state = registered(request())
    ref = with_policy("220281", extension=False)
    events = decide(state, ExtendFiling(filing_id="F1", valid_until=date(2026, 9, 30)), TODAY, ref)
    assert codes(events) == {"extension_not_allowed"}


def test_materials_supplied() -> None:
    state = registered(request(category="long_term_resident", materials=["credential"],
                               commitment=True))
    incomplete = SupplyMaterials(filing_id="F1", materials=[Material.MATERNAL_HANDBOOK])
    assert codes(decide(state, incomplete, TODAY, REF)) == {"materials_incomplete"}
    supplied = decide(state, SupplyMaterials(filing_id="F1", materials=[WORK_PROOF]),
                      date(2026, 4, 2), REF)
    assert supplied == [FilingMaterialsSupplied(filing_id="F1", person_id=PERSON,
                                                materials=[WORK_PROOF],
                                                supplied_on=date(2026, 4, 2))]
    state = domain_state.fold_all(state, supplied)
    again = decide(state, SupplyMaterials(filing_id="F1", materials=[WORK_PROOF]), TODAY, REF)
    assert codes(again) == {"materials_not_owed"}
    complete = registered(request())
    assert codes(decide(complete, SupplyMaterials(filing_id="F1", materials=[WORK_PROOF]),
                        TODAY, REF)) == {"materials_not_owed"}


def test_supply_after_the_due_date_publishes_the_overdue_first() -> None:
    state = registered(request(materials=["credential"], commitment=True))  # due 28 Aug
    events = decide(state, SupplyMaterials(filing_id="F1", materials=[CERTIFICATE]),
                    date(2026, 8, 30), REF)
    assert [type(e) for e in events] == [FilingMaterialsOverdue, FilingMaterialsSupplied]
    state = domain_state.fold_all(state, events)
    assert in_force(state, date(2026, 8, 29)) is None
    assert in_force(state, date(2026, 8, 30)) is not None


@pytest.mark.parametrize(("destination", "hospital", "effective", "expected"), [
    ("220200", None, date(2026, 4, 1), None),
    ("220100", "H220104001", date(2026, 4, 1), None),  # same city, now a named hospital
    ("220100", None, date(2026, 4, 1), {"destination_unchanged"}),
    ("220281", None, date(2026, 4, 1), {"destination_in_own_pool"}),
    ("440100", None, date(2026, 4, 1), {"unknown_destination"}),
    ("220200", "H220102001", date(2026, 4, 1), {"hospital_outside_destination"}),
    ("220200", None, date(2026, 2, 28), {"effective_in_past", "effective_before_valid_from"}),
    ("220200", None, date(2026, 9, 1), {"filing_ended"}),
])
def test_change_of_destination(destination: str, hospital: str | None, effective: date,
                               expected: set[str] | None) -> None:
    state = registered(request())
    command = ChangeDestination(filing_id="F1", destination=destination,
                                destination_hospital=hospital, effective=effective)
    events = decide(state, command, TODAY, REF)
    if expected is None:
        assert events == [FilingDestinationChanged(
            filing_id="F1", person_id=PERSON, destination=destination,
            destination_hospital=hospital, effective=effective)]
        state = domain_state.fold_all(state, events)
        assert in_force(state, effective).destination == destination
        assert in_force(state, effective - timedelta(days=1)).destination == "220100"
    else:
        assert codes(events) == expected


# ---- benefit status -----------------------------------------------------------------------

def benefit(status: str, effective: date, agency: str = "220281") -> ChangeBenefitStatus:
    return ChangeBenefitStatus(person_id=PERSON, insured_agency=agency,
                               status=BenefitStatus(status), effective=effective)


def test_benefit_status_changes_and_termination_is_final() -> None:
    state = enrolled()
    for command in (benefit("suspended", date(2026, 3, 1)), benefit("active", date(2026, 4, 1)),
                    benefit("terminated", date(2026, 6, 1))):
        events = decide(state, command, TODAY, REF)
        assert events[0].TYPE == "benefit.status_changed"
        state = domain_state.fold_all(state, events)
    assert codes(decide(state, benefit("active", date(2026, 7, 1)), TODAY, REF)) == {
        "benefit_terminated"}
    assert codes(decide(state, benefit("suspended", date(2026, 1, 1)), TODAY, REF)) == {
        "benefit_terminated"}
    assert codes(decide(state, benefit("active", TODAY, agency="220300"), TODAY, REF)) == {
        "unknown_insured_agency"}
    # another pool (the person moved): its own status history
    assert decide(state, benefit("active", TODAY, agency="140100"), TODAY, REF)[0].TYPE == \
        "benefit.status_changed"
    # filings that would run on or past the termination are refused; earlier ones are not
    long_term = request(category="long_term_resident", materials=["credential", "work_proof"])
    assert codes(decide(state, long_term, TODAY, REF)) == {"benefit_terminated"}
    before = request(valid_until=date(2026, 5, 31))
    assert isinstance(decide(state, before, TODAY, REF)[0], FilingRegistered)


# ---- deadlines ----------------------------------------------------------------------------

@pytest.mark.parametrize(("today", "expected"), [
    (date(2026, 8, 27), []),
    (date(2026, 8, 28), [("filing.materials_overdue", "F1", date(2026, 8, 28))]),
    (date(2026, 9, 1), [("filing.materials_overdue", "F1", date(2026, 8, 28)),
                        ("filing.expired", "F1", date(2026, 9, 1))]),
])
def test_expire(today: date, expected: list) -> None:
    state = registered(request(materials=["credential"], commitment=True),
                       request(filing_id="F2", category="long_term_resident",
                               materials=["credential", "residence_proof"],
                               valid_from=date(2026, 9, 1), destination="320500"))
    assert domain_state.next_deadline(state) == date(2026, 8, 28)
    events = expire(state, today)
    found = [(e.TYPE, e.filing_id, getattr(e, "due_on", getattr(e, "expired_on", None)))
             for e in events]
    assert found == expected
    state = domain_state.fold_all(state, events)
    assert expire(state, today) == []  # each deadline is published once
    if today == date(2026, 9, 1):
        assert domain_state.next_deadline(state) is None


def test_no_expiry_for_revoked_or_open_filings() -> None:
    state = registered(request())
    state = domain_state.fold_all(state, decide(
        state, RevokeFiling(filing_id="F1", effective=date(2026, 5, 1)), TODAY, REF))
    assert expire(state, date(2027, 1, 1)) == []
    inpatient = registered(request(category="emergency", materials=["credential"],
                                   emergency_visit="inpatient"))
    assert expire(inpatient, date(2030, 1, 1)) == []
    assert domain_state.next_deadline(inpatient) is None


def test_no_overdue_when_the_filing_ends_first() -> None:
    ref = with_policy("220281", commitment_due_days=300)  # due after the 6 months
    state = enrolled()
    state = domain_state.fold_all(state, decide(
        state, request(materials=["credential"], commitment=True), TODAY, ref))
    assert [e.TYPE for e in expire(state, date(2027, 1, 1))] == ["filing.expired"]


# ---- the events travel, the codes are documented ------------------------------------------

def test_events_pass_the_contract_codec() -> None:
    state = enrolled()
    commands = [request(materials=["credential"], commitment=True),
                SupplyMaterials(filing_id="F1", materials=[CERTIFICATE]),
                RevokeFiling(filing_id="F9", effective=TODAY)]
    for command in commands:
        for event in decide(state, command, TODAY, REF):
            envelope = make_event(event, id=f"{command.TYPE}:1", source="filing-service",
                                  time=datetime(2026, 3, 1, 9, tzinfo=SHANGHAI))
            assert decode(topics.FILING_EVENTS, encode(envelope)).data == event
            state = domain_state.fold(state, event)


def test_reason_codes_are_unique_and_documented() -> None:
    all_codes = [code.code for code in reasons.ALL]
    assert len(all_codes) == len(set(all_codes)) >= 30
    docs = (DEFAULT_DIRECTORY.parent / "docs" / "filing.md").read_text(encoding="utf-8")
    docs = docs.split("## Rejection reason codes", 1)[1]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", docs, flags=re.MULTILINE))
    assert documented == set(all_codes)
    for code in reasons.ALL:
        assert "{" not in code(**{k: "x" for k in re.findall(r"{(\w+)}", code.template)}).message


# ---- invariant: filings overlap only where the policy lets their kinds coexist -------------

CATEGORIES = ["referral", "referral", "temporary_other", "resident_worker", "emergency",
              "childbirth"]
ALL_MATERIALS = ["credential", "referral_certificate", "work_proof", "maternal_handbook"]


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[Any, date]]:
    """Requests, revocations and extensions of three filing ids, on days that move forward."""
    today, commands, requested = date(2026, 1, 1), [], ["F0"]
    for _ in range(draw(st.integers(0, 15))):
        today += timedelta(days=draw(st.integers(0, 40)))
        kind = draw(st.sampled_from(["request", "request", "revoke", "extend", "extend"]))
        filing_id = f"F{draw(st.integers(0, 2))}" if kind == "request" \
            else draw(st.sampled_from(requested))
        requested.append(filing_id)
        if kind == "request":
            category = draw(st.sampled_from(CATEGORIES))
            start = today + timedelta(days=draw(st.integers(-30, 90)))
            length = draw(st.none() | st.integers(0, 150))
            command = request(
                filing_id=filing_id, category=category, valid_from=start,
                valid_until=None if length is None else start + timedelta(days=length),
                materials=ALL_MATERIALS,
                emergency_visit="inpatient" if category == "emergency" else None)
        elif kind == "revoke":
            command = RevokeFiling(filing_id=filing_id,
                                   effective=today + timedelta(days=draw(st.integers(0, 60))))
        else:
            command = ExtendFiling(filing_id=filing_id,
                                   valid_until=today + timedelta(days=draw(st.integers(0, 250))))
        commands.append((command, today))
    return commands


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_filings_overlap_only_where_their_kinds_may_coexist(
        commands: list[tuple[Any, date]]) -> None:
    """Issue 16: filings of kinds the policy lets coexist (a long-term filing and a referral
    or emergency one) may be in force together; no two others ever are."""
    state = enrolled()
    for command, today in commands:
        state = domain_state.fold_all(state, decide(state, command, today, REF))
    policy = REF.filing_policy("220281")
    assert policy is not None
    for day in (date(2026, 1, 1) + timedelta(n) for n in range(0, 900, 2)):
        covering = [f for f in state.filings if f.covers(day)]
        for i, first in enumerate(covering):
            for second in covering[i + 1:]:
                assert policy.may_coexist(filing_kind(first.category, first.emergency_visit),
                                          filing_kind(second.category, second.emergency_visit)
                                          ), (day, first, second)


def test_default_directory_is_the_repository_reference() -> None:
    assert Path(__file__).resolve().parents[2] / "reference" == DEFAULT_DIRECTORY


# ---- the hospital's emergency filing within 2 working days (seed 003, issue 16) ------------

@pytest.mark.parametrize(("valid_from", "today", "channel", "expected"), [
    (date(2026, 3, 12), date(2026, 3, 16), "hospital", None),  # Thu -> Fri 13, Mon 16
    (date(2026, 3, 12), date(2026, 3, 17), "hospital", {"emergency_filing_late"}),
    (date(2026, 3, 13), date(2026, 3, 17), "hospital", None),  # Fri -> Mon 16, Tue 17
    (date(2026, 9, 30), date(2026, 10, 9), "hospital", None),  # 国庆节: Oct 8 and 9
    (date(2026, 9, 30), date(2026, 10, 10), "hospital", {"emergency_filing_late"}),
    (date(2026, 9, 30), date(2026, 10, 10), "online", None),  # the rule binds hospitals
])
def test_a_hospital_files_an_emergency_within_two_working_days(
        valid_from: date, today: date, channel: str, expected: set[str] | None) -> None:
    command = request(category="emergency", emergency_visit="inpatient", channel=channel,
                      materials=["credential"], valid_from=valid_from)
    events = decide(enrolled_for(command), command, today, REF)
    assert (None if isinstance(events[-1], FilingRegistered) else codes(events)) == expected


# ---- the review (核定) of an emergency filing (seed 003) -----------------------------------

EMERGENCY = dict(category="emergency", emergency_visit="inpatient", channel="hospital",
                 materials=["credential"])


@pytest.mark.parametrize(("filing", "review", "expected"), [
    (EMERGENCY, ReviewEmergency(filing_id="F1", approved=True), True),
    (EMERGENCY, ReviewEmergency(filing_id="F1", approved=False), False),
    (EMERGENCY, ReviewEmergency(filing_id="F9", approved=True), {"unknown_filing"}),
    ({}, ReviewEmergency(filing_id="F1", approved=True), {"not_an_emergency_filing"}),
    (EMERGENCY, ReviewEmergency(filing_id="F1", approved=True, person_id="P-other"),
     {"person_mismatch"}),
])
def test_the_insuring_agency_reviews_an_emergency_filing(
        filing: dict[str, Any], review: ReviewEmergency, expected: bool | set[str]) -> None:
    state = registered(request(**filing))
    events = decide(state, review, TODAY, REF)
    if isinstance(expected, bool):
        assert events == [FilingEmergencyReviewed(filing_id="F1", person_id=PERSON,
                                                  approved=expected, reviewed_on=TODAY)]
        state = domain_state.fold_all(state, events)
        assert state.filings[0].emergency_approved is expected
        again = decide(state, ReviewEmergency(filing_id="F1", approved=True), TODAY, REF)
        assert codes(again) == {"emergency_already_reviewed"}
        assert domain_state.PersonFilingState.from_json(state.to_json()) == state
    else:
        assert codes(events) == expected
