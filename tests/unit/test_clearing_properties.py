"""Properties of clearing over random months: random settlements (some late, some within
one agency), refunds, re-settlements and partial remittances between random agencies,
with the calendar ticking every day. Whatever happens, the books must hold."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.clearing.domain.chain import verify_chain
from services.clearing.domain.cycles import (
    check_hub_pays_out_what_it_takes_in,
    check_nets_sum_to_zero,
)
from services.clearing.domain.ledger import (
    EventRef,
    check_cycle_settled,
    check_entries_balance,
    check_hub_nets_to_zero,
    check_hub_never_overdrawn,
    check_reciprocity,
)
from services.clearing.domain.state import ClearingState, CycleStatus
from shared.business_time import SHANGHAI
from shared.events.base import Payload
from shared.events.clearing import (
    HUB,
    DayStarted,
    NetTransferInstruction,
    RemittanceReported,
    StatementIssued,
)
from shared.events.settlement import SettlementCompleted
from shared.money import from_fen, to_fen
from tests.clearing_book import InMemoryBook
from tests.unit.test_clearing_ledger import completed, refunded

Operation = tuple[Any, ...]
"""("settle", insured, care, cleared fen, cash fen, days late, hour), ("refund", pick),
("resettle", pick, cleared fen) or ("remit", pick, percent of what is outstanding)."""

AGENCIES = ["220100", "220200", "220281", "320500"]
START = date(2026, 10, 1)
STORY_DAYS = 80
#: After the story, payers pay up and the calendar runs until every cycle can close: cycle
#: 2027-01's payout falls on Saturday 20 Feb 2027, moved to Monday the 22nd (working days).
END = date(2027, 2, 23)

agency = st.sampled_from(AGENCIES)
settle = st.tuples(st.just("settle"), agency, agency, st.integers(0, 300_000),
                   st.integers(0, 100_000), st.integers(0, 3), st.integers(0, 23))
refund = st.tuples(st.just("refund"), st.integers(0, 10**6))
resettle = st.tuples(st.just("resettle"), st.integers(0, 10**6), st.integers(0, 300_000))
remit = st.tuples(st.just("remit"), st.integers(0, 10**6), st.integers(1, 100))
operation = st.one_of(settle, settle, settle, refund, resettle, remit)
stories = st.lists(st.tuples(st.integers(0, STORY_DAYS), operation), min_size=10, max_size=80)


@dataclass
class World:
    """The book plus what the test needs to invent plausible follow-up events."""

    book: InMemoryBook = field(default_factory=InMemoryBook)
    settlements: list[SettlementCompleted] = field(default_factory=list)
    refunded: list[SettlementCompleted] = field(default_factory=list)
    resettled: set[str] = field(default_factory=set)
    events: int = 0
    round_trip: bool = False

    def apply(self, payload: Payload) -> None:
        self.events += 1
        before = self.book.state.to_json()
        decision = self.book.decide(payload, EventRef("test", f"e{self.events}"))
        assert self.book.state.to_json() == before, "a decision changed the state it was given"
        self.book.store(decision)
        if self.round_trip:  # the stored state must be as good as the live one
            self.book.state = ClearingState.from_json(self.book.state.to_json())

    def outstanding(self) -> list[tuple[str, Decimal, str]]:
        return [(i.instruction_id, i.outstanding, i.payer)
                for _, c in sorted(self.book.state.cycles.items()) for i in c.payers()
                if i.outstanding > 0]

    def act(self, op: Operation, moment: datetime) -> None:
        match op:
            case ("settle", insured, care, cleared, cash, late, hour):
                settled_at = datetime.combine(moment.date() - timedelta(days=late),
                                              time(hour), SHANGHAI)
                fund = cleared * 7 // 10
                s = completed(f"S{len(self.settlements)}", insured, care, settled_at,
                              str(from_fen(fund)), str(from_fen(cleared - fund)),
                              str(from_fen(cash)))
                self.settlements.append(s)
                self.apply(s)
            case ("refund", pick):
                open_ = [s for s in self.settlements if s not in self.refunded]
                if open_:
                    s = open_[pick % len(open_)]
                    self.refunded.append(s)
                    self.apply(refunded(f"R-{s.settlement_id}", s, moment))
            case ("resettle", pick, cleared):
                candidates = [s for s in self.refunded if s.settlement_id not in self.resettled]
                if candidates:
                    s = candidates[pick % len(candidates)]
                    self.resettled.add(s.settlement_id)
                    again = completed(f"S{len(self.settlements)}", s.insured_agency,
                                      s.care_agency, moment, str(from_fen(cleared)),
                                      resettles=s.settlement_id, hospital=s.hospital)
                    self.settlements.append(again)
                    self.apply(again)
            case ("remit", pick, percent):
                owed = self.outstanding()
                if owed:
                    iid, outstanding, payer = owed[pick % len(owed)]
                    amount = from_fen(max(1, to_fen(outstanding) * percent // 100))
                    self.apply(RemittanceReported(instruction_id=iid, amount=amount,
                                                  paid_at=moment, agency=payer))


def run(story: list[tuple[int, Operation]], round_trip: bool = False) -> World:
    world = World(round_trip=round_trip)
    by_day: dict[int, list[Operation]] = {}
    for offset, op in story:
        by_day.setdefault(offset, []).append(op)
    day = START
    while day <= END:
        world.apply(DayStarted(date=day))
        offset = (day - START).days
        for n, op in enumerate(by_day.get(offset, [])):
            world.act(op, datetime.combine(day, time(8, n % 60), SHANGHAI))
        if offset > STORY_DAYS:
            for iid, outstanding, payer in world.outstanding():
                world.apply(RemittanceReported(instruction_id=iid, amount=outstanding,
                                               paid_at=datetime.combine(day, time(9), SHANGHAI),
                                               agency=payer))
        day += timedelta(days=1)
    return world


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stories)
def test_the_books_always_hold(story: list[tuple[int, Operation]]) -> None:
    world = run(story)
    book = world.book
    postings = book.postings
    assert check_entries_balance(postings) == []
    assert check_reciprocity(postings) == []
    assert check_hub_nets_to_zero(postings) == []
    assert check_hub_never_overdrawn(postings) == []
    for ledger in {p.agency for p in postings}:
        assert verify_chain(book.ledger(ledger)) is None

    statements = book.payloads(StatementIssued)
    instructions = book.payloads(NetTransferInstruction)
    assert check_nets_sum_to_zero(statements) == []
    assert check_hub_pays_out_what_it_takes_in(instructions) == []

    # every item is in the statements of exactly its two agencies, in exactly one cycle
    items_per_cycle = Counter(i.cycle for i in book.items.values())
    lines_per_cycle: Counter[str] = Counter()
    for s in statements:
        lines_per_cycle[s.cycle] += sum(x.receivable_count + x.payable_count + x.adjustment_count
                                        for x in s.lines)
    assert lines_per_cycle == Counter({c: 2 * n for c, n in items_per_cycle.items()})

    # each agency is told to move exactly its net
    nets = {(s.cycle, s.agency): s.net for s in statements}
    for i in instructions:
        party, sign = (i.payee, 1) if i.payer == HUB else (i.payer, -1)
        assert nets[(i.cycle, party)] == sign * i.amount

    # once payers have paid up, every cycle closes with nothing owed and the hub empty
    for cycle, cycle_state in book.state.cycles.items():
        assert cycle_state.status is CycleStatus.CLOSED, cycle
        assert check_cycle_settled(postings, cycle) == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stories)
def test_replaying_the_log_rebuilds_the_same_results(
    story: list[tuple[int, Operation]],
) -> None:
    first, second = run(story), run(story, round_trip=True)
    assert first.book.results == second.book.results
    assert first.book.postings == second.book.postings
    assert first.book.state == second.book.state
