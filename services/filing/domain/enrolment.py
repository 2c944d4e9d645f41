"""The enrolment registry's decisions: an agency's enrolment command and the person's state
in, the accepted event (unchanged) or a ``filing.rejected`` out. Pure, like `decisions`.

Rules: a person is enrolled once (again only after leaving); changes and leavings apply to
an enrolled person and come in effective-date order; a balance is reported for an employee
of the reporting agency. `enrolment_problems` is the check a filing must pass.
"""

from __future__ import annotations

from datetime import date

from services.filing.domain import reasons as r
from services.filing.domain.state import PersonFilingState
from shared.business_time import business_date
from shared.enrolment import enrolled_on
from shared.events.base import Payload, Reason
from shared.events.enrolment import BalanceReported, InsuranceChanged, PersonEnrolled, PersonLeft
from shared.events.filing import FilingRejected
from shared.reference import ReferenceData

EnrolmentCommand = PersonEnrolled | InsuranceChanged | PersonLeft | BalanceReported


def decide_enrolment(state: PersonFilingState, command: EnrolmentCommand,
                     reference: ReferenceData) -> list[Payload]:
    found: list[Reason] = []
    if reference.agency(command.insured_agency) is None:
        found.append(r.UNKNOWN_INSURED_AGENCY(agency=command.insured_agency))
    match command:
        case PersonEnrolled():
            found += _enrol(state, command)
        case InsuranceChanged():
            found += _change(state, command)
        case PersonLeft():
            found += _leave(state, command)
        case BalanceReported():
            found += _balance(state, command)
    if found:
        return [FilingRejected(person_id=command.person_id, reasons=found,
                               command_type=command.TYPE)]
    return [command]


def enrolment_problems(state: PersonFilingState, person: str, insured_agency: str,
                       insurance_type: str, on: date) -> list[Reason]:
    """Whether the registry has `person` insured by `insured_agency` under `insurance_type`
    on `on`; each disagreement named with both values."""
    enrolled = enrolled_on(state.enrolment, on)
    if enrolled is None:
        return [r.PERSON_NOT_ENROLLED(person=person, on=on)]
    found = []
    if enrolled.insured_agency != insured_agency:
        found.append(r.ENROLMENT_MISMATCH(field="insured_agency", given=insured_agency,
                                          registered=enrolled.insured_agency, person=person,
                                          on=on))
    if enrolled.insurance_type != insurance_type:
        found.append(r.ENROLMENT_MISMATCH(field="insurance_type", given=insurance_type,
                                          registered=enrolled.insurance_type, person=person,
                                          on=on))
    return found


def _in_order(state: PersonFilingState, effective: date) -> list[Reason]:
    latest = state.enrolment.latest()
    if latest is not None and effective < latest.effective:
        return [r.EFFECTIVE_BEFORE_LATEST(effective=effective, latest=latest.effective)]
    return []


def _enrol(state: PersonFilingState, command: PersonEnrolled) -> list[Reason]:
    latest = state.enrolment.latest()
    if latest is not None and latest.left is None:
        return [r.ALREADY_ENROLLED(person=command.person_id, agency=latest.insured_agency,
                                   insurance_type=latest.insurance_type,
                                   since=latest.effective)]
    return _in_order(state, command.effective)


def _change(state: PersonFilingState, command: InsuranceChanged) -> list[Reason]:
    enrolled = enrolled_on(state.enrolment, command.effective)
    if enrolled is None:
        return [r.PERSON_NOT_ENROLLED(person=command.person_id, on=command.effective)]
    if (enrolled.insured_agency, enrolled.insurance_type) == (
            command.insured_agency, command.insurance_type.value):
        return [r.ENROLMENT_UNCHANGED(person=command.person_id, agency=command.insured_agency,
                                      insurance_type=command.insurance_type.value,
                                      effective=command.effective)]
    return _in_order(state, command.effective)


def _leave(state: PersonFilingState, command: PersonLeft) -> list[Reason]:
    enrolled = enrolled_on(state.enrolment, command.effective)
    if enrolled is None:
        return [r.PERSON_NOT_ENROLLED(person=command.person_id, on=command.effective)]
    if enrolled.insured_agency != command.insured_agency:
        return [r.ENROLMENT_MISMATCH(field="insured_agency", given=command.insured_agency,
                                     registered=enrolled.insured_agency,
                                     person=command.person_id, on=command.effective)]
    return _in_order(state, command.effective)


def _balance(state: PersonFilingState, command: BalanceReported) -> list[Reason]:
    on = business_date(command.as_of)
    enrolled = enrolled_on(state.enrolment, on)
    if enrolled is None:
        return [r.PERSON_NOT_ENROLLED(person=command.person_id, on=on)]
    if enrolled.insured_agency != command.insured_agency:
        return [r.ENROLMENT_MISMATCH(field="insured_agency", given=command.insured_agency,
                                     registered=enrolled.insured_agency,
                                     person=command.person_id, on=on)]
    if enrolled.insurance_type != "employee":
        return [r.ACCOUNT_NOT_EMPLOYEE(person=command.person_id,
                                       insurance_type=enrolled.insurance_type, on=on)]
    return []
