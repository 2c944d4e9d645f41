"""Manual reimbursement (手工报销): a person who paid a care-place hospital in full claims at
the insuring agency. The agency sends ``reimbursement.claimed`` on ``reimbursement.claims``
(signed, keyed by person id); the settlement service answers ``reimbursement.approved`` or
``reimbursement.rejected`` on ``reimbursement.events`` (and the agency's own copy
``reimbursement.events.<agency>``). It is the insuring agency's own payment to its insured:
never an obligation between agencies, never cleared (docs/settlement.md)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field, model_validator

from shared.events.base import Code, Payload, Reason, RegionCode
from shared.events.filing import InsuranceType
from shared.events.settlement import (
    Item,
    Ratio,
    Visit,
    check_other_payers,
    items_within_limit,
)
from shared.money import Money, NonNegativeMoney


class ClaimCase(StrEnum):
    """Why the care was not settled directly."""

    #: Settled without the filing the insuring agency requires.
    NO_FILING = "no_filing"
    #: The direct settlement failed (the hospital's system, a refusal such as supervision).
    DIRECT_SETTLEMENT_FAILED = "direct_settlement_failed"
    #: A retroactive filing (补办备案) made after the bill was paid.
    FILING_AFTER_SETTLEMENT = "filing_after_settlement"


class _ClaimHead(Payload):
    """The fields of `ReimbursementClaimed` before its `Visit`."""

    claim_id: Code
    person_id: Code
    insured_agency: RegionCode
    insurance_type: InsuranceType
    #: The care-place hospital whose bills are claimed (its catalogue and level apply).
    hospital: Code


class ReimbursementClaimed(Visit, _ClaimHead):
    TYPE = "reimbursement.claimed"
    #: When the person paid the hospital: the care's settlement time (filing, cap year).
    paid_at: AwareDatetime
    case: ClaimCase
    #: Not settled directly for the person's own reasons: the extra reduction applies.
    at_fault: bool
    emergency: bool = False
    referral: bool = False
    items: list[Item] = Field(min_length=1, max_length=2000)
    #: The refused direct settlement, when there was one.
    failed_settlement_id: Code | None = None

    @model_validator(mode="after")
    def _bill_within_limit(self) -> ReimbursementClaimed:
        """A claim is computed as the direct settlement of the same bill: refused at the
        door as that settlement would be (and answered), not failing inside the rule."""
        items_within_limit(self.items)
        return self


class ReimbursementApproved(Payload):
    TYPE = "reimbursement.approved"
    claim_id: Code
    person_id: Code
    insured_agency: RegionCode
    care_agency: RegionCode
    hospital: Code
    case: ClaimCase
    at_fault: bool
    tier: int
    ratio: Ratio
    total: Money
    self_pay_first: Money
    uncovered: Money
    eligible: Money
    deductible: Money
    #: What the insuring agency's fund pays the person back.
    fund_pay: Money
    #: What the fund does not pay back: the person bears it, less the further payers below.
    cash_pay: Money
    paid_at: AwareDatetime
    filing_id: Code | None = None
    deductible_scope: str | None = None
    cap_scope: str | None = None
    #: Extensions: the further payers of the cash part, as `settlement.completed` has them
    #: (大病保险 serious-illness insurance, 医疗救助 medical assistance; absent: none).
    serious_illness_pay: NonNegativeMoney | None = None
    medical_assistance_pay: NonNegativeMoney | None = None

    @model_validator(mode="after")
    def _other_payers_within_cash(self) -> ReimbursementApproved:
        check_other_payers(self.cash_pay, self.serious_illness_pay, self.medical_assistance_pay)
        return self


class ReimbursementRejected(Payload):
    TYPE = "reimbursement.rejected"
    claim_id: Code
    person_id: Code
    insured_agency: RegionCode | None = None
    reasons: list[Reason] = Field(min_length=1)
