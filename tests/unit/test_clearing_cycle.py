"""The monthly cycle, hand-worked: three agencies through October and November 2026
(docs/clearing.md, "A worked example", is this test in prose).

A = 220100 (长春市), B = 220200 (吉林市), C = 220281 (蛟河市).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from services.clearing.domain.chain import verify_chain
from services.clearing.domain.cycles import (
    check_hub_pays_out_what_it_takes_in,
    check_nets_sum_to_zero,
    clearing_cycle,
    distribution_targets,
    instruction_id,
)
from services.clearing.domain.ledger import (
    EventRef,
    balances,
    check_cycle_settled,
    check_entries_balance,
    check_hub_nets_to_zero,
    check_hub_never_overdrawn,
    check_reciprocity,
    payable,
    receivable,
)
from services.clearing.domain.state import CycleStatus
from shared.events.base import Payload
from shared.events.clearing import (
    HUB,
    CycleClosed,
    DayStarted,
    DifferenceNotice,
    NetTransferInstruction,
    RemittanceOverdue,
    RemittanceReported,
    StatementIssued,
    SubmissionRejected,
)
from tests.clearing_book import InMemoryBook
from tests.unit.test_clearing_ledger import A, B, C, at, completed, refunded

D = Decimal
S1 = completed("S1", insured=A, care=B, settled_at=at(10, 3), fund_pay="800.00",
               account_pay="200.00", cash_pay="300.00")
S2 = completed("S2", insured=B, care=A, settled_at=at(10, 8), fund_pay="400.00")
S3 = completed("S3", insured=C, care=A, settled_at=at(10, 12), fund_pay="600.00")
S4 = completed("S4", insured=A, care=C, settled_at=at(10, 20), fund_pay="250.00")
S5 = completed("S5", insured=C, care=B, settled_at=at(10, 31, 22), fund_pay="300.00")
S6 = completed("S6", insured=B, care=C, settled_at=at(10, 30), fund_pay="120.00")
S1R = completed("S1R", insured=A, care=B, settled_at=at(11, 12, 11), fund_pay="720.00",
                account_pay="180.00", cash_pay="400.00", resettles="S1")


def remit(cycle: str, payer: str, amount: str, paid_at: datetime) -> RemittanceReported:
    return RemittanceReported(instruction_id=instruction_id(cycle, payer, HUB),
                              amount=D(amount), paid_at=paid_at, agency=payer)


#: What arrives, by the moment it is processed (the calendar runs first each day).
STORY: list[tuple[datetime, Payload]] = [
    (at(10, 3), S1), (at(10, 8), S2), (at(10, 12), S3), (at(10, 20), S4),
    (at(10, 31, 22), S5),
    (at(11, 1, 9), refunded("R5", S5, at(11, 1, 9))),   # across the month boundary, in time
    (at(11, 3), S6),                                     # October's, after its statements
    (at(11, 12, 10), refunded("R1", S1, at(11, 12, 10))),  # S1 is already cleared
    (at(11, 12, 11), S1R),                               # ... and settled again
    (at(11, 14), remit("2026-10", A, "250.00", at(11, 14))),
    (at(11, 15), remit("2026-10", C, "200.00", at(11, 15))),  # partial
    (at(11, 22), remit("2026-10", C, "150.00", at(11, 22))),  # the rest, late
    (at(12, 18), remit("2026-11", B, "110.00", at(12, 18))),  # late and partial
    (at(12, 21), remit("2026-11", B, "110.00", at(12, 21))),
]


def run(story: Iterable[tuple[datetime, Payload]], first: date, last: date) -> InMemoryBook:
    """Feed the calendar a DayStarted each day, then that day's events."""
    book = InMemoryBook()
    pending = sorted(story, key=lambda pair: pair[0])
    day, n = first, 0
    while day <= last:
        book.apply(DayStarted(date=day), EventRef("calendar", f"day-{day}"))
        while pending and pending[0][0].date() == day:
            n += 1
            book.apply(pending.pop(0)[1], EventRef("test", f"event-{n}"))
        day += timedelta(days=1)
    return book


@pytest.fixture(scope="module")
def book() -> InMemoryBook:
    return run(STORY, date(2026, 10, 1), date(2026, 12, 31))


