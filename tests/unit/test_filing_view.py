"""The filing query model: which filing is in force on a date, the benefit status, storage."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.business_time import business_date
from shared.events.base import Reason
from shared.events.filing import (
    BenefitStatus,
    BenefitStatusChanged,
    FilingDestinationChanged,
    FilingExpired,
    FilingExtended,
    FilingMaterialsOverdue,
    FilingMaterialsSupplied,
    FilingRegistered,
    FilingRejected,
    FilingRevoked,
    Material,
)
from shared.filing_view import (
    PersonFilings,
    benefit_status,
    fold,
    in_force,
)

PERSON = "P1"


def registered(filing_id: str = "F1", **changes: Any) -> FilingRegistered:
    values: dict[str, Any] = dict(
        filing_id=filing_id, person_id=PERSON, insured_agency="220281",
        insurance_type="employee", category="referral", destination="220100",
        destination_hospital=None, valid_from=date(2026, 3, 1), valid_until=date(2026, 8, 31),
        materials=["credential", "referral_certificate"], commitment=False, channel="online",
        emergency_visit=None, requested_on=date(2026, 3, 1), materials_due=None)
    values.update(changes)
    return FilingRegistered.model_validate(values, strict=False)


def folded(*events: Any) -> PersonFilings:
    state = PersonFilings()
    for event in events:
        state = fold(state, event)
    return state


def in_force_id(state: PersonFilings, day: date) -> str | None:
    found = in_force(state, day)
    return found.filing_id if found else None


# ---- in force ---------------------------------------------------------------------------

IN_FORCE_CASES = [
    ("before valid_from", [registered()], date(2026, 2, 28), None),
    ("first day", [registered()], date(2026, 3, 1), "F1"),
    ("last day", [registered()], date(2026, 8, 31), "F1"),
    ("day after", [registered()], date(2026, 9, 1), None),
    ("open end", [registered(valid_until=None, category="long_term_resident")],
     date(2036, 1, 1), "F1"),
    ("retroactive covers from valid_from", [registered(valid_from=date(2026, 1, 10),
                                                       requested_on=date(2026, 3, 1))],
     date(2026, 1, 10), "F1"),
    ("day before revocation", [registered(), FilingRevoked(
        filing_id="F1", person_id=PERSON, effective=date(2026, 5, 1))], date(2026, 4, 30), "F1"),
    ("revocation day", [registered(), FilingRevoked(
        filing_id="F1", person_id=PERSON, effective=date(2026, 5, 1))], date(2026, 5, 1), None),
    ("extended", [registered(), FilingExpired(filing_id="F1", person_id=PERSON,
                                              expired_on=date(2026, 9, 1)),
                  FilingExtended(filing_id="F1", person_id=PERSON,
                                 valid_until=date(2026, 12, 31))], date(2026, 12, 31), "F1"),
    ("commitment before due", [registered(materials_due=date(2026, 6, 1))],
     date(2026, 5, 31), "F1"),
    ("commitment from due date, overdue not yet published",
     [registered(materials_due=date(2026, 6, 1))], date(2026, 6, 1), None),
    ("overdue", [registered(materials_due=date(2026, 6, 1)), FilingMaterialsOverdue(
        filing_id="F1", person_id=PERSON, due_on=date(2026, 6, 1))], date(2026, 6, 10), None),
    ("overdue then supplied: the gap", [
        registered(materials_due=date(2026, 6, 1)),
        FilingMaterialsOverdue(filing_id="F1", person_id=PERSON, due_on=date(2026, 6, 1)),
        FilingMaterialsSupplied(filing_id="F1", person_id=PERSON,
                                materials=[Material.REFERRAL_CERTIFICATE],
                                supplied_on=date(2026, 6, 15))], date(2026, 6, 14), None),
    ("overdue then supplied: counts again", [
        registered(materials_due=date(2026, 6, 1)),
        FilingMaterialsOverdue(filing_id="F1", person_id=PERSON, due_on=date(2026, 6, 1)),
        FilingMaterialsSupplied(filing_id="F1", person_id=PERSON,
                                materials=[Material.REFERRAL_CERTIFICATE],
                                supplied_on=date(2026, 6, 15))], date(2026, 6, 15), "F1"),
    ("supplied in time", [
        registered(materials_due=date(2026, 6, 1)),
        FilingMaterialsSupplied(filing_id="F1", person_id=PERSON,
                                materials=[Material.REFERRAL_CERTIFICATE],
                                supplied_on=date(2026, 5, 2))], date(2026, 7, 1), "F1"),
    ("two filings in turn", [registered(), registered(
        "F2", valid_from=date(2026, 9, 1), valid_until=None, category="long_term_resident")],
     date(2026, 9, 1), "F2"),
    ("rejections change nothing", [registered(), FilingRejected(
        filing_id="F2", person_id=PERSON, reasons=[Reason(code="x", message="y")])],
     date(2026, 3, 1), "F1"),
    ("events of unknown filings are ignored", [registered(), FilingRevoked(
        filing_id="F9", person_id=PERSON, effective=date(2026, 3, 1))], date(2026, 3, 1), "F1"),
]


@pytest.mark.parametrize(("case", "events", "day", "expected"), IN_FORCE_CASES,
                         ids=[c[0] for c in IN_FORCE_CASES])
def test_in_force(case: str, events: list, day: date, expected: str | None) -> None:
    assert in_force_id(folded(*events), day) == expected


def test_in_force_answer_follows_the_destination() -> None:
    state = folded(registered(), FilingDestinationChanged(
        filing_id="F1", person_id=PERSON, destination="220200",
        destination_hospital="H220202001", effective=date(2026, 4, 1)))
    before, after = in_force(state, date(2026, 3, 31)), in_force(state, date(2026, 4, 1))
    assert (before.destination, before.destination_hospital) == ("220100", None)
    assert (after.destination, after.destination_hospital) == ("220200", "H220202001")
    assert (after.filing_id, after.category, after.valid_from, after.valid_until,
            after.emergency_visit, after.insured_agency) == (
        "F1", "referral", date(2026, 3, 1), date(2026, 8, 31), None, "220281")
    assert in_force(state, date(2026, 4, 1), insured_agency="140100") is None


def test_emergency_inpatient_stays_open() -> None:
    state = folded(registered(category="emergency", emergency_visit="inpatient",
                              valid_until=None))
    found = in_force(state, date(2027, 1, 1))
    assert (found.emergency_visit, found.valid_until) == ("inpatient", None)


def test_repeated_registration_is_ignored() -> None:
    first = folded(registered())
    assert fold(first, registered(valid_until=date(2026, 12, 31))) == first


def test_supply_without_supplied_on_is_dated_by_the_event_time() -> None:
    supplied = FilingMaterialsSupplied(filing_id="F1", person_id=PERSON,
                                       materials=[Material.REFERRAL_CERTIFICATE])
    state = folded(registered(materials_due=date(2026, 6, 1)))
    # 16:30 UTC on 14 June is 00:30 on 15 June in Shanghai
    state = fold(state, supplied, datetime(2026, 6, 14, 16, 30, tzinfo=UTC))
    assert state.filing("F1").materials_supplied_on == date(2026, 6, 15)
    with pytest.raises(ValueError, match="no supplied_on"):
        fold(folded(registered(materials_due=date(2026, 6, 1))), supplied)


@pytest.mark.parametrize(("moment", "expected"), [
    (datetime(2026, 3, 1, 15, 59, tzinfo=UTC), date(2026, 3, 1)),
    (datetime(2026, 3, 1, 16, 0, tzinfo=UTC), date(2026, 3, 2)),
    (datetime(2026, 3, 1, 23, 0, tzinfo=timezone(timedelta(hours=8))), date(2026, 3, 1)),
])
def test_business_date(moment: datetime, expected: date) -> None:
    assert business_date(moment) == expected


def test_business_date_needs_an_offset() -> None:
    with pytest.raises(ValueError, match="no offset"):
        business_date(datetime(2026, 3, 1, 12, 0))


# ---- benefit status -----------------------------------------------------------------------

def change(status: str, effective: date, agency: str = "220281") -> BenefitStatusChanged:
    return BenefitStatusChanged(person_id=PERSON, insured_agency=agency,
                                status=BenefitStatus(status), effective=effective)


BENEFIT_CASES = [
    ("nothing known", [], date(2026, 3, 1), None, "active"),
    ("before the suspension", [change("suspended", date(2026, 3, 1))], date(2026, 2, 28), None,
     "active"),
    ("from the suspension", [change("suspended", date(2026, 3, 1))], date(2026, 3, 1), None,
     "suspended"),
    ("resumed", [change("suspended", date(2026, 3, 1)), change("active", date(2026, 4, 1))],
     date(2026, 4, 1), None, "active"),
    ("arrival order does not matter for different dates",
     [change("active", date(2026, 4, 1)), change("suspended", date(2026, 3, 1))],
     date(2026, 4, 2), None, "active"),
    ("same date: the later arrival wins",
     [change("suspended", date(2026, 3, 1)), change("active", date(2026, 3, 1))],
     date(2026, 3, 1), None, "active"),
    ("terminated is final", [change("terminated", date(2026, 5, 1)),
                             change("active", date(2026, 6, 1))], date(2026, 7, 1), None,
     "terminated"),
    ("termination not yet effective", [change("terminated", date(2026, 5, 1))],
     date(2026, 4, 30), None, "active"),
    ("per agency", [change("terminated", date(2026, 5, 1)),
                    change("active", date(2026, 6, 1), agency="140100")],
     date(2026, 7, 1), "140100", "active"),
]


@pytest.mark.parametrize(("case", "events", "day", "agency", "expected"), BENEFIT_CASES,
                         ids=[c[0] for c in BENEFIT_CASES])
def test_benefit_status(case: str, events: list, day: date, agency: str | None,
                        expected: str) -> None:
    assert benefit_status(folded(*events), day, agency) is BenefitStatus(expected)


# ---- storage ------------------------------------------------------------------------------

def test_json_round_trip_and_format_check() -> None:
    state = folded(registered(materials_due=date(2026, 6, 1)),
                   change("suspended", date(2026, 4, 1)),
                   FilingDestinationChanged(filing_id="F1", person_id=PERSON,
                                            destination="320500", destination_hospital=None,
                                            effective=date(2026, 5, 1)))
    text = state.to_json()
    assert PersonFilings.from_json(text) == state
    assert PersonFilings.from_json(text).to_json() == text
    with pytest.raises(ValueError, match="rebuild it from filing.events"):
        PersonFilings.from_json(text.replace('"format":1', '"format":99'))
    # Stored rows keep the text the standard library wrote before orjson did it.
    assert text == json.dumps(json.loads(text), ensure_ascii=False, sort_keys=True,
                              separators=(",", ":"))


DAYS = st.integers(min_value=0, max_value=300).map(lambda n: date(2026, 1, 1) + timedelta(n))
IDS = st.sampled_from(["F1", "F2", "F3"])
EVENTS = st.one_of(
    st.builds(lambda i, start, length, category, due: registered(
        i, valid_from=start, valid_until=None if length is None else start + timedelta(length),
        category=category, materials_due=due,
        emergency_visit="inpatient" if category == "emergency" else None),
        IDS, DAYS, st.none() | st.integers(0, 200),
        st.sampled_from(["referral", "long_term_resident", "emergency"]), st.none() | DAYS),
    st.builds(lambda i, d: FilingRevoked(filing_id=i, person_id=PERSON, effective=d), IDS, DAYS),
    st.builds(lambda i, d: FilingExtended(filing_id=i, person_id=PERSON, valid_until=d),
              IDS, DAYS),
    st.builds(lambda i, d: FilingExpired(filing_id=i, person_id=PERSON, expired_on=d), IDS, DAYS),
    st.builds(lambda i, d: FilingMaterialsOverdue(filing_id=i, person_id=PERSON, due_on=d),
              IDS, DAYS),
    st.builds(lambda i, d: FilingMaterialsSupplied(
        filing_id=i, person_id=PERSON, materials=[Material.WORK_PROOF], supplied_on=d),
        IDS, DAYS),
    st.builds(lambda i, d, dest: FilingDestinationChanged(
        filing_id=i, person_id=PERSON, destination=dest, destination_hospital=None,
        effective=d), IDS, DAYS, st.sampled_from(["220100", "320500", "110000"])),
    st.builds(lambda s, d, a: change(s, d, a),
              st.sampled_from(["active", "suspended", "terminated"]), DAYS,
              st.sampled_from(["220281", "140100"])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=20), st.data())
def test_json_round_trip_at_any_point_changes_nothing(events: list, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(events)))
    straight = folded(*events)
    stored = PersonFilings.from_json(folded(*events[:cut]).to_json())
    for event in events[cut:]:
        stored = fold(stored, event)
    assert stored == straight
    assert stored.to_json() == straight.to_json()
    for day in (date(2026, 1, 1) + timedelta(n) for n in range(0, 520, 7)):
        assert in_force(stored, day) == in_force(straight, day)
        assert benefit_status(stored, day) == benefit_status(straight, day)


def test_an_unreviewed_filing_is_stored_as_before_the_emergency_review_existed() -> None:
    """The review (核定) adds a key to a stored filing only once there is one."""
    from services.filing.domain import state as domain_state
    from shared.events.filing import FilingEmergencyReviewed
    from tests.unit.test_filing_domain import registered, request

    state = registered(request(category="emergency", emergency_visit="inpatient",
                               channel="hospital", materials=["credential"]))
    assert "emergency_approved" not in state.to_json()
    reviewed = domain_state.fold(state, FilingEmergencyReviewed(
        filing_id="F1", person_id=state.person_id or "", approved=True,
        reviewed_on=date(2026, 3, 1)))
    assert '"emergency_approved":true' in reviewed.to_json()
    assert type(reviewed).from_json(reviewed.to_json()) == reviewed
    assert type(state).from_json(state.to_json()) == state
