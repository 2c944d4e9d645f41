"""The filing service's decisions: a command and the person's state in, events out.

Pure: the request date (`today`, the command's time in Asia/Shanghai) and the reference
data are passed in; nothing here reads a clock, a file or a database. Every refusal is a
``filing.rejected`` carrying every reason found, each with a code from `reasons`.
"""

from __future__ import annotations

from datetime import date, timedelta

from services.filing.domain import reasons as r
from services.filing.domain.enrolment import (
    EnrolmentCommand,
    decide_enrolment,
    enrolment_problems,
)
from services.filing.domain.state import (
    PersonFilingState,
    expiry_due,
    fold_all,
    overdue_due,
)
from shared import regions
from shared.events.base import Payload, Reason
from shared.events.enrolment import BalanceReported, InsuranceChanged, PersonEnrolled, PersonLeft
from shared.events.filing import (
    BenefitStatus,
    BenefitStatusChanged,
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
    Material,
    ReviewEmergency,
    RevokeFiling,
    SupplyMaterials,
)
from shared.filing_view import Filing
from shared.reference import (
    LONG_TERM_CATEGORIES,
    Agency,
    FilingPolicy,
    ReferenceData,
    filing_kind,
)

Command = (FilingRequested | RevokeFiling | ExtendFiling | SupplyMaterials | ChangeDestination
           | ChangeBenefitStatus | ReviewEmergency | EnrolmentCommand)
_LONG_TERM_PROOFS = frozenset({Material.RELOCATION_PROOF, Material.RESIDENCE_PROOF,
                               Material.WORK_PROOF})


def decide(state: PersonFilingState, command: Command, today: date,
           reference: ReferenceData) -> list[Payload]:
    """The events that answer `command` on business date `today`. Deadlines that fell due
    before the command are published first (see `expire`), so that, say, materials supplied
    after their due date still leave the gap in which the filing did not count."""
    housekeeping = expire(state, today)
    state = fold_all(state, housekeeping)
    match command:
        case FilingRequested():
            answer = _request(state, command, today, reference)
        case RevokeFiling():
            answer = _revoke(state, command, today)
        case ExtendFiling():
            answer = _extend(state, command, today, reference)
        case SupplyMaterials():
            answer = _supply(state, command, today)
        case ChangeDestination():
            answer = _change_destination(state, command, today, reference)
        case ChangeBenefitStatus():
            answer = _change_benefit_status(state, command, reference)
        case ReviewEmergency():
            answer = _review_emergency(state, command, today)
        case PersonEnrolled() | InsuranceChanged() | PersonLeft() | BalanceReported():
            answer = decide_enrolment(state, command, reference)
        case _:
            raise TypeError(f"not a filing command: {type(command).__name__}")
    return housekeeping + answer


def expire(state: PersonFilingState, today: date) -> list[Payload]:
    """filing.expired and filing.materials_overdue for every deadline reached by the start of
    `today`, oldest first. Dates come from the filings, not from `today`, so a late run
    publishes the same events as a punctual one."""
    due: list[tuple[date, int, Payload]] = []
    person = state.person_id or ""
    for index, filing in enumerate(state.filings):
        expired_on = expiry_due(filing)
        if expired_on is not None and expired_on <= today:
            due.append((expired_on, index, FilingExpired(
                filing_id=filing.filing_id, person_id=person, expired_on=expired_on)))
        due_on = overdue_due(filing)
        if due_on is not None and due_on <= today:
            due.append((due_on, index, FilingMaterialsOverdue(
                filing_id=filing.filing_id, person_id=person, due_on=due_on)))
    return [event for _, _, event in sorted(due, key=lambda item: item[:2])]