def _statement(book: InMemoryBook, cycle: str, agency: str) -> StatementIssued:
    (statement,) = [s for s in book.payloads(StatementIssued)
                    if s.cycle == cycle and s.agency == agency]
    return statement


def _line(statement: StatementIssued, counterpart: str) -> tuple[str, ...]:
    (line,) = [x for x in statement.lines if x.counterpart == counterpart]
    return (f"{line.receivable}/{line.receivable_count}", f"{line.payable}/{line.payable_count}",
            f"{line.adjustments}/{line.adjustment_count}", str(line.net))


@pytest.mark.parametrize(("cycle", "agency", "counterpart", "expected"), [
    # receivable/count, payable/count, adjustments/count, net
    ("2026-10", A, B, ("400.00/1", "1000.00/1", "0.00/0", "-600.00")),
    ("2026-10", A, C, ("600.00/1", "250.00/1", "0.00/0", "350.00")),
    ("2026-10", B, A, ("1000.00/1", "400.00/1", "0.00/0", "600.00")),
    ("2026-10", B, C, ("0.00/2", "0.00/0", "0.00/0", "0.00")),  # S5 and its refund R5
    ("2026-10", C, A, ("250.00/1", "600.00/1", "0.00/0", "-350.00")),
    ("2026-10", C, B, ("0.00/0", "0.00/2", "0.00/0", "0.00")),
    ("2026-11", A, B, ("0.00/0", "900.00/1", "1000.00/1", "100.00")),  # S1R; R1 carried
    ("2026-11", B, A, ("900.00/1", "0.00/0", "-1000.00/1", "-100.00")),
    ("2026-11", B, C, ("0.00/0", "0.00/0", "-120.00/1", "-120.00")),  # S6 carried
    ("2026-11", C, B, ("0.00/0", "0.00/0", "120.00/1", "120.00")),
])
def test_statement_lines(book: InMemoryBook, cycle: str, agency: str, counterpart: str,
                         expected: tuple[str, ...]) -> None:
    assert _line(_statement(book, cycle, agency), counterpart) == expected


@pytest.mark.parametrize(("cycle", "nets"), [
    ("2026-10", {A: "-250.00", B: "600.00", C: "-350.00"}),
    ("2026-11", {A: "100.00", B: "-220.00", C: "120.00"}),
])
def test_nets_sum_to_zero(book: InMemoryBook, cycle: str, nets: dict[str, str]) -> None:
    assert {a: str(_statement(book, cycle, a).net) for a in nets} == nets
    assert check_nets_sum_to_zero(book.payloads(StatementIssued)) == []


def test_net_transfer_instructions(book: InMemoryBook) -> None:
    instructions = book.payloads(NetTransferInstruction)
    assert [(i.instruction_id, str(i.amount), i.due_on.isoformat()) for i in instructions] == [
        # 15 Nov 2026 is a Sunday: due Monday the 16th; 20 Dec 2026 a Sunday: the 21st
        ("NTI-2026-10-220100-hub", "250.00", "2026-11-16"),
        ("NTI-2026-10-220281-hub", "350.00", "2026-11-16"),
        ("NTI-2026-10-hub-220200", "600.00", "2026-11-20"),
        ("NTI-2026-11-220200-hub", "220.00", "2026-12-15"),
        ("NTI-2026-11-hub-220100", "100.00", "2026-12-21"),
        ("NTI-2026-11-hub-220281", "120.00", "2026-12-21"),
    ]
    assert check_hub_pays_out_what_it_takes_in(instructions) == []
    keys = [r.key for r in book.results if isinstance(r.payload, NetTransferInstruction)]
    assert keys == [A, C, B, B, A, C]


def test_overdue_remittances_are_reported_once(book: InMemoryBook) -> None:
    overdue = [(o.instruction_id, str(o.received)) for o in book.payloads(RemittanceOverdue)]
    assert overdue == [("NTI-2026-10-220281-hub", "200.00"), ("NTI-2026-11-220200-hub", "0.00")]


