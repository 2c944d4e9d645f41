"""Supervision (issue 16 item 3): a care-place agency stops direct settlement for a person
from a time on, and lifts it; the filing service accepts it only from that agency, the
settlement service refuses settlements at that agency's hospitals while it holds."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pytest

from services.filing.domain.state import empty, fold_all
from services.filing.domain.supervision import decide_supervision
from services.settlement.domain import reasons
from services.settlement.domain.accumulators import PersonState
from services.settlement.domain.decisions import decide_settlement
from services.settlement.facts import Facts
from shared.events.filing import FilingRejected
from shared.events.settlement import SettlementCompleted, SettlementRejected, SettlementSubmitted
from shared.events.supervision import SupervisionImposed, SupervisionLifted
from shared.filing_view import PersonFilings, fold, supervision
from shared.reference import load_reference
from tests.unit.test_settlement_decisions import STAY

REFERENCE = load_reference()
JILIN, CHANGCHUN = "220200", "220100"  # H220202001 is in Jilin; H220102001 in Changchun
IMPOSED_AT = "2026-10-05T14:30:00+08:00"


def imposed(at: str = IMPOSED_AT, agency: str = JILIN, **changes: Any) -> SupervisionImposed:
    return SupervisionImposed.model_validate_json(json.dumps({
        "person_id": "P-1", "care_agency": agency, "effective": at,
        "reason": "重复住院、挂床 (serious violation)", "case_id": "JD-2026-017", **changes}))


def lifted(at: str, agency: str = JILIN) -> SupervisionLifted:
    return SupervisionLifted.model_validate_json(json.dumps({
        "person_id": "P-1", "care_agency": agency, "effective": at}))


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ---- the filing service's decision ----------------------------------------------------------


def test_the_care_agency_imposes_and_lifts() -> None:
    state = empty("P-1")
    (event,) = decide_supervision(state, imposed(), f"agency/{JILIN}", REFERENCE)
    assert isinstance(event, SupervisionImposed) and event == imposed()
    state = fold_all(state, [event])
    (event,) = decide_supervision(state, lifted("2026-10-20T09:00:00+08:00"),
                                  f"agency/{JILIN}", REFERENCE)
    assert isinstance(event, SupervisionLifted)


@pytest.mark.parametrize(("state_events", "command", "sender", "code"), [
    ([], imposed(), f"agency/{CHANGCHUN}", "source_mismatch"),
    ([], imposed(), "hospital/H220202001", "source_mismatch"),
    ([], imposed(agency="650100"), "agency/650100", "unknown_care_agency"),
    ([imposed()], imposed("2026-10-06T08:00:00+08:00"), f"agency/{JILIN}",
     "already_under_supervision"),
    ([], lifted("2026-10-20T09:00:00+08:00"), f"agency/{JILIN}", "not_under_supervision"),
    # a lift dated before the stop began lifts nothing
    ([imposed()], lifted("2026-10-05T14:29:59+08:00"), f"agency/{JILIN}",
     "not_under_supervision"),
])
def test_refused(state_events: list[Any], command: Any, sender: str, code: str) -> None:
    state = fold_all(empty("P-1"), state_events)
    (event,) = decide_supervision(state, command, sender, REFERENCE)
    assert isinstance(event, FilingRejected)
    assert [r.code for r in event.reasons] == [code]
    assert event.command_type == command.TYPE


# ---- the view the settlement service folds ----------------------------------------------------


VIEW = fold(fold(PersonFilings(person_id="P-1"), imposed()),
            lifted("2026-10-20T09:00:00+08:00"))


@pytest.mark.parametrize(("at", "agency", "held"), [
    ("2026-10-05T14:29:59+08:00", JILIN, False),   # a second before the stop
    ("2026-10-05T14:30:00+08:00", JILIN, True),    # from its effective time on
    ("2026-10-05T06:30:00+00:00", JILIN, True),    # the same instant in UTC
    ("2026-10-19T23:59:59+08:00", JILIN, True),
    ("2026-10-20T09:00:00+08:00", JILIN, False),   # lifted
    ("2026-10-10T10:00:00+08:00", CHANGCHUN, False),  # another agency holds nothing
])
def test_supervision_at(at: str, agency: str, held: bool) -> None:
    assert (supervision(VIEW, moment(at), agency) is not None) is held


def test_the_view_keeps_supervision_through_its_row() -> None:
    assert PersonFilings.from_json(VIEW.to_json()) == VIEW
    assert "supervisions" not in PersonFilings(person_id="P-1").to_json()  # old rows unchanged


# ---- the settlement service's decision ------------------------------------------------------


def submission(hospital: str, settled_at: str) -> SettlementSubmitted:
    return SettlementSubmitted.model_validate_json(json.dumps({
        "settlement_id": "S-1", "hospital": hospital, "person_id": "P-1",
        "insured_agency": "220281", "insurance_type": "employee", "visit_type": "inpatient",
        "admitted_on": "2026-10-01", "discharged_on": str(date.fromisoformat(settled_at[:10])),
        "settled_at": settled_at, "emergency": False, "referral": False, "items": STAY}))


@pytest.mark.parametrize(("hospital", "settled_at", "refused"), [
    ("H220202001", "2026-10-05T14:29:00+08:00", False),  # before the stop
    ("H220202001", "2026-10-09T10:00:00+08:00", True),   # at a Jilin hospital, during it
    ("H220102001", "2026-10-09T10:00:00+08:00", False),  # Changchun did not stop it
    ("H220202001", "2026-10-21T10:00:00+08:00", False),  # after the lift
])
def test_settlements_during_the_stop_are_refused(hospital: str, settled_at: str,
                                                 refused: bool) -> None:
    sub = submission(hospital, settled_at)
    facts = Facts(REFERENCE, enrolment_check=False)
    outcome = decide_settlement(PersonState.empty("P-1"), sub, facts.context(sub, VIEW))
    if not refused:
        assert isinstance(outcome, SettlementCompleted), outcome
        return
    assert isinstance(outcome, SettlementRejected)
    (reason,) = outcome.reasons
    assert reason.code == reasons.PERSON_UNDER_SUPERVISION
    assert "220200" in reason.message and "JD-2026-017" in reason.message
    assert "2026-10-05T14:30:00+08:00" in reason.message
