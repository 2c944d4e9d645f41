"""Decisions of the settlement service: a submission becomes completed or rejected, a refund
becomes refunded, rejected or held. Pure: the handler looks the facts up and passes them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from services.settlement.domain import reasons
from services.settlement.domain.accumulators import (
    Held,
    PersonState,
    admission_scope,
    year_scope,
)
from services.settlement.domain.compute import applied_ratio, compute
from services.settlement.domain.policy import (
    BenefitRule,
    Catalogue,
    DeductibleMode,
    SettlementPolicy,
)
from services.settlement.domain.tiers import FilingOption, TierChoice, choose_tier, classify_trip
from shared import regions
from shared.business_time import business_date
from shared.enrolment import BalanceReport, EnrolmentSpan
from shared.events.base import Reason
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
from shared.filing_view import SupervisionChange
from shared.money import ZERO

__all__ = [
    "FilingFacts", "HospitalFacts", "Held", "SettlementContext", "decide_refund",
    "decide_settlement",
]


@dataclass(frozen=True)
class HospitalFacts:
    """The hospital as the reference data knows it (hospitals.csv)."""

    code: str
    county: str  # GB/T 2260 county-level code where it stands
    level: int  # 1, 2 or 3
    county_area: bool  # a county-area (县域) facility


@dataclass(frozen=True)
class FilingFacts:
    """A filing of the person in force at settled_at (filing.registered, as amended since)."""

    filing_id: str
    category: FilingCategory
    destination: str  # province, city or county code
    insurance_type: InsuranceType
    insured_agency: str
    destination_hospital: str | None = None
    emergency_visit: str | None = None  # "outpatient" | "inpatient", emergency filings only


@dataclass(frozen=True)
class SettlementContext:
    """Everything a settlement decision needs besides the person's state and the submission.

    None means "not found": the decision rejects with the matching reason code.
    """

    hospital: HospitalFacts | None
    care_agency: str | None  # the agency (== pool) of the hospital's region
    policy: SettlementPolicy | None  # the insured_agency's policy
    catalogue: Catalogue | None  # the care-place catalogue of the hospital's region
    filings: tuple[FilingFacts, ...] = ()  # every filing in force at settled_at
    benefit_status: BenefitStatus = BenefitStatus.ACTIVE  # at settled_at
    #: The enrolment registry's span on the date of settled_at (a leaving included); None:
    #: never enrolled by then, and the settlement is refused.
    enrolment: EnrolmentSpan | None = None
    #: The insuring agency's latest personal-account balance report as of settled_at.
    balance: BalanceReport | None = None
    #: False only to measure what the registry check costs (the bench's "registry off" run):
    #: then neither enrolment nor balance is looked at, as before the registry existed.
    enrolment_checked: bool = True
    #: The care-place agency's stop of direct settlement for the person at settled_at.
    supervision: SupervisionChange | None = None
    #: Care without a filing is settled at the tier the table gives unfiled care, whatever
    #: the policy's direct-settlement rule (a manual reimbursement: reimbursement.py).
    unfiled_allowed: bool = False


def decide_settlement(
    state: PersonState, submitted: SettlementSubmitted, context: SettlementContext
) -> SettlementCompleted | SettlementRejected:
    """Settle a submission at the insuring agency's policy and the care-place catalogue."""
    if submitted.person_id != state.person_id:
        raise ValueError(f"state of {state.person_id} given for {submitted.person_id}")
    checked = _enrolment(submitted, context.enrolment) if context.enrolment_checked else []
    problems = [*_identity(state, submitted), *checked,
                *_dates(submitted), *_facts(submitted, context),
                *_benefit(context.benefit_status), *_supervised(context.supervision),
                *_resettles(state, submitted)]
    if problems:
        return _rejected(submitted, problems)
    hospital, policy, catalogue = context.hospital, context.policy, context.catalogue
    care_agency = context.care_agency
    assert hospital and policy and catalogue and care_agency  # checked by _facts
    rule = policy.rule(submitted.insurance_type, submitted.visit_type, hospital.level)
    assert rule is not None  # checked by _facts

    trip = classify_trip(submitted.insured_agency, care_agency, hospital.county,
                         hospital.county_area)
    covering = [f for f in context.filings if _covers(f, hospital, submitted.visit_type)]
    problems = list(_filing_mismatches(submitted, covering))
    choice = choose_tier(policy.tier_table, trip,
                         [FilingOption(f.filing_id, f.category) for f in covering],
                         unfiled_allowed=(context.unfiled_allowed or
                                          policy.no_filing.allows(trip, submitted.visit_type)),
                         emergency=submitted.emergency, referral=submitted.referral)
    if choice is None:
        problems.append(_no_filing_reason(submitted, context, trip.value))
    if problems:
        return _rejected(submitted, problems)
    assert choice is not None
    return _completed(state, submitted, care_agency, policy, rule, catalogue, choice,
                      context.balance)