def test_distribution_only_from_money_received(book: InMemoryBook) -> None:
    hub_payouts = [(p.business_time.date().isoformat(), p.counterpart, str(p.amount))
                   for p in book.ledger(HUB) if p.kind.value == "distribution"
                   and p.account.value == "bank"]
    assert hub_payouts == [
        ("2026-11-20", B, "450.00"),   # 250 + 200 received of 600
        ("2026-11-23", B, "150.00"),   # the day after C paid the rest
        ("2026-12-21", A, "50.00"),    # 110 of 220 received: shared 100 : 120 (the 20th
        ("2026-12-21", C, "60.00"),    # is a Sunday: payouts start Monday the 21st)
        ("2026-12-22", A, "50.00"),
        ("2026-12-22", C, "60.00"),
    ]


def test_cycles_close_when_everything_is_paid_out(book: InMemoryBook) -> None:
    closed = [(c.cycle, c.agency, str(c.net)) for c in book.payloads(CycleClosed)]
    assert closed == [
        ("2026-10", A, "-250.00"), ("2026-10", B, "600.00"), ("2026-10", C, "-350.00"),
        ("2026-11", A, "100.00"), ("2026-11", B, "-220.00"), ("2026-11", C, "120.00"),
    ]
    assert book.state.cycles["2026-11"].status is CycleStatus.CLOSED
    for cycle in ("2026-10", "2026-11"):
        assert check_cycle_settled(book.postings, cycle) == []


def test_difference_notice_for_the_resettled_settlement(book: InMemoryBook) -> None:
    notices = book.payloads(DifferenceNotice)
    assert [n.agency for n in notices] == [A, B]
    for notice in notices:
        assert (notice.original_settlement_id, notice.settlement_id) == ("S1", "S1R")
        assert (notice.original_cycle, notice.cycle, notice.carried_into) == \
            ("2026-10", "2026-11", "2026-11")
        assert (notice.fund_pay, notice.account_pay, notice.cash_pay, notice.cleared_amount) == \
            (D("-80.00"), D("-20.00"), D("100.00"), D("-100.00"))


def test_difference_notice_inside_an_open_cycle_is_not_carried() -> None:
    s = completed("S7", insured=A, care=B, settled_at=at(10, 5), fund_pay="10.00")
    story: list[tuple[datetime, Payload]] = [
        (at(10, 5), s), (at(10, 6), refunded("R7", s, at(10, 6))),
        (at(10, 6, 11), completed("S7R", A, B, at(10, 6, 11), "12.00", resettles="S7"))]
    book = run(story, date(2026, 10, 5), date(2026, 10, 6))
    (notice, _) = book.payloads(DifferenceNotice)
    assert (notice.cycle, notice.carried_into, notice.cleared_amount) == \
        ("2026-10", None, D("2.00"))


def test_difference_notice_after_the_statements_of_a_refund_cleared_before_them() -> None:
    # S5 (31 Oct) refunded on 1 Nov, before October's statements: October shows both, nothing
    # is carried; the re-settlement of 3 Nov is a regular November item
    s5 = completed("S5", insured=C, care=B, settled_at=at(10, 31, 22), fund_pay="300.00")
    story: list[tuple[datetime, Payload]] = [
        (at(10, 31, 22), s5), (at(11, 1, 9), refunded("R5", s5, at(11, 1, 9))),
        (at(11, 3, 10), completed("S5R", C, B, at(11, 3, 10), "280.00", resettles="S5"))]
    book = run(story, date(2026, 10, 31), date(2026, 11, 3))
    (notice, _) = book.payloads(DifferenceNotice)
    assert (notice.original_cycle, notice.cycle, notice.carried_into, notice.cleared_amount) == \
        ("2026-10", "2026-11", None, D("-20.00"))


def test_difference_notice_names_the_cycle_the_refund_was_carried_into() -> None:
    # S1 (Oct) refunded 30 Nov: carried into November; settled again 1 Dec: a December item
    s1 = completed("S1", insured=A, care=B, settled_at=at(10, 3), fund_pay="1000.00")
    story: list[tuple[datetime, Payload]] = [
        (at(10, 3), s1), (at(11, 30, 23), refunded("R1", s1, at(11, 30, 23))),
        (at(12, 1, 0), completed("S1R", A, B, at(12, 1, 0), "900.00", resettles="S1"))]
    book = run(story, date(2026, 10, 3), date(2026, 12, 1))
    (notice, _) = book.payloads(DifferenceNotice)
    assert (notice.original_cycle, notice.cycle, notice.carried_into, notice.cleared_amount) == \
        ("2026-10", "2026-12", "2026-11", D("-100.00"))


