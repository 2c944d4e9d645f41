"""Decisions of the settlement service: a submission becomes completed or rejected, a refund
becomes refunded, rejected or held. Pure: the handler looks the facts up and passes them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from services.settlement.domain import reasons
from services.settlement.domain.accumulators import (
    REIMBURSEMENT_PREFIX,
    Held,
    PersonState,
    admission_scope,
    year_scope,
)
from services.settlement.domain.compute import applied_ratio, compute, other_payer_pay
from services.settlement.domain.policy import (
    BenefitRule,
    Catalogue,
    DeductibleMode,
    OtherPayers,
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
    "FilingFacts", "HospitalFacts", "Held", "SettlementContext", "care_date", "decide_refund",
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
    #: The insuring agency's review (核定): None while not reviewed, False when refused.
    emergency_approved: bool | None = None


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
    #: The person's medical-assistance category (医疗救助对象) from the enrolment, if any.
    assistance: str | None = None
    #: False only to measure what the registry check costs (the bench's "registry off" run):
    #: then neither enrolment nor balance is looked at, as before the registry existed.
    enrolment_checked: bool = True
    #: The care-place agency's stop of direct settlement for the person at settled_at.
    supervision: SupervisionChange | None = None
    #: Care without a filing is settled at the tier the table gives unfiled care, whatever
    #: the policy's direct-settlement rule (a manual reimbursement: reimbursement.py).
    unfiled_allowed: bool = False
    #: The decision is a manual reimbursement's (reimbursement.py), the one decision whose
    #: settlement id may carry the reserved `REIMBURSEMENT_PREFIX`.
    reimbursement: bool = False


def decide_settlement(
    state: PersonState, submitted: SettlementSubmitted, context: SettlementContext
) -> SettlementCompleted | SettlementRejected:
    """Settle a submission at the insuring agency's policy and the care-place catalogue."""
    if submitted.person_id != state.person_id:
        raise ValueError(f"state of {state.person_id} given for {submitted.person_id}")
    checked = _enrolment(submitted, context.enrolment) if context.enrolment_checked else []
    problems = [*_identity(state, submitted, context.reimbursement), *checked,
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
    covering = [f for f in context.filings if _covers(f, hospital, submitted.visit_type)
                and not _consumed_by_another_stay(state, f, submitted)]
    problems = list(_filing_mismatches(submitted, covering))
    table = policy.tier_table_on(care_date(state, submitted))
    if table is None:
        first = min((t.effective_from for t in policy.tier_tables if t.effective_from),
                    default=None)
        return _rejected(submitted, [*problems, (
            reasons.NO_TIER_TABLE,
            f"the care of {care_date(state, submitted)} predates the tier table of "
            f"{policy.agency} (in force from {first}): the earlier rules are not loaded; "
            "claim manual reimbursement at the insuring agency")])
    choice = choose_tier(table, trip,
                         [FilingOption(f.filing_id, f.category) for f in covering],
                         unfiled_allowed=(context.unfiled_allowed or
                                          policy.no_filing.allows(trip, submitted.visit_type)),
                         emergency=submitted.emergency, referral=submitted.referral,
                         visit_type=submitted.visit_type.value)
    if choice is None:
        problems.append(_no_filing_reason(submitted, context, trip.value))
    if problems:
        return _rejected(submitted, problems)
    assert choice is not None
    consumed = [f.filing_id for f in covering if _one_stay(f)] \
        if submitted.visit_type is VisitType.INPATIENT else []
    return _completed(state, submitted, care_agency, policy, rule, catalogue, choice,
                      context.balance, consumed, context.assistance)


def decide_refund(
    state: PersonState, refund: RefundRequested
) -> SettlementRefunded | RefundRejected | Held:
    """Refund in full any earlier settlement of the person (隔笔退费), once."""
    if refund.person_id != state.person_id:
        raise ValueError(f"state of {state.person_id} given for {refund.person_id}")
    if refund.settlement_id.startswith(REIMBURSEMENT_PREFIX):
        return _refund_rejected(
            refund, reasons.RESERVED_SETTLEMENT_ID,
            f"settlement_id {refund.settlement_id} begins with {REIMBURSEMENT_PREFIX}, which "
            "names a manual reimbursement the insuring agency paid, not a hospital's "
            "settlement: there is no direct settlement to refund")
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
        cleared_amount=record.cleared_amount, serious_illness_pay=record.serious_illness_pay,
        medical_assistance_pay=record.medical_assistance_pay)


# ---- the completed settlement -------------------------------------------------------------


def _completed(
    state: PersonState, submitted: SettlementSubmitted, care_agency: str,
    policy: SettlementPolicy, rule: BenefitRule, catalogue: Catalogue, choice: TierChoice,
    balance: BalanceReport | None = None, consumed: list[str] | None = None,
    assistance: str | None = None,
) -> SettlementCompleted:
    visit = policy.visits[submitted.visit_type]
    year = care_date(state, submitted).year
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
    others = other_payers(state, policy.other_payers, submitted.insurance_type, year,
                          result.eligible - result.fund_pay, result.cash_pay, assistance)
    # The computed total replaces the hospital's stated one (equal to it when given).
    # `__dict__` holds exactly the fields (`dict(model)` builds the same pairs, slower).
    return SettlementCompleted(**(submitted.__dict__ | dict(
        care_agency=care_agency, tier=choice.tier, ratio=result.ratio,
        total=result.total, self_pay_first=result.self_pay_first, uncovered=result.uncovered,
        eligible=result.eligible, deductible=result.deductible, fund_pay=result.fund_pay,
        account_pay=result.account_pay, cash_pay=result.cash_pay,
        cleared_amount=result.cleared_amount, filing_id=choice.filing_id,
        trip=choice.trip.value, deductible_scope=deductible_scope, cap_scope=cap_scope,
        **account, **others, **({"filings_consumed": consumed} if consumed else {}))))