def decide_refund(
    state: PersonState, refund: RefundRequested
) -> SettlementRefunded | RefundRejected | Held:
    """Refund in full any earlier settlement of the person (隔笔退费), once."""
    if refund.person_id != state.person_id:
        raise ValueError(f"state of {state.person_id} given for {refund.person_id}")
    record = state.find(refund.hospital, refund.settlement_id)
    where = f"settlement {refund.settlement_id} of hospital {refund.hospital}"
    if record is None:
        if (refund.hospital, refund.settlement_id) in state.rejected:
            return _refund_rejected(refund, reasons.SETTLEMENT_REJECTED,
                                    f"{where} was rejected: there is nothing to refund")
        others = state.with_id(refund.settlement_id)
        if others:
            return _refund_rejected(
                refund, reasons.REFUND_OTHER_HOSPITAL,
                f"settlement {refund.settlement_id} of {refund.person_id} was made by hospital "
                f"{others[0].hospital}, not {refund.hospital}: only that hospital can refund it")
        return Held(refund, reasons.SETTLEMENT_NOT_YET_KNOWN,
                    f"{where} is not decided yet; the refund waits for it")
    if record.refunded:
        return _refund_rejected(refund, reasons.ALREADY_REFUNDED,
                                f"{where} was already refunded by {record.refund_id}")
    if refund.refunded_at < record.settled_at:
        return _refund_rejected(
            refund, reasons.REFUND_BEFORE_SETTLEMENT,
            f"refunded_at {refund.refunded_at.isoformat()} is before the settlement's "
            f"settled_at {record.settled_at.isoformat()}: correct refunded_at")
    return SettlementRefunded(
        refund_id=refund.refund_id, settlement_id=record.settlement_id,
        hospital=record.hospital, person_id=refund.person_id,
        insured_agency=record.insured_agency, care_agency=record.care_agency,
        refunded_at=refund.refunded_at, settled_at=record.settled_at, total=record.total,
        deductible=record.deductible, fund_pay=record.fund_pay,
        account_pay=record.account_pay, cash_pay=record.cash_pay,
        cleared_amount=record.cleared_amount)


# ---- the completed settlement -------------------------------------------------------------


