"""Further payers of a bill (大病保险 serious-illness insurance, 医疗救助 medical assistance):
the pure share function, worked figures through the decision with Taiyuan's shipped policy,
the accumulators a refund gives back, and the clearing's obligation."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from services.clearing.domain.items import item_for_refund, item_for_settlement
from services.clearing.domain.ledger import EventRef
from services.settlement.domain.accumulators import (
    PersonState,
    evolve,
    from_json,
    to_json,
)
from services.settlement.domain.compute import other_payer_pay
from services.settlement.domain.decisions import decide_refund, decide_settlement
from shared.events.settlement import SettlementCompleted, SettlementRefunded
from tests.unit.test_settlement_decisions import context, refund, submission

D = Decimal


@pytest.mark.parametrize(
    ("csp", "cash", "threshold", "counted", "paid", "cap", "expected"), [
        # 12,720.00 of compliant self-pay, the year's first: 2,720.00 above 10,000 × 0.60
        ("12720.00", "12720.00", "10000.00", "0.00", "0.00", "400000.00", "1632.00"),
        # the threshold already passed this year: all of it counts
        ("2720.00", "2720.00", "10000.00", "12720.00", "1632.00", "400000.00", "1632.00"),
        # below the threshold: nothing
        ("9999.99", "9999.99", "10000.00", "0.00", "0.00", "400000.00", "0.00"),
        # exactly at it: nothing; one fen above: 0.01 × 0.60 rounds half up to 0.01
        ("10000.00", "10000.00", "10000.00", "0.00", "0.00", "400000.00", "0.00"),
        ("10000.01", "10000.01", "10000.00", "0.00", "0.00", "400000.00", "0.01"),
        # the annual cap: 100.00 left
        ("12720.00", "12720.00", "10000.00", "0.00", "399900.00", "400000.00", "100.00"),
        # never more than the person's cash (the personal account paid the rest)
        ("12720.00", "500.00", "10000.00", "0.00", "0.00", "400000.00", "500.00"),
    ])
def test_other_payer_share(csp: str, cash: str, threshold: str, counted: str, paid: str,
                           cap: str, expected: str) -> None:
    share = other_payer_pay(D(csp), D(cash), ratio=D("0.60"), threshold=D(threshold),
                            counted_before=D(counted), paid_before=D(paid), annual_cap=D(cap))
    assert share.pay == D(expected)
    assert share.counted == D(csp)


def _stay(settlement_id: str, amount: str, admitted: str, **changes: object):  # type: ignore[no-untyped-def]
    fields: dict[str, object] = dict(
        settlement_id=settlement_id, insured_agency="140100", insurance_type="resident",
        hospital="H140106001", admitted_on=admitted, discharged_on=admitted,
        settled_at=f"{admitted}T16:00:00+08:00", personal_account_request=None,
        items=[{"code": "S-SURGERY", "name": "手术费", "category": "A", "amount": amount}])
    return submission(**{**fields, **changes})


def _settle(state: PersonState, sub, assistance: str | None = None):  # type: ignore[no-untyped-def]
    ctx = dataclasses.replace(context(sub), assistance=assistance)
    outcome = decide_settlement(state, sub, ctx)
    assert isinstance(outcome, SettlementCompleted), outcome
    return outcome, evolve(state, outcome)


def test_serious_illness_and_assistance_worked_figures() -> None:
    """Taiyuan resident, level-3 hospital: deductible 1,200.00, ratio 0.60; 大病保险 above
    10,000.00 of the year's compliant self-pay at 0.60; 低保 assistance 0.70 of the rest."""
    state = PersonState.empty("P-1")
    first, state = _settle(state, _stay("S-1", "30000.00", "2026-03-02"), "low_income")
    # fund = (30,000 − 1,200) × 0.60 = 17,280.00; compliant self-pay 12,720.00
    assert (first.fund_pay, first.cash_pay) == (D("17280.00"), D("12720.00"))
    assert first.serious_illness_pay == D("1632.00")  # (12,720 − 10,000) × 0.60
    assert first.medical_assistance_pay == D("7761.60")  # (12,720 − 1,632) × 0.70
    assert first.cash_pay - first.other_payers_pay == D("3326.40")  # what the person pays
    # the contract's identities are untouched
    assert first.total == first.fund_pay + first.account_pay + first.cash_pay
    assert first.cleared_amount == first.fund_pay + first.account_pay

    # a second stay the same year: the threshold is behind, all its self-pay counts
    second, state = _settle(state, _stay("S-2", "5000.00", "2026-05-04"))
    assert second.fund_pay == D("2280.00")  # (5,000 − 1,200) × 0.60
    assert second.serious_illness_pay == D("1632.00")  # 2,720.00 × 0.60
    assert second.medical_assistance_pay is None  # no assistance category this time

    # the first is refunded: its counted self-pay and payments are given back
    back = decide_refund(state, refund("S-1", hospital="H140106001",
                                       at="2026-05-05T09:00:00+08:00"))
    assert isinstance(back, SettlementRefunded)
    assert (back.serious_illness_pay, back.medical_assistance_pay) == (D("1632.00"),
                                                                       D("7761.60"))
    state = evolve(state, back)
    assert state.cap_used["year|2026|resident|serious_illness_counted"] == D("2720.00")
    third, state = _settle(state, _stay("S-3", "5000.00", "2026-06-01"))
    # 2,720 counted before, 2,720 now: 5,440 < 10,000, so nothing yet
    assert third.serious_illness_pay == D("0.00")

    # the state keeps the payers through its JSON form
    assert from_json(to_json(state)) == state


def test_a_new_year_starts_the_threshold_again() -> None:
    state = PersonState.empty("P-1")
    _, state = _settle(state, _stay("S-1", "30000.00", "2026-12-01"))
    after, _ = _settle(state, _stay("S-2", "5000.00", "2027-01-04"))
    assert after.serious_illness_pay == D("0.00")  # 2,720.00 counted in 2027 so far


def test_policies_without_other_payers_leave_the_event_as_it_was() -> None:
    """Jilin's policies name no further payer: no new field appears on the wire."""
    outcome = decide_settlement(PersonState.empty("P-1"), submission(),
                                context(submission()))
    assert isinstance(outcome, SettlementCompleted)
    wire = outcome.model_dump(mode="json", exclude_none=True)
    assert not {"serious_illness_pay", "medical_assistance_pay",
                "other_payer_uses"} & set(wire)


def test_the_clearing_clears_the_further_payers_with_the_fund() -> None:
    sub = _stay("S-1", "30000.00", "2026-03-02", hospital="H140213001")  # a Datong hospital: 140200 advances, 140100 owes
    event = decide_settlement(PersonState.empty("P-1"), sub,
                              dataclasses.replace(context(sub), assistance="low_income"))
    assert isinstance(event, SettlementCompleted), event
    assert event.other_payers_pay > 0
    item = item_for_settlement(event, EventRef("hospital/H140213001", "e1"), "2026-03")
    assert item.cleared_amount == event.cleared_amount + event.other_payers_pay
    assert item.other_payers_pay == event.other_payers_pay
    state = evolve(PersonState.empty("P-1"), event)
    back = decide_refund(state, refund("S-1", hospital="H140213001",
                                       at="2026-03-05T09:00:00+08:00"))
    assert isinstance(back, SettlementRefunded)
    undone = item_for_refund(back, EventRef("hospital/H140213001", "e2"), "2026-03")
    assert undone.signed_amount == -item.signed_amount