# ---- rules ------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """The same day-of-month `months` later, or the 1st of the month after when that day
    does not exist (31 Aug + 6 months -> 1 Mar), so that a period is never cut short."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    try:
        return date(year, month, day.day)
    except ValueError:
        return date(year + month // 12, month % 12 + 1, 1)


def latest_valid_until(category: FilingCategory, emergency_visit: str | None,
                       valid_from: date, policy: FilingPolicy) -> date | None:
    """The last day a filing may run by policy; None where it runs until revoked (long term,
    childbirth) or until discharge (emergency inpatient)."""
    if category is FilingCategory.REFERRAL:
        return add_months(valid_from, policy.referral_months) - timedelta(days=1)
    if category is FilingCategory.TEMPORARY_OTHER:
        return add_months(valid_from, policy.temporary_other_months) - timedelta(days=1)
    if category is FilingCategory.EMERGENCY and emergency_visit == "outpatient":
        return valid_from + timedelta(days=policy.emergency_outpatient_days - 1)
    return None


def missing_materials(category: FilingCategory, materials: set[Material]
                      ) -> list[tuple[r.ReasonCode, str]]:
    """The category's proofs not among `materials` (the credential is checked apart: a
    commitment never replaces it)."""
    if category in LONG_TERM_CATEGORIES and not materials & _LONG_TERM_PROOFS:
        return [(r.LONG_TERM_PROOF_MISSING, "one of relocation_proof, residence_proof, "
                                           "work_proof")]
    if category is FilingCategory.CHILDBIRTH and Material.MATERNAL_HANDBOOK not in materials:
        return [(r.MATERNAL_HANDBOOK_MISSING, "maternal_handbook")]
    if category is FilingCategory.REFERRAL and Material.REFERRAL_CERTIFICATE not in materials:
        return [(r.REFERRAL_CERTIFICATE_MISSING, "referral_certificate")]
    return []


def _overlapping(state: PersonFilingState, start: date, until: date | None,
                 kind: str, policy: FilingPolicy, ignore: str | None = None) -> list[Reason]:
    """Filings of the person in force on some day of [start, until] (until None: open) whose
    kind may not be in force together with `kind` under the insuring agency's policy
    (`FilingPolicy.coexisting`: a long-term filing and a referral or emergency one may, and
    settlement takes the best tier among them, 择优)."""
    found = []
    for other in state.filings:
        ends = other.ends()
        if other.filing_id == ignore or (ends is not None and ends <= other.valid_from):
            continue
        if policy.may_coexist(kind, filing_kind(other.category, other.emergency_visit)):
            continue
        if (until is None or other.valid_from <= until) and (ends is None or start < ends):
            last = "open end" if ends is None else (ends - timedelta(days=1)).isoformat()
            found.append(r.OVERLAPPING_FILING(other=other.filing_id,
                                              other_from=other.valid_from, other_until=last))
    return found


def _emergency_late(command: FilingRequested, today: date, policy: FilingPolicy,
                    reference: ReferenceData) -> list[Reason]:
    """A hospital's emergency filing more than the policy's working days after its first day
    (医疗机构内设医保管理部门应在2个工作日内 … 上传, seed 003), on the working-day calendar."""
    days, calendar = policy.emergency_filing_working_days, reference.working_days
    if (command.category is not FilingCategory.EMERGENCY or command.channel.value != "hospital"
            or days is None or calendar is None):
        return []
    latest = calendar.after(command.valid_from, days)
    if today <= latest:
        return []
    return [r.EMERGENCY_FILING_LATE(agency=command.insured_agency, days=days,
                                    valid_from=command.valid_from, latest=latest)]


def _terminated(state: PersonFilingState, agency: str, until: date | None) -> list[Reason]:
    """A termination of the person's benefits with `agency` on or before the filing's end."""
    for change in state.benefit_changes:
        if (change.insured_agency == agency and change.status is BenefitStatus.TERMINATED
                and (until is None or change.effective <= until)):
            return [r.BENEFIT_TERMINATED(agency=agency, effective=change.effective)]
    return []


def _destination(reference: ReferenceData, agency: Agency | None, policy: FilingPolicy | None,
                 category: FilingCategory, destination: str, hospital_code: str | None
                 ) -> list[Reason]:
    """Where a filing points: a known region, a hospital inside it, outside the own pool."""
    found = []
    region = reference.region(destination)
    if region is None:
        found.append(r.UNKNOWN_DESTINATION(destination=destination))
    hospital = None if hospital_code is None else reference.hospital(hospital_code)
    if hospital_code is not None and hospital is None:
        found.append(r.UNKNOWN_HOSPITAL(hospital=hospital_code))
    elif hospital is not None and not regions.contains(destination, hospital.county):
        found.append(r.HOSPITAL_OUTSIDE_DESTINATION(hospital=hospital.code, county=hospital.county,
                                                    destination=destination))
    if agency is not None and region is not None and (
            reference.lies_within_pool(destination, agency.code)
            or (hospital is not None and agency.covers(hospital.county))):
        found.append(r.DESTINATION_IN_OWN_POOL(destination=hospital_code or destination,
                                               agency=agency.code))
    if (policy is not None and policy.referral_requires_hospital and hospital_code is None
            and category is FilingCategory.REFERRAL and agency is not None):
        found.append(r.DESTINATION_HOSPITAL_REQUIRED(agency=agency.code))
    return found


# ---- one function per command -------------------------------------------------------------


def _request(state: PersonFilingState, command: FilingRequested, today: date,
             reference: ReferenceData) -> list[Payload]:
    found: list[Reason] = []
    if state.person_id is not None and command.person_id != state.person_id:
        found.append(r.PERSON_MISMATCH(given=command.person_id, expected=state.person_id))
    if state.filing(command.filing_id) is not None:
        found.append(r.DUPLICATE_FILING_ID(filing_id=command.filing_id))
    agency = reference.agency(command.insured_agency)
    policy = reference.filing_policy(command.insured_agency)
    if agency is None:
        found.append(r.UNKNOWN_INSURED_AGENCY(agency=command.insured_agency))
    else:  # a filing names a person the agency has enrolled, as of the filing's first day
        found += enrolment_problems(state, command.person_id, command.insured_agency,
                                    command.insurance_type.value, command.valid_from)
    category = command.category
    if agency is not None and policy is not None and category not in policy.accepted_categories:
        found.append(r.CATEGORY_NOT_ACCEPTED(agency=agency.code, category=category.value))
    found += _destination(reference, agency, policy, category, command.destination,
                          command.destination_hospital)

    materials = set(command.materials)
    if Material.CREDENTIAL not in materials:
        found.append(r.CREDENTIAL_MISSING())
    missing = missing_materials(category, materials)
    may_promise = policy is not None and category in policy.commitment_categories
    if missing and command.commitment and policy is not None and not may_promise:
        found.append(r.COMMITMENT_NOT_ALLOWED(agency=command.insured_agency,
                                              category=category.value))
    if missing and not (command.commitment and may_promise):
        found += [code(category=category.value) for code, _ in missing]

    if category is FilingCategory.EMERGENCY and command.emergency_visit is None:
        found.append(r.EMERGENCY_VISIT_REQUIRED())
    if category is not FilingCategory.EMERGENCY and command.emergency_visit is not None:
        found.append(r.EMERGENCY_VISIT_NOT_ALLOWED(category=category.value))

    valid_from, valid_until = command.valid_from, command.valid_until
    if valid_until is not None and valid_until < valid_from:
        found.append(r.DATES_OUT_OF_ORDER(valid_from=valid_from, valid_until=valid_until))
    elif policy is not None:
        latest = latest_valid_until(category, command.emergency_visit, valid_from, policy)
        if latest is not None and valid_until is not None and valid_until > latest:
            kind = category.value if category is not FilingCategory.EMERGENCY \
                else "emergency outpatient"
            found.append(r.VALIDITY_TOO_LONG(kind=kind, agency=command.insured_agency,
                                             latest=latest, valid_until=valid_until))
        valid_until = valid_until or latest
        days = policy.retroactive_days_max
        if days is not None and valid_from < today - timedelta(days=days):
            found.append(r.VALID_FROM_TOO_EARLY(agency=command.insured_agency, days=days,
                                                earliest=today - timedelta(days=days),
                                                valid_from=valid_from))
        found += _emergency_late(command, today, policy, reference)
        found += _overlapping(state, valid_from, valid_until,
                              filing_kind(category, command.emergency_visit), policy,
                              ignore=command.filing_id)
        found += _terminated(state, command.insured_agency, valid_until)

    if found or policy is None:
        return [_rejected(command, state, found)]
    materials_due = today + timedelta(days=policy.commitment_due_days) if missing else None
    return [FilingRegistered(**{**command.model_dump(), "valid_until": valid_until,
                                "requested_on": today, "materials_due": materials_due})]


def _revoke(state: PersonFilingState, command: RevokeFiling, today: date) -> list[Payload]:
    filing, found = _find(state, command)
    if filing is not None:
        ends = filing.ends()
        if filing.revoked_from is not None:
            found.append(r.FILING_REVOKED(filing_id=filing.filing_id,
                                          revoked_from=filing.revoked_from))
        elif command.effective < today:
            found.append(r.EFFECTIVE_IN_PAST(effective=command.effective, today=today))
        elif ends is not None and command.effective >= ends:
            found.append(r.FILING_ENDED(filing_id=filing.filing_id, ends=ends))
    if found or filing is None:
        return [_rejected(command, state, found)]
    return [FilingRevoked(filing_id=filing.filing_id, person_id=_person(state, command),
                          effective=command.effective)]


def _extend(state: PersonFilingState, command: ExtendFiling, today: date,
            reference: ReferenceData) -> list[Payload]:
    filing, found = _find(state, command)
    if filing is not None:
        policy = reference.filing_policy(filing.insured_agency)
        current = filing.valid_until
        if filing.revoked_from is not None:
            found.append(r.FILING_REVOKED(filing_id=filing.filing_id,
                                          revoked_from=filing.revoked_from))
        elif (filing.category is not FilingCategory.REFERRAL or policy is None
              or not policy.extension or current is None):
            found.append(r.EXTENSION_NOT_ALLOWED(filing_id=filing.filing_id,
                                                 category=filing.category.value,
                                                 agency=filing.insured_agency))
        elif today > current:
            found.append(r.FILING_ENDED(filing_id=filing.filing_id,
                                        ends=current + timedelta(days=1)))
        elif command.valid_until <= current:
            found.append(r.EXTENSION_NOT_LATER(valid_until=command.valid_until,
                                               filing_id=filing.filing_id, current=current))
        else:
            start = current + timedelta(days=1)
            latest = add_months(start, policy.referral_months) - timedelta(days=1)
            if command.valid_until > latest:
                found.append(r.VALIDITY_TOO_LONG(kind="referral extension",
                                                 agency=filing.insured_agency, latest=latest,
                                                 valid_until=command.valid_until))
            found += _overlapping(state, start, command.valid_until,
                                  filing_kind(filing.category, filing.emergency_visit), policy,
                                  ignore=filing.filing_id)
    if found or filing is None:
        return [_rejected(command, state, found)]
    return [FilingExtended(filing_id=filing.filing_id, person_id=_person(state, command),
                           valid_until=command.valid_until)]


def _supply(state: PersonFilingState, command: SupplyMaterials, today: date) -> list[Payload]:
    filing, found = _find(state, command)
    if filing is not None:
        if filing.materials_due is None or filing.materials_supplied_on is not None:
            found.append(r.MATERIALS_NOT_OWED(filing_id=filing.filing_id))
        elif filing.revoked_from is not None and filing.revoked_from <= today:
            found.append(r.FILING_REVOKED(filing_id=filing.filing_id,
                                          revoked_from=filing.revoked_from))
        else:
            held = {Material(m) for m in filing.materials} | set(command.materials)
            missing = missing_materials(filing.category, held)
            if missing:
                found.append(r.MATERIALS_INCOMPLETE(filing_id=filing.filing_id,
                                                    missing=", ".join(m for _, m in missing)))
    if found or filing is None:
        return [_rejected(command, state, found)]
    return [FilingMaterialsSupplied(filing_id=filing.filing_id, person_id=_person(state, command),
                                    materials=list(command.materials), supplied_on=today)]


def _change_destination(state: PersonFilingState, command: ChangeDestination, today: date,
                        reference: ReferenceData) -> list[Payload]:
    filing, found = _find(state, command)
    if filing is not None:
        ends = filing.ends()
        if ends is not None and command.effective >= ends:
            found.append(r.FILING_REVOKED(filing_id=filing.filing_id, revoked_from=ends)
                         if ends == filing.revoked_from
                         else r.FILING_ENDED(filing_id=filing.filing_id, ends=ends))
        if command.effective < today:
            found.append(r.EFFECTIVE_IN_PAST(effective=command.effective, today=today))
        if command.effective < filing.valid_from:
            found.append(r.EFFECTIVE_BEFORE_VALID_FROM(effective=command.effective,
                                                       filing_id=filing.filing_id,
                                                       valid_from=filing.valid_from))
        found += _destination(reference, reference.agency(filing.insured_agency),
                              reference.filing_policy(filing.insured_agency), filing.category,
                              command.destination, command.destination_hospital)
        current = filing.destination_on(command.effective)
        if (current.destination, current.destination_hospital) == (
                command.destination, command.destination_hospital):
            found.append(r.DESTINATION_UNCHANGED(filing_id=filing.filing_id,
                                                 destination=command.destination,
                                                 effective=command.effective))
    if found or filing is None:
        return [_rejected(command, state, found)]
    return [FilingDestinationChanged(
        filing_id=filing.filing_id, person_id=_person(state, command),
        destination=command.destination, destination_hospital=command.destination_hospital,
        effective=command.effective)]


def _change_benefit_status(state: PersonFilingState, command: ChangeBenefitStatus,
                           reference: ReferenceData) -> list[Payload]:
    found: list[Reason] = []
    if state.person_id is not None and command.person_id != state.person_id:
        found.append(r.PERSON_MISMATCH(given=command.person_id, expected=state.person_id))
    if reference.agency(command.insured_agency) is None:
        found.append(r.UNKNOWN_INSURED_AGENCY(agency=command.insured_agency))
    found += _terminated(state, command.insured_agency, None)
    if found:
        return [_rejected(command, state, found)]
    return [BenefitStatusChanged(**command.model_dump())]


# ---- helpers ------------------------------------------------------------------------------


def _review_emergency(state: PersonFilingState, command: ReviewEmergency, today: date
                      ) -> list[Payload]:
    """The insuring agency's review (核定) of an emergency filing, once (seed 003)."""
    filing, found = _find(state, command)
    if filing is not None:
        if filing.category is not FilingCategory.EMERGENCY:
            found.append(r.NOT_AN_EMERGENCY_FILING(filing_id=filing.filing_id,
                                                   category=filing.category.value))
        elif filing.emergency_approved is not None:
            found.append(r.EMERGENCY_ALREADY_REVIEWED(
                filing_id=filing.filing_id,
                approved="yes" if filing.emergency_approved else "no"))
    if found or filing is None:
        return [_rejected(command, state, found)]
    return [FilingEmergencyReviewed(filing_id=filing.filing_id,
                                    person_id=_person(state, command),
                                    approved=command.approved, reviewed_on=today)]


def _find(state: PersonFilingState, command: RevokeFiling | ExtendFiling | SupplyMaterials
          | ChangeDestination | ReviewEmergency) -> tuple[Filing | None, list[Reason]]:
    """The filing a command is about, or the reasons it cannot be found for this person."""
    if (command.person_id is not None and state.person_id is not None
            and command.person_id != state.person_id):
        return None, [r.PERSON_MISMATCH(given=command.person_id, expected=state.person_id)]
    filing = state.filing(command.filing_id)
    if filing is None:
        return None, [r.UNKNOWN_FILING(filing_id=command.filing_id)]
    return filing, []


def _person(state: PersonFilingState, command: Command) -> str:
    person = state.person_id or command.person_id
    if person is None:
        raise ValueError("a filing event needs the person id: load the state by person id")
    return person


def _rejected(command: Command, state: PersonFilingState, found: list[Reason]) -> FilingRejected:
    return FilingRejected(filing_id=getattr(command, "filing_id", None),
                          person_id=state.person_id or command.person_id,
                          reasons=found, command_type=command.TYPE)