def _completed(
    state: PersonState, submitted: SettlementSubmitted, care_agency: str,
    policy: SettlementPolicy, rule: BenefitRule, catalogue: Catalogue, choice: TierChoice,
    balance: BalanceReport | None = None,
) -> SettlementCompleted:
    visit = policy.visits[submitted.visit_type]
    year = business_date(submitted.settled_at).year
    insurance = submitted.insurance_type.value
    if visit.deductible_mode is DeductibleMode.PER_ADMISSION:
        assert submitted.admitted_on is not None  # checked by _dates
        deductible_scope = admission_scope(submitted.hospital, submitted.admitted_on)
    else:
        deductible_scope = year_scope(year, insurance, visit.deductible_pool)
    cap_scope = year_scope(year, insurance, visit.cap_pool)
    personal = policy.personal_reason_reduction if submitted.not_direct_personal_reason else ZERO
    request = submitted.personal_account_request
    held = None
    if balance is not None and request and submitted.insurance_type is InsuranceType.EMPLOYEE:
        held = account_holds(state, balance, submitted.settled_at)
        request = min(request, held)
    result = compute(
        submitted.items, catalogue.b_share,
        ratio=applied_ratio(rule.ratio, choice.reduction, personal),
        deductible_unused=rule.deductible - state.deductible_used.get(deductible_scope, ZERO),
        cap_unused=rule.annual_cap - state.cap_used.get(cap_scope, ZERO),
        insurance_type=submitted.insurance_type,
        personal_account_request=request)
    account = {} if held is None else dict(
        account_balance=held, account_capped=request != submitted.personal_account_request)
    # The computed total replaces the hospital's stated one (equal to it when given).
    # `__dict__` holds exactly the fields (`dict(model)` builds the same pairs, slower).
    return SettlementCompleted(**(submitted.__dict__ | dict(
        care_agency=care_agency, tier=choice.tier, ratio=result.ratio,
        total=result.total, self_pay_first=result.self_pay_first, uncovered=result.uncovered,
        eligible=result.eligible, deductible=result.deductible, fund_pay=result.fund_pay,
        account_pay=result.account_pay, cash_pay=result.cash_pay,
        cleared_amount=result.cleared_amount, filing_id=choice.filing_id,
        trip=choice.trip.value, deductible_scope=deductible_scope, cap_scope=cap_scope,
        **account)))


def account_holds(state: PersonState, balance: BalanceReport, settled_at: datetime) -> Decimal:
    """What the personal account holds at `settled_at`: the balance reported as of an
    earlier time, less what this person's settlements since then (and not refunded) took."""
    taken = sum((s.account_pay for s in state.settlements
                 if not s.refunded and balance.as_of < s.settled_at <= settled_at), ZERO)
    return max(ZERO, balance.balance - taken)


# ---- checks: each yields (code, message) pairs --------------------------------------------

Problem = tuple[str, str]


def _identity(state: PersonState, submitted: SettlementSubmitted) -> list[Problem]:
    earlier = state.find(submitted.hospital, submitted.settlement_id)
    if earlier is None:
        return []
    return [(reasons.DUPLICATE_SETTLEMENT_ID,
             f"settlement_id {submitted.settlement_id} of hospital {submitted.hospital} was "
             f"already settled at {earlier.settled_at.isoformat()}; use a new settlement_id "
             "(to correct it: refund it, then settle again with `resettles`)")]


def _enrolment(submitted: SettlementSubmitted, span: EnrolmentSpan | None) -> list[Problem]:
    """The registry must have the person insured, as the submission says, on the date of
    settled_at; a disagreement names both values, so either side can be corrected."""
    on = business_date(submitted.settled_at)
    person = submitted.person_id
    if span is None:
        return [(reasons.PERSON_NOT_ENROLLED,
                 f"person {person} is not enrolled with any pool on {on} (settled_at, "
                 "Asia/Shanghai): the enrolment registry has no enrolment in force then; "
                 "check the person id, or settle once the insuring agency has enrolled the "
                 "person (person.enrolled)")]
    if span.left is not None:
        return [(reasons.PERSON_NOT_ENROLLED,
                 f"person {person} left pool {span.insured_agency} on {span.effective} "
                 f"({span.left}) and is not enrolled on {on}")]
    problems: list[Problem] = []
    if span.insured_agency != submitted.insured_agency:
        problems.append((reasons.ENROLMENT_MISMATCH,
                         f"insured_agency {submitted.insured_agency} disagrees with the "
                         f"enrolment registry, which has person {person} insured by "
                         f"{span.insured_agency} on {on} (since {span.effective})"))
    if span.insurance_type != submitted.insurance_type.value:
        problems.append((reasons.ENROLMENT_MISMATCH,
                         f"insurance_type {submitted.insurance_type.value} disagrees with the "
                         f"enrolment registry, which has person {person} insured as "
                         f"{span.insurance_type} on {on} (since {span.effective})"))
    return problems