def other_payers(state: PersonState, payers: OtherPayers, insurance_type: InsuranceType,
                 year: int, compliant_self_pay: Decimal, cash_pay: Decimal,
                 assistance: str | None) -> dict[str, Any]:
    """The further payers of the person's cash part, in the order the province applies them:
    serious-illness insurance (大病保险) on the year's compliant self-pay above its threshold,
    then medical assistance (医疗救助) for the person's assistance category on what is left.
    The fields of `SettlementCompleted` they fill; none when the policy has neither."""
    serious = payers.serious_illness.get(insurance_type)
    assisted = payers.medical_assistance.get(assistance) if assistance else None
    if serious is None and assisted is None:
        return {}
    insurance = insurance_type.value
    uses: dict[str, Decimal] = {}
    fields: dict[str, Any] = {}
    left_to_pay, left_cash = compliant_self_pay, cash_pay
    if serious is not None:
        counted = year_scope(year, insurance, "serious_illness_counted")
        paid = year_scope(year, insurance, "serious_illness")
        si = other_payer_pay(compliant_self_pay, cash_pay, ratio=serious.ratio,
                             threshold=serious.threshold,
                             counted_before=state.cap_used.get(counted, ZERO),
                             paid_before=state.cap_used.get(paid, ZERO),
                             annual_cap=serious.annual_cap)
        uses[counted], uses[paid] = si.counted, si.pay
        fields["serious_illness_pay"] = si.pay
        left_to_pay, left_cash = compliant_self_pay - si.pay, cash_pay - si.pay
    if assisted is not None:
        paid = year_scope(year, insurance, "medical_assistance")
        ma = other_payer_pay(left_to_pay, left_cash, ratio=assisted.ratio,
                             threshold=ZERO, counted_before=ZERO,
                             paid_before=state.cap_used.get(paid, ZERO),
                             annual_cap=assisted.annual_cap)
        uses[paid] = ma.pay
        fields["medical_assistance_pay"] = ma.pay
    fields["other_payer_uses"] = {k: v for k, v in uses.items() if v}
    return fields


def care_date(state: PersonState, submitted: SettlementSubmitted) -> date:
    """The business date a settlement is decided by (cap and deductible year, filing in
    force): settled_at's, but for a re-settlement that of the settlement it replaces, down a
    chain of re-settlements to the first. A correction settles the original care again, so
    a stay of 2026 re-settled in January 2027 still draws on the 2026 cap."""
    original = state.find(submitted.hospital, submitted.resettles) if submitted.resettles \
        else None
    seen: set[str] = set()
    while original is not None and original.resettles and original.settlement_id not in seen:
        seen.add(original.settlement_id)
        earlier = state.find(original.hospital, original.resettles)
        if earlier is None:
            break
        original = earlier
    return business_date(original.settled_at if original is not None
                          else submitted.settled_at)


def account_holds(state: PersonState, balance: BalanceReport, settled_at: datetime) -> Decimal:
    """What the personal account holds at `settled_at`: the balance reported as of an
    earlier time, less what this person's settlements since then (and not refunded) took."""
    taken = sum((s.account_pay for s in state.settlements
                 if not s.refunded and balance.as_of < s.settled_at <= settled_at), ZERO)
    return max(ZERO, balance.balance - taken)


# ---- checks: each yields (code, message) pairs --------------------------------------------

Problem = tuple[str, str]


def _identity(state: PersonState, submitted: SettlementSubmitted,
              reimbursement: bool = False) -> list[Problem]:
    reserved = [(reasons.RESERVED_SETTLEMENT_ID,
                 f"{field} {value} begins with {REIMBURSEMENT_PREFIX}, which names the "
                 "records of manual reimbursements: a hospital's settlement ids may not begin "
                 f"with it; use another settlement_id")
                for field, value in (("settlement_id", submitted.settlement_id),
                                     ("resettles", submitted.resettles))
                if value and value.startswith(REIMBURSEMENT_PREFIX)
                and not (reimbursement and field == "settlement_id")]
    if reserved:
        return reserved
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
    if original_id is None or original_id.startswith(REIMBURSEMENT_PREFIX):
        return []  # the reserved prefix: `_identity` refuses it
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
    if filing.category is FilingCategory.EMERGENCY and filing.emergency_approved is False:
        return False  # 未通过的，按自行就医待遇支付比例直接结算 (seed 003): as if unfiled
    if filing.category is FilingCategory.EMERGENCY and filing.emergency_visit is not None:
        return (filing.emergency_visit == "inpatient") == (visit_type is VisitType.INPATIENT)
    return True


def _one_stay(filing: FilingFacts) -> bool:
    """A filing valid for one stay: 住院急诊备案一次有效，有效期至出院结算 (seed 003)."""
    return filing.category is FilingCategory.EMERGENCY and filing.emergency_visit == "inpatient"


def _consumed_by_another_stay(state: PersonState, filing: FilingFacts,
                              submitted: SettlementSubmitted) -> bool:
    """A one-stay filing whose stay was settled at discharge no longer covers another stay;
    the same stay (its refund and re-settlement) still gets it."""
    used_by = state.consumed_filings.get(filing.filing_id)
    if used_by is None:
        return False
    if submitted.visit_type is not VisitType.INPATIENT or submitted.admitted_on is None:
        return True
    return used_by != admission_scope(submitted.hospital, submitted.admitted_on)


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

