"""Ledgers of the clearing service: postings per event, balances over time, invariants and
the hash chain. The factories at the top are shared by the other clearing tests."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import pytest

from services.clearing.domain.chain import (
    GENESIS,
    LedgerHead,
    canonical_text,
    next_link,
    seal,
    verify_chain,
)
from services.clearing.domain.ledger import (
    AccountKey,
    AccountKind,
    EntryKind,
    EventRef,
    JournalEntry,
    Position,
    Posting,
    Side,
    balances,
    check_cycle_settled,
    check_entries_balance,
    check_hub_nets_to_zero,
    check_reciprocity,
    payable,
    postings_for_clearing,
    postings_for_distribution,
    postings_for_refund,
    postings_for_remittance,
    postings_for_settlement,
    receivable,
)
from services.clearing.domain.periods import cycle_of, next_cycle, previous_cycle
from shared.business_time import SHANGHAI, business_date
from shared.events.clearing import HUB
from shared.events.filing import InsuranceType
from shared.events.settlement import Item, SettlementCompleted, SettlementRefunded, VisitType

A, B, C = "220100", "220200", "220281"
_ids = itertools.count(1)


def at(month: int, day: int, hour: int = 10, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=SHANGHAI)


def ref(source: str = "hospital/H1") -> EventRef:
    return EventRef(source, f"evt-{next(_ids)}")


def completed(
    settlement_id: str, insured: str, care: str, settled_at: datetime, fund_pay: str,
    account_pay: str = "0.00", cash_pay: str = "0.00", resettles: str | None = None,
    hospital: str | None = None,
) -> SettlementCompleted:
    """A settlement.completed with the shares given and everything else plausible."""
    fund, account, cash = Decimal(fund_pay), Decimal(account_pay), Decimal(cash_pay)
    total = fund + account + cash
    zero = Decimal("0.00")
    return SettlementCompleted(
        settlement_id=settlement_id, hospital=hospital or f"H{care}", person_id="P-1",
        insured_agency=insured, insurance_type=InsuranceType.EMPLOYEE,
        visit_type=VisitType.OUTPATIENT, visit_date=settled_at.date(), settled_at=settled_at,
        emergency=False, referral=False,
        items=[Item(code="I1", name="item", category="A", amount=total)],
        care_agency=care, tier=1, ratio="0.80",  # type: ignore[arg-type]  # wire form
        total=total, self_pay_first=zero,
        uncovered=zero, eligible=total, deductible=zero, fund_pay=fund, account_pay=account,
        cash_pay=cash, cleared_amount=fund + account, resettles=resettles)


def refunded(refund_id: str, settlement: SettlementCompleted,
             refunded_at: datetime) -> SettlementRefunded:
    """The settlement.refunded of `settlement`, with its amounts."""
    s = settlement
    return SettlementRefunded(
        refund_id=refund_id, settlement_id=s.settlement_id, hospital=s.hospital,
        person_id=s.person_id, insured_agency=s.insured_agency, care_agency=s.care_agency,
        refunded_at=refunded_at, settled_at=s.settled_at, total=s.total,
        deductible=s.deductible, fund_pay=s.fund_pay, account_pay=s.account_pay,
        cash_pay=s.cash_pay, cleared_amount=s.cleared_amount)


def flat(entries: list[JournalEntry]) -> list[Posting]:
    return [p for e in entries for p in e.postings]


D = Decimal


# ---- periods --------------------------------------------------------------------------------


@pytest.mark.parametrize(("moment", "cycle"), [
    (datetime.fromisoformat("2026-10-31T23:59:59+08:00"), "2026-10"),
    (datetime.fromisoformat("2026-10-31T16:30:00+00:00"), "2026-11"),  # 00:30 in Shanghai
    (datetime.fromisoformat("2026-12-31T20:00:00-05:00"), "2027-01"),
])
def test_cycle_is_the_month_in_shanghai(moment: datetime, cycle: str) -> None:
    assert cycle_of(moment) == cycle


def test_cycle_arithmetic_crosses_years() -> None:
    assert next_cycle("2026-12") == "2027-01"
    assert previous_cycle("2027-01") == "2026-12"
    assert business_date(datetime.fromisoformat("2026-10-31T16:30:00+00:00")).isoformat() == \
        "2026-11-01"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="offset"):
        cycle_of(datetime(2026, 10, 1))


# ---- postings per event ---------------------------------------------------------------------


def test_settlement_posts_receivable_and_payable_of_the_cleared_amount() -> None:
    settlement = completed("S1", insured=A, care=B, settled_at=at(10, 3),
                           fund_pay="800.00", account_pay="200.00", cash_pay="300.00")
    cause = EventRef("settlement-service", "S1-completed")
    entries = postings_for_settlement(settlement, cause)
    rows = {(p.agency, p.account, p.counterpart, p.side, p.amount) for p in flat(entries)}
    assert rows == {
        (B, AccountKind.RECEIVABLE, A, Side.DEBIT, D("1000.00")),
        (B, AccountKind.ADVANCED_TO_HOSPITALS, A, Side.CREDIT, D("1000.00")),
        (A, AccountKind.BENEFIT_EXPENSE, B, Side.DEBIT, D("1000.00")),
        (A, AccountKind.PAYABLE, B, Side.CREDIT, D("1000.00")),
    }
    assert [e.agency for e in entries] == [B, A]
    for p in flat(entries):
        assert p.cause == cause and p.settlement_id == "S1" and p.kind is EntryKind.SETTLEMENT
        assert p.business_time == settlement.settled_at
        assert (p.cycle, p.origin_cycle) == ("2026-10", "2026-10")


def test_refund_reverses_exactly() -> None:
    settlement = completed("S1", insured=A, care=B, settled_at=at(10, 31, 22), fund_pay="300.00")
    refund = refunded("R1", settlement, at(11, 1, 9))
    entries = postings_for_settlement(settlement, ref()) + postings_for_refund(refund, ref())
    assert all(v == 0 for v in balances(flat(entries)).values())
    reversal = flat(postings_for_refund(refund, ref()))
    assert {p.side for p in reversal if p.account is AccountKind.RECEIVABLE} == {Side.CREDIT}
    # the refund of an October settlement belongs to October, unless carried
    assert {p.cycle for p in reversal} == {"2026-10"}
    carried = flat(postings_for_refund(refund, ref(), cycle="2026-11"))
    assert {(p.cycle, p.origin_cycle) for p in carried} == {("2026-11", "2026-10")}


def test_same_agency_and_all_cash_settlements_post_nothing() -> None:
    assert postings_for_settlement(completed("S", A, A, at(10, 3), "10.00"), ref()) == []
    assert postings_for_settlement(completed("S", A, B, at(10, 3), "0.00", cash_pay="9.00"),
                                   ref()) == []


def test_an_unbalanced_entry_cannot_be_built() -> None:
    posting = flat(postings_for_settlement(completed("S", A, B, at(10, 3), "10.00"), ref()))[0]
    with pytest.raises(ValueError, match="does not balance"):
        JournalEntry(posting.entry_id, posting.agency, (posting,))


def test_clearing_moves_positions_into_the_hub_and_remittances_settle_them() -> None:
    positions = {
        A: {B: Position(receivable=D("400.00"), payable=D("1000.00"))},
        B: {A: Position(receivable=D("1000.00"), payable=D("400.00"))},
    }
    obligations = (postings_for_settlement(completed("S1", A, B, at(10, 3), "1000.00"), ref())
                   + postings_for_settlement(completed("S2", B, A, at(10, 8), "400.00"), ref()))
    day10 = at(11, 10, 0)
    clearing = postings_for_clearing("2026-10", positions, ref("calendar"), day10)
    postings = flat(obligations + clearing)
    after = balances(postings)
    assert receivable(after, B, A) == payable(after, A, B) == 0
    assert payable(after, A, HUB) == receivable(after, HUB, A) == D("600.00")
    assert receivable(after, B, HUB) == payable(after, HUB, B) == D("600.00")
    assert check_entries_balance(postings) == check_reciprocity(postings) == []
    assert check_cycle_settled(postings, "2026-10") != []

    postings += flat(postings_for_remittance("2026-10", A, D("600.00"), ref(), at(11, 14)))
    assert check_hub_nets_to_zero(postings) == []
    postings += flat(postings_for_distribution("2026-10", {B: D("600.00")}, ref(), at(11, 20)))
    assert check_entries_balance(postings) == check_reciprocity(postings) == []
    assert check_hub_nets_to_zero(postings) == []
    assert check_cycle_settled(postings, "2026-10") == []
    assert balances(postings)[AccountKey(B, AccountKind.BANK, HUB)] == D("600.00")


def test_balances_as_of_a_past_moment() -> None:
    settlement = completed("S1", insured=A, care=B, settled_at=at(10, 3), fund_pay="50.00")
    postings = flat(postings_for_settlement(settlement, ref())
                    + postings_for_refund(refunded("R1", settlement, at(10, 9)), ref()))
    assert receivable(balances(postings, as_of=at(10, 2)), B, A) == 0
    assert receivable(balances(postings, as_of=at(10, 5)), B, A) == D("50.00")
    assert receivable(balances(postings, as_of=at(10, 9)), B, A) == 0


def test_checks_name_what_is_broken() -> None:
    postings = flat(postings_for_settlement(completed("S1", A, B, at(10, 3), "70.00"), ref()))
    tampered = [dataclasses.replace(postings[0], amount=D("71.00"))] + postings[1:]
    assert "off by 1.00" in check_entries_balance(tampered)[0]
    care_only = [p for p in postings if p.agency == B]
    assert check_reciprocity(care_only) == [
        "2026-10: 220200 has 70.00 receivable from 220100, but 220100 has 0.00 payable to 220200"]


# ---- the hash chain -------------------------------------------------------------------------


def _sealed_ledger(agency: str) -> list[Posting]:
    s1 = completed("S1", A, B, at(10, 3), "70.00")
    s2 = completed("S2", C, B, at(10, 4), "30.00")
    entries, heads = seal(postings_for_settlement(s1, ref())
                          + postings_for_settlement(s2, ref()), {})
    assert heads[B].sequence == 4 and heads[A].sequence == 2
    return [p for e in entries for p in e.postings if p.agency == agency]


def test_sealed_postings_are_numbered_and_chained() -> None:
    ledger = _sealed_ledger(B)
    assert [p.sequence for p in ledger] == [1, 2, 3, 4]
    assert ledger[0].link == next_link(GENESIS, ledger[0])
    assert verify_chain(ledger) is None
    assert verify_chain(ledger[2:], previous=ledger[1].link) is None


@pytest.mark.parametrize(("tamper", "broken_at"), [
    (lambda ps: [ps[0], dataclasses.replace(ps[1], amount=D("7.00"))] + ps[2:], 1),
    (lambda ps: [ps[0], ps[2], ps[1], ps[3]], 1),
    (lambda ps: ps[:2] + ps[3:], 2),
    (lambda ps: [dataclasses.replace(ps[0], counterpart=C)] + ps[1:], 0),
])
def test_verify_chain_finds_the_first_broken_link(
    tamper: Callable[[list[Posting]], list[Posting]], broken_at: int,
) -> None:
    assert verify_chain(tamper(_sealed_ledger(B))) == broken_at


def test_canonical_text_is_fixed() -> None:
    """Pinned so other languages (auditors) can recompute links from table rows."""
    posting = Posting(
        agency=B, entry_id="settlement:2026-10:220200:hospital/H1:e1", line=1,
        kind=EntryKind.SETTLEMENT, account=AccountKind.RECEIVABLE, counterpart=A,
        side=Side.DEBIT, amount=D("1000.00"), business_time=at(10, 3),
        cycle="2026-10", origin_cycle="2026-10", cause=EventRef("hospital/H1", "e1"),
        settlement_id="S1", sequence=1)
    assert canonical_text(posting) == (
        '["220200",1,"settlement:2026-10:220200:hospital/H1:e1",1,"settlement","receivable",'
        '"220100","debit",100000,"2026-10-03T02:00:00.000000Z","2026-10","2026-10",'
        '"hospital/H1","e1","S1"]')
    assert LedgerHead().link == GENESIS