def _dates(submitted: SettlementSubmitted) -> list[Problem]:
    settled_on = business_date(submitted.settled_at)
    if submitted.visit_type is VisitType.INPATIENT:
        admitted, discharged = submitted.admitted_on, submitted.discharged_on
        if admitted is None or discharged is None:
            return [(reasons.ADMISSION_DATES_MISSING,
                     "an inpatient settlement needs admitted_on and discharged_on")]
        problems = []
        if admitted > discharged:
            problems.append((reasons.ADMITTED_AFTER_DISCHARGE,
                             f"admitted_on {admitted} is after discharged_on {discharged}"))
        problems += _not_after("discharged_on", discharged, settled_on)
        return problems
    if submitted.visit_date is None:
        return [(reasons.VISIT_DATE_MISSING,
                 f"a {submitted.visit_type.value} settlement needs visit_date")]
    return _not_after("visit_date", submitted.visit_date, settled_on)


def _not_after(name: str, day: date, settled_on: date) -> list[Problem]:
    if day <= settled_on:
        return []
    return [(reasons.DATE_AFTER_SETTLEMENT,
             f"{name} {day} is after the settlement date {settled_on} (settled_at, "
             "Asia/Shanghai): care cannot be settled before it happens")]


def _facts(submitted: SettlementSubmitted, context: SettlementContext) -> list[Problem]:
    problems: list[Problem] = []
    hospital = context.hospital
    if hospital is None:
        problems.append((reasons.UNKNOWN_HOSPITAL,
                         f"hospital {submitted.hospital} is not a known designated institution"))
    elif context.care_agency is None or not regions.contains(context.care_agency,
                                                             hospital.county):
        problems.append((reasons.UNKNOWN_CARE_AGENCY,
                         f"no care-place agency covers region {hospital.county} of hospital "
                         f"{hospital.code}; the reference data must name one"))
    elif context.catalogue is None:
        problems.append((reasons.NO_CATALOGUE,
                         f"no care-place catalogue for region {hospital.county}"))
    policy = context.policy
    if policy is None:
        problems.append((reasons.UNKNOWN_INSURED_AGENCY,
                         f"insured_agency {submitted.insured_agency} has no settlement policy"))
    elif hospital is not None and policy.rule(submitted.insurance_type, submitted.visit_type,
                                              hospital.level) is None:
        problems.append((reasons.NO_BENEFIT_RULE,
                         f"the policy of {policy.agency} has no rule for "
                         f"{submitted.insurance_type.value} {submitted.visit_type.value} care "
                         f"at hospital level {hospital.level}"))
    return problems


def _benefit(status: BenefitStatus) -> list[Problem]:
    if status is BenefitStatus.SUSPENDED:
        return [(reasons.BENEFIT_SUSPENDED, "the insuring agency has suspended the person's "
                 "benefits: no direct settlement until they are resumed")]
    if status is BenefitStatus.TERMINATED:
        return [(reasons.BENEFIT_TERMINATED,
                 "the insuring agency has terminated the person's benefits")]
    return []


def _supervised(held: SupervisionChange | None) -> list[Problem]:
    if held is None:
        return []
    case = f" (case {held.case_id})" if held.case_id else ""
    return [(reasons.PERSON_UNDER_SUPERVISION,
             f"care agency {held.care_agency} has stopped direct settlement for this person "
             f"since {held.effective.isoformat()}{case}: settle the bill in cash; the person "
             "may claim manual reimbursement at the insuring agency")]


