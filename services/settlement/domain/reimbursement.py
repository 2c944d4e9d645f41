"""Manual reimbursement (手工报销): the insuring agency pays back a bill its insured person
paid in full at a care-place hospital (docs/settlement.md, "Manual reimbursement").

The claim is computed exactly like a direct settlement of the same bill — the insuring
place's policy, the care-place catalogue, the tier the rules give for the filing in force at
`paid_at` (or for no filing at all), the extra reduction when the person is at fault — and
it uses the person's one deductible and annual cap accumulator: a reimbursement is recorded
in the person's state as a settlement ``MR:<claim_id>`` at the hospital, so later direct
settlements see what it used, and it sees what they used. A care agency's stop of direct
settlement (supervision) does not refuse it: it is what the person may do instead. What
it never is: an obligation between agencies. It is answered on ``reimbursement.events``,
which the clearing service does not read.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from services.settlement.domain import reasons
from services.settlement.domain.accumulators import REIMBURSEMENT_PREFIX, PersonState
from services.settlement.domain.decisions import SettlementContext, decide_settlement
from shared.events.base import Reason
from shared.events.reimbursement import (
    ReimbursementApproved,
    ReimbursementClaimed,
    ReimbursementRejected,
)
from shared.events.settlement import SettlementCompleted, SettlementSubmitted, Visit

#: The settlement id a reimbursement is recorded under in the person's state.
PREFIX = REIMBURSEMENT_PREFIX


def as_settlement(claim: ReimbursementClaimed) -> SettlementSubmitted:
    """The claim as the direct settlement it replaces (no personal account: paid in cash)."""
    document = {
        "settlement_id": f"{PREFIX}{claim.claim_id}"[:64], "hospital": claim.hospital,
        "person_id": claim.person_id, "insured_agency": claim.insured_agency,
        "insurance_type": claim.insurance_type.value,
        **claim.model_dump(mode="json", include=set(Visit.model_fields)),
        "settled_at": claim.paid_at.isoformat(), "emergency": claim.emergency,
        "referral": claim.referral, "not_direct_personal_reason": claim.at_fault,
        "items": [i.model_dump(mode="json") for i in claim.items],
    }
    return SettlementSubmitted.model_validate_json(
        orjson.dumps({k: v for k, v in document.items() if v is not None}))


def decide_reimbursement(state: PersonState, claim: ReimbursementClaimed,
                         context: SettlementContext
                         ) -> tuple[ReimbursementApproved | ReimbursementRejected,
                                    SettlementCompleted | None]:
    """The answer to a claim, and the settlement to record in the person's state (None when
    refused)."""
    submitted = as_settlement(claim)
    if state.find(claim.hospital, submitted.settlement_id) is not None:
        return _rejected(claim, [Reason(code=reasons.DUPLICATE_CLAIM, message=(
            f"claim {claim.claim_id} for hospital {claim.hospital} is already reimbursed; "
            "give each claim its own claim_id"))]), None
    decided = decide_settlement(state, submitted,
                                replace(context, supervision=None, unfiled_allowed=True,
                                        reimbursement=True))
    if not isinstance(decided, SettlementCompleted):
        return _rejected(claim, list(decided.reasons)), None
    return ReimbursementApproved(
        claim_id=claim.claim_id, person_id=claim.person_id,
        insured_agency=claim.insured_agency, care_agency=decided.care_agency,
        hospital=claim.hospital, case=claim.case, at_fault=claim.at_fault,
        tier=decided.tier, ratio=decided.ratio, total=decided.total,
        self_pay_first=decided.self_pay_first, uncovered=decided.uncovered,
        eligible=decided.eligible, deductible=decided.deductible, fund_pay=decided.fund_pay,
        cash_pay=decided.total - decided.fund_pay, paid_at=claim.paid_at,
        filing_id=decided.filing_id, deductible_scope=decided.deductible_scope,
        cap_scope=decided.cap_scope, serious_illness_pay=decided.serious_illness_pay,
        medical_assistance_pay=decided.medical_assistance_pay), decided


def _rejected(claim: ReimbursementClaimed, found: list[Reason]) -> ReimbursementRejected:
    return ReimbursementRejected(claim_id=claim.claim_id, person_id=claim.person_id,
                                 insured_agency=claim.insured_agency, reasons=found)