def test_ledgers_hold_every_invariant(book: InMemoryBook) -> None:
    assert check_entries_balance(book.postings) == []
    assert check_reciprocity(book.postings) == []
    assert check_hub_nets_to_zero(book.postings) == []
    assert check_hub_never_overdrawn(book.postings) == []
    for agency in (A, B, C, HUB):
        assert verify_chain(book.ledger(agency)) is None
    statement = _statement(book, "2026-11", A)
    assert statement.chain_sequence is not None
    head = book.ledger(A)[statement.chain_sequence - 1]
    assert head.link == statement.chain_head


def test_balances_as_of_the_middle_of_november(book: InMemoryBook) -> None:
    mid = balances(book.postings, as_of=at(11, 16, 0))
    # October cleared into the hub: A has paid, C still owes 150, the hub holds 450
    assert payable(mid, A, HUB) == 0 and payable(mid, C, HUB) == D("150.00")
    assert receivable(mid, B, HUB) == D("600.00")
    # November so far: S1R owed, the refund of S1 and the late S6 carried in
    assert payable(mid, A, B) == D("-100.00") and receivable(mid, B, A) == D("-100.00")
    assert receivable(mid, C, B) == D("120.00")


def test_no_results_are_rejected(book: InMemoryBook) -> None:
    assert book.payloads(SubmissionRejected) == []


@pytest.mark.parametrize(("instruction", "amount", "agency", "code"), [
    ("NTI-2026-10-220281-hub", "150.01", C, "remittance_exceeds_outstanding"),
    ("NTI-2026-10-hub-220200", "1.00", None, "not_a_payer_instruction"),
    ("NTI-2026-10-220281-hub", "1.00", A, "not_the_payer"),
    ("NTI-2026-10-220281-hub", "0.00", C, "remittance_zero"),
    ("NTI-2031-01-220281-hub", "1.00", C, "unknown_instruction"),
])
def test_remittances_that_are_refused(instruction: str, amount: str, agency: str | None,
                                      code: str) -> None:
    book = run(STORY[:11], date(2026, 10, 1), date(2026, 11, 18))  # C has paid 200 of 350
    decision = book.apply(RemittanceReported(instruction_id=instruction, amount=D(amount),
                                             paid_at=at(11, 18), agency=agency),
                          EventRef("agency", "remit-x"))
    (result,) = decision.results
    assert isinstance(result.payload, SubmissionRejected)
    assert result.payload.reasons[0]["code"] == code
    assert decision.entries == ()


def test_late_items_are_carried_into_the_next_open_cycle() -> None:
    assert clearing_cycle("2026-10", None) == "2026-10"
    assert clearing_cycle("2026-10", "2026-09") == "2026-10"
    assert clearing_cycle("2026-10", "2026-10") == "2026-11"
    assert clearing_cycle("2026-08", "2026-10") == "2026-11"


@pytest.mark.parametrize(("received", "owed", "expected"), [
    ("0.00", {A: "100.00", C: "120.00"}, {A: "0.00", C: "0.00"}),
    ("110.00", {A: "100.00", C: "120.00"}, {A: "50.00", C: "60.00"}),
    ("0.01", {A: "1.00", C: "1.00"}, {A: "0.00", C: "0.00"}),  # rounding down holds the fen
    ("100.00", {A: "33.33", B: "33.33", C: "33.34"}, {A: "33.33", B: "33.33", C: "33.34"}),
    ("50.00", {A: "33.33", B: "33.33", C: "33.34"}, {A: "16.66", B: "16.66", C: "16.67"}),
])
def test_distribution_targets(received: str, owed: dict[str, str],
                              expected: dict[str, str]) -> None:
    targets = distribution_targets(D(received), {a: D(v) for a, v in owed.items()})
    assert {a: str(v) for a, v in targets.items()} == expected
    assert sum(targets.values()) <= D(received)


def test_a_decision_names_the_cycles_it_changed(book: InMemoryBook) -> None:
    late = completed("S9", insured=A, care=C, settled_at=at(11, 30), fund_pay="1.00")
    decision = book.decide(late, EventRef("test", "late-S9"))
    assert decision.changed_cycles == ("2026-12",)  # November's statements are out
    assert decision.items[0].is_adjustment
