"""The split of a bill into fund, personal account and cash (CONTRACT.md, "How a settlement is
computed"), in `Decimal` only, each item and each product rounded to the fen half up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from shared.events.filing import InsuranceType
from shared.events.settlement import Item
from shared.money import ZERO, round_fen


@dataclass(frozen=True)
class ItemSplit:
    """One item classified by the care-place catalogue (step 1)."""

    code: str
    amount: Decimal
    self_pay_first: Decimal
    uncovered: Decimal
    eligible: Decimal


@dataclass(frozen=True)
class Computation:
    """Every amount of a settlement; total = fund_pay + account_pay + cash_pay exactly."""

    total: Decimal
    self_pay_first: Decimal
    uncovered: Decimal
    eligible: Decimal
    deductible: Decimal
    ratio: Decimal
    fund_pay: Decimal
    account_pay: Decimal
    cash_pay: Decimal
    cleared_amount: Decimal


def split_item(item: Item, b_share: Callable[[str], Decimal]) -> ItemSplit:
    """Step 1: A fully eligible, B eligible after its self-pay-first share, C uncovered."""
    if item.category == "A":
        return ItemSplit(item.code, item.amount, ZERO, ZERO, item.amount)
    if item.category == "B":
        first = round_fen(item.amount * b_share(item.code))
        return ItemSplit(item.code, item.amount, first, ZERO, item.amount - first)
    return ItemSplit(item.code, item.amount, ZERO, item.amount, ZERO)


def applied_ratio(policy_ratio: Decimal, tier_reduction: Decimal,
                  personal_reason_reduction: Decimal) -> Decimal:
    """Step 3: the policy ratio less the tier's and the personal-reason reductions, floored at 0."""
    return max(Decimal(0), policy_ratio - tier_reduction - personal_reason_reduction)


def compute(
    items: Iterable[Item],
    b_share: Callable[[str], Decimal],
    *,
    ratio: Decimal,
    deductible_unused: Decimal,
    cap_unused: Decimal,
    insurance_type: InsuranceType,
    personal_account_request: Decimal | None,
) -> Computation:
    """Steps 1, 2, 4 and 5 for a bill, given the applied ratio and what the person has left.

    `deductible_unused` is per admission (inpatient) or per calendar year (outpatient), as the
    caller's policy says; `cap_unused` is what remains of the annual cap. Both are floored at 0.
    """
    # Step 1 item by item, as `split_item` does, summed as it goes: the same sums as adding
    # up the splits (only +0.00 terms left out), without an `ItemSplit` per item.
    total = self_pay_first = uncovered = eligible = ZERO
    for item in items:
        amount = item.amount
        total += amount
        if item.category == "A":
            eligible += amount
        elif item.category == "B":
            first = round_fen(amount * b_share(item.code))
            self_pay_first += first
            eligible += amount - first
        else:
            uncovered += amount

    deductible = min(eligible, max(ZERO, deductible_unused))
    fund_pay = min(round_fen((eligible - deductible) * ratio), max(ZERO, cap_unused))
    if insurance_type is InsuranceType.EMPLOYEE:
        account_pay = min(personal_account_request or ZERO, total - fund_pay)
    else:
        account_pay = ZERO  # residents have no personal account
    cash_pay = total - fund_pay - account_pay
    return Computation(
        total=total, self_pay_first=self_pay_first, uncovered=uncovered, eligible=eligible,
        deductible=deductible, ratio=ratio, fund_pay=fund_pay, account_pay=account_pay,
        cash_pay=cash_pay, cleared_amount=fund_pay + account_pay,
    )


@dataclass(frozen=True)
class OtherPayment:
    """What one further payer pays of a bill, and the compliant self-pay it counted."""

    pay: Decimal
    #: This bill's compliant self-pay (eligible − fund_pay) that the payer counts for the year.
    counted: Decimal


def other_payer_pay(compliant_self_pay: Decimal, cash_left: Decimal, *, ratio: Decimal,
                    threshold: Decimal, counted_before: Decimal, paid_before: Decimal,
                    annual_cap: Decimal) -> OtherPayment:
    """A further payer's share of a bill: `ratio` of the part of this bill's compliant
    self-pay above what is left of the year's `threshold` (after `counted_before`), rounded
    to the fen, at most the cap still unused (after `paid_before`) and the cash the person
    still owes (`cash_left`: the payer pays the person's cash part, never the fund's or the
    personal account's)."""
    still_below = max(ZERO, threshold - counted_before)
    above = max(ZERO, compliant_self_pay - still_below)
    pay = min(round_fen(above * ratio), max(ZERO, annual_cap - paid_before), max(ZERO, cash_left))
    return OtherPayment(pay=pay, counted=compliant_self_pay)