def _resettles(state: PersonState, submitted: SettlementSubmitted) -> list[Problem]:
    original_id = submitted.resettles
    if original_id is None:
        return []
    original = state.find(submitted.hospital, original_id)
    if original is None:
        others = state.with_id(original_id)
        if others:
            return [(reasons.RESETTLES_OTHER_HOSPITAL,
                     f"resettles {original_id} was settled by hospital {others[0].hospital}; "
                     "only a settlement of the same hospital can be settled again")]
        return [(reasons.RESETTLES_UNKNOWN,
                 f"resettles {original_id}: no such settlement of person {state.person_id} "
                 f"at hospital {submitted.hospital}")]
    if not original.refunded:
        return [(reasons.RESETTLES_NOT_REFUNDED,
                 f"resettles {original_id}, which is not refunded: refund it first")]
    if original.resettled_by is not None:
        return [(reasons.ALREADY_RESETTLED,
                 f"{original_id} was already settled again by {original.resettled_by}")]
    return []


def _covers(filing: FilingFacts, hospital: HospitalFacts, visit_type: VisitType) -> bool:
    """Whether a filing covers care at this hospital: destination, named hospital, and for an
    emergency filing the kind of visit it was made for (outpatient ≤ 3 days, or the stay)."""
    if not regions.contains(filing.destination, hospital.county):
        return False
    if filing.destination_hospital not in (None, hospital.code):
        return False
    if filing.category is FilingCategory.EMERGENCY and filing.emergency_visit is not None:
        return (filing.emergency_visit == "inpatient") == (visit_type is VisitType.INPATIENT)
    return True


def _filing_mismatches(submitted: SettlementSubmitted,
                       covering: list[FilingFacts]) -> list[Problem]:
    """A covering filing of another scheme or agency means the submission or the filing is
    wrong; settling either way could pay under the wrong policy, so neither is guessed."""
    problems: list[Problem] = []
    for f in covering:
        if f.insurance_type is not submitted.insurance_type:
            problems.append((reasons.FILING_INSURANCE_TYPE_MISMATCH,
                             f"filing {f.filing_id} is for {f.insurance_type.value} insurance, "
                             f"the submission says {submitted.insurance_type.value}: correct the "
                             "submission, or have the insuring agency revoke the filing"))
        if f.insured_agency != submitted.insured_agency:
            problems.append((reasons.FILING_AGENCY_MISMATCH,
                             f"filing {f.filing_id} was registered by {f.insured_agency}, the "
                             f"submission names {submitted.insured_agency}"))
    return problems


def _no_filing_reason(submitted: SettlementSubmitted, context: SettlementContext,
                      trip: str) -> Problem:
    if context.filings:
        return (reasons.FILING_NOT_FOR_HOSPITAL,
                f"none of the filings in force ({', '.join(f.filing_id for f in context.filings)})"
                f" covers hospital {submitted.hospital}, and {submitted.insured_agency} does not "
                f"settle unfiled {trip} care directly: file a change of destination or claim "
                "manual reimbursement")
    return (reasons.FILING_REQUIRED,
            f"{submitted.insured_agency} requires a filing for {trip} care: file before "
            "settling (补办备案), or claim manual reimbursement at the insuring agency")


def _rejected(submitted: SettlementSubmitted, problems: list[Problem]) -> SettlementRejected:
    return SettlementRejected(
        settlement_id=submitted.settlement_id, hospital=submitted.hospital,
        person_id=submitted.person_id,
        reasons=[Reason(code=code, message=message[:500]) for code, message in problems])


def _refund_rejected(refund: RefundRequested, code: str, message: str) -> RefundRejected:
    return RefundRejected(refund_id=refund.refund_id, settlement_id=refund.settlement_id,
                          hospital=refund.hospital, person_id=refund.person_id,
                          reasons=[Reason(code=code, message=message[:500])])

