"""Settlement submissions (``settlement.submissions``) and results (``settlement.events``)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.events.base import Code, Payload, Reason, RegionCode, Text
from shared.events.filing import InsuranceType
from shared.money import MONEY_LIMIT, ZERO, Money, NonNegativeMoney


class VisitType(StrEnum):
    INPATIENT = "inpatient"
    OUTPATIENT = "outpatient"
    PHARMACY = "pharmacy"
    CHRONIC_OUTPATIENT = "chronic_outpatient"


_RATIO_MIN, _RATIO_MAX = Decimal("0"), Decimal("1")


def _parse_ratio(value: object) -> Decimal:
    # A Decimal comes only from the project's own code (the settlement decision); the wire
    # always carries a string.
    if not isinstance(value, str | Decimal):
        raise ValueError("ratio must be a decimal string such as \"0.70\"")
    try:
        ratio = Decimal(value)
    except InvalidOperation:  # "", "true", "0,7": refused like any other bad field
        raise ValueError(f"ratio must be a decimal string such as 0.70, got {value!r}"
                         ) from None
    if not (ratio.is_finite() and _RATIO_MIN <= ratio <= _RATIO_MAX):
        raise ValueError(f"ratio must lie between 0 and 1, got {value}")
    return ratio


Ratio = Annotated[
    Decimal,
    PlainValidator(_parse_ratio),
    PlainSerializer(lambda r: f"{r:.2f}" if r == r.quantize(Decimal("0.01")) else str(r),
                    return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(0|1)(\.[0-9]+)?$", "examples": ["0.70"]}),
]


class Item(Payload):
    code: Code
    name: Text
    category: Literal["A", "B", "C"]
    amount: NonNegativeMoney


def items_within_limit(items: list[Item]) -> Decimal:
    """The sum of a bill's items, refused (a field error of the event) when it reaches the
    money limit: no real bill does, and no amount computed from it could be written."""
    items_sum = sum((item.amount for item in items), Decimal("0"))
    if items_sum >= MONEY_LIMIT:
        raise PydanticCustomError(
            "money_format", "the items add up to {limit} or more: not a real bill",
            {"limit": str(MONEY_LIMIT)})
    return items_sum


class Visit(Payload):
    """The care a bill is for, described alike by a settlement (`SettlementSubmitted`) and by
    a manual reimbursement claim (`ReimbursementClaimed`).

    A base of those events, not an event. pydantic orders a model's fields from its last base
    to itself, and that order is the order of the event's JSON: an event lists the base with
    its fields before the visit after this one (``class E(Visit, Head)``: Head's fields, the
    visit's, then E's own)."""

    visit_type: VisitType
    disease_code: Code | None = None
    admitted_on: date | None = None
    discharged_on: date | None = None
    visit_date: date | None = None


class _SubmissionHead(Payload):
    """The fields of `SettlementSubmitted` before its `Visit`."""

    settlement_id: Code
    hospital: Code
    person_id: Code
    insured_agency: RegionCode
    insurance_type: InsuranceType


class SettlementSubmitted(Visit, _SubmissionHead):
    TYPE = "settlement.submitted"
    settled_at: AwareDatetime
    emergency: bool
    referral: bool
    items: list[Item] = Field(min_length=1, max_length=5000)
    personal_account_request: NonNegativeMoney | None = None
    resettles: Code | None = None
    #: Extension: the settlement should have been direct but was not, for the
    #: person's own reasons (a further 10 points off the ratio).
    not_direct_personal_reason: bool = False
    #: Extension: the bill's total as the hospital states it. When given it must equal
    #: the sum of the items, so that a bill whose lines were lost or changed on the way
    #: is refused instead of settled on what arrived.
    total: Money | None = None

    @model_validator(mode="after")
    def _bill_within_limit(self) -> SettlementSubmitted:
        items_sum = items_within_limit(self.items)
        if self.total is not None and self.total != items_sum:
            raise PydanticCustomError(
                "amounts_do_not_add_up",
                "the stated total {total} is not the sum of the items, {items}",
                {"total": f"{self.total:.2f}", "items": f"{items_sum:.2f}"})
        return self


class RefundRequested(Payload):
    TYPE = "settlement.refund_requested"
    refund_id: Code
    settlement_id: Code
    hospital: Code
    person_id: Code
    reason: Text
    refunded_at: AwareDatetime


class SettlementCompleted(SettlementSubmitted):
    TYPE = "settlement.completed"
    care_agency: RegionCode
    tier: Literal[1, 2, 3]
    ratio: Ratio
    total: Money
    self_pay_first: Money
    uncovered: Money
    eligible: Money
    deductible: Money
    fund_pay: Money
    account_pay: Money
    cash_pay: Money
    cleared_amount: Money
    #: Extensions: the filing the tier came from, and how the trip was classified.
    filing_id: Code | None = None
    trip: str | None = None

    @model_validator(mode="after")
    def _split_adds_up(self) -> SettlementCompleted:
        _check_split(self.total, self.fund_pay, self.account_pay, self.cash_pay,
                     self.cleared_amount)
        return self
    #: Extensions: the accumulators this settlement used (``admission|<hospital>|<date>`` or
    #: ``year|<year>|<insurance_type>|<pool>``), so that a refund gives back exactly that use
    #: and replaying the log rebuilds the accumulators without the policy files.
    deductible_scope: Text | None = None
    cap_scope: Text | None = None
    #: Extensions: what the personal account held at settled_at (the insuring agency's latest
    #: balance report, less the account payments settled since), and whether the
    #: personal_account_request was cut down to it (then account_pay is at most this).
    account_balance: Money | None = None
    account_capped: bool | None = None
    #: Extensions: further payers of the cash part where the insuring agency's policy counts
    #: them (大病保险 serious-illness insurance, 医疗救助 medical assistance; absent: none).
    #: They pay what `cash_pay` would leave the person: the person pays `cash_pay` less
    #: both, and the clearing clears them with `cleared_amount` (docs/settlement.md).
    serious_illness_pay: NonNegativeMoney | None = None
    medical_assistance_pay: NonNegativeMoney | None = None
    #: Extension: the accumulators those payers used, scope → amount (like `cap_scope`).
    other_payer_uses: dict[Text, Money] | None = None

    @model_validator(mode="after")
    def _other_payers_within_cash(self) -> SettlementCompleted:
        check_other_payers(self.cash_pay, self.serious_illness_pay,
                            self.medical_assistance_pay)
        return self

    @property
    def other_payers_pay(self) -> Decimal:
        return (self.serious_illness_pay or ZERO) + (self.medical_assistance_pay or ZERO)
    #: Extension: the one-stay filings this inpatient settlement ends (an emergency inpatient
    #: filing, 住院急诊备案一次有效: in force until the discharge settlement of its stay). The
    #: settlement service folds it into the person's state; later stays do not get them.
    filings_consumed: list[Code] | None = None


class SettlementRejected(Payload):
    TYPE = "settlement.rejected"
    settlement_id: Code
    reasons: list[Reason] = Field(min_length=1)
    hospital: Code | None = None
    person_id: Code | None = None


class SettlementRefunded(Payload):
    TYPE = "settlement.refunded"
    refund_id: Code
    settlement_id: Code
    hospital: Code
    person_id: Code
    insured_agency: RegionCode
    care_agency: RegionCode
    refunded_at: AwareDatetime
    #: When the refunded settlement was settled: its clearing cycle follows from it.
    settled_at: AwareDatetime
    total: Money
    deductible: Money
    fund_pay: Money
    account_pay: Money
    cash_pay: Money
    cleared_amount: Money
    #: Extensions: the refunded settlement's further payers (`SettlementCompleted`).
    serious_illness_pay: NonNegativeMoney | None = None
    medical_assistance_pay: NonNegativeMoney | None = None

    @property
    def other_payers_pay(self) -> Decimal:
        return (self.serious_illness_pay or ZERO) + (self.medical_assistance_pay or ZERO)

    @model_validator(mode="after")
    def _split_adds_up(self) -> SettlementRefunded:
        _check_split(self.total, self.fund_pay, self.account_pay, self.cash_pay,
                     self.cleared_amount)
        return self


def _check_split(total: Decimal, fund_pay: Decimal, account_pay: Decimal, cash_pay: Decimal,
                 cleared_amount: Decimal) -> None:
    """The contract's identities: total = fund + account + cash; cleared = fund + account."""
    if fund_pay + account_pay + cash_pay != total or fund_pay + account_pay != cleared_amount:
        raise PydanticCustomError(
            "amounts_do_not_add_up",
            "total must equal fund_pay + account_pay + cash_pay and cleared_amount must equal "
            "fund_pay + account_pay; got total {total}, fund_pay {fund}, account_pay "
            "{account}, cash_pay {cash}, cleared_amount {cleared}",
            {"total": str(total), "fund": str(fund_pay), "account": str(account_pay),
             "cash": str(cash_pay), "cleared": str(cleared_amount)})


def check_other_payers(cash_pay: Decimal, serious_illness_pay: Decimal | None,
                        medical_assistance_pay: Decimal | None) -> None:
    paid = (serious_illness_pay or ZERO) + (medical_assistance_pay or ZERO)
    if paid < 0 or paid > cash_pay:
        raise PydanticCustomError(
            "other_payers_exceed_cash",
            "serious_illness_pay + medical_assistance_pay ({paid}) must be between 0.00 and "
            "cash_pay ({cash}): further payers pay the person's cash part",
            {"paid": str(paid), "cash": str(cash_pay)})


class RefundRejected(Payload):
    TYPE = "settlement.refund_rejected"
    refund_id: Code
    reasons: list[Reason] = Field(min_length=1)
    settlement_id: Code | None = None
    hospital: Code | None = None
    person_id: Code | None = None
