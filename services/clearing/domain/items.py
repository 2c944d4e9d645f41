"""Clearing items: one obligation between two agencies per settlement or refund.

An item is the clearing service's record of a `settlement.completed` or
`settlement.refunded` (one table row): daily reports, statements and difference notices
are built from items, and the ledgers' postings follow from them one for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from services.clearing.domain.ledger import EventRef
from services.clearing.domain.periods import cycle_of
from shared.business_time import business_date
from shared.events.settlement import SettlementCompleted, SettlementRefunded


class ItemKind(StrEnum):
    SETTLEMENT = "settlement"
    REFUND = "refund"


def settlement_key(hospital: str, settlement_id: str) -> str:
    """Settlement ids are unique per hospital only, so items are keyed with the hospital
    ("#" never occurs in a code, so the key is unambiguous)."""
    return f"settlement#{hospital}#{settlement_id}"


def refund_key(hospital: str, refund_id: str) -> str:
    return f"refund#{hospital}#{refund_id}"


@dataclass(frozen=True)
class ClearingItem:
    """A settlement (the insuring agency owes the care agency `cleared_amount`) or a refund
    (which takes that back); amounts are the settlement's, always positive. `cleared_amount`
    is the settlement's plus what its further payers paid (`other_payers_pay`: 大病保险 and
    医疗救助 of the insuring place, advanced by the care place like the fund's share)."""

    item_id: str
    kind: ItemKind
    hospital: str
    settlement_id: str
    insured_agency: str
    care_agency: str
    #: settled_at of a settlement, refunded_at of a refund.
    business_time: datetime
    #: The cycle of the settlement's settled_at, and the cycle the item is cleared in.
    origin_cycle: str
    cycle: str
    fund_pay: Decimal
    account_pay: Decimal
    cash_pay: Decimal
    cleared_amount: Decimal
    cause: EventRef
    refund_id: str | None = None
    resettles: str | None = None
    #: The daily report that covered the item; None until one did.
    reported_on: date | None = None
    other_payers_pay: Decimal = Decimal("0.00")

    @property
    def signed_amount(self) -> Decimal:
        """What the item adds to the insuring agency's debt: negative for a refund."""
        return self.cleared_amount if self.kind is ItemKind.SETTLEMENT else -self.cleared_amount

    @property
    def is_adjustment(self) -> bool:
        """Whether the item reached its own cycle too late and was carried into a later one."""
        return self.cycle != self.origin_cycle

    @property
    def business_date(self) -> date:
        return business_date(self.business_time)


def is_cross_region(insured_agency: str, care_agency: str) -> bool:
    """Only settlements between two agencies are cleared; an agency settling for its own
    insured persons owes nobody."""
    return insured_agency != care_agency


def item_for_settlement(
    completed: SettlementCompleted, cause: EventRef, cycle: str,
) -> ClearingItem:
    return ClearingItem(
        item_id=settlement_key(completed.hospital, completed.settlement_id),
        kind=ItemKind.SETTLEMENT, hospital=completed.hospital,
        settlement_id=completed.settlement_id, insured_agency=completed.insured_agency,
        care_agency=completed.care_agency, business_time=completed.settled_at,
        origin_cycle=cycle_of(completed.settled_at), cycle=cycle,
        fund_pay=completed.fund_pay, account_pay=completed.account_pay,
        cash_pay=completed.cash_pay,
        cleared_amount=completed.cleared_amount + completed.other_payers_pay, cause=cause,
        resettles=completed.resettles, other_payers_pay=completed.other_payers_pay,
    )


def item_for_refund(refunded: SettlementRefunded, cause: EventRef, cycle: str) -> ClearingItem:
    return ClearingItem(
        item_id=refund_key(refunded.hospital, refunded.refund_id),
        kind=ItemKind.REFUND, hospital=refunded.hospital,
        settlement_id=refunded.settlement_id, insured_agency=refunded.insured_agency,
        care_agency=refunded.care_agency, business_time=refunded.refunded_at,
        origin_cycle=cycle_of(refunded.settled_at), cycle=cycle,
        fund_pay=refunded.fund_pay, account_pay=refunded.account_pay,
        cash_pay=refunded.cash_pay,
        cleared_amount=refunded.cleared_amount + refunded.other_payers_pay, cause=cause,
        refund_id=refunded.refund_id, other_payers_pay=refunded.other_payers_pay,
    )
