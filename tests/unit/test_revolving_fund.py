"""The revolving fund (周转金), hand-worked: interest to the fen for a month with a top-up in
the middle, a warning exactly at the threshold, draws for overdue remittances and their
repayment, the year-end credit and the required level from the last cycles' payables
(docs/clearing.md, "The revolving fund").

A = 220100, B = 220200, C = 220281, as in test_clearing_cycle.py, whose story (three
agencies through October to December 2026) the draws and the warning run on.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from services.clearing.domain import fund, submissions
from services.clearing.domain.chain import verify_chain
from services.clearing.domain.cycles import instruction_id
from services.clearing.domain.decisions import Draft
from services.clearing.domain.fund import FundPolicy, FundTerms
from services.clearing.domain.ledger import (
    AccountKind,
    EventRef,
    balances,
    check_entries_balance,
    check_hub_nets_to_zero,
    check_reciprocity,
)
from services.clearing.domain.state import ClearingState, FundAccount
from services.clearing.fund_reference import load_fund_policy, parse_policy
from shared.business_time import SHANGHAI
from shared.events.base import Payload
from shared.events.clearing import (
    HUB,
    DayStarted,
    RemittanceReported,
    RevolvingFundDrawn,
    RevolvingFundInterestAccrued,
    RevolvingFundInterestCredited,
    RevolvingFundOpened,
    RevolvingFundRepaid,
    RevolvingFundRequiredLevelSet,
    RevolvingFundToppedUp,
    RevolvingFundTopUpAccepted,
    RevolvingFundWarning,
    SubmissionRejected,
)
from shared.reference import ReferenceDataError
from tests.clearing_book import InMemoryBook
from tests.unit.test_clearing_cycle import STORY
from tests.unit.test_clearing_ledger import A, B, C, at, completed

D = Decimal


def policy(**funds: tuple[str, str]) -> FundPolicy:
    """0.35 % a year, ACT/360, warning at 50 %, required level = 2 months of payables."""
    return FundPolicy(version="test", warning_share=D("0.50"), annual_rate=D("0.0035"),
                      day_count=360, months_covered=D("2"),
                      funds={a: FundTerms(a, D(advance), D(level))
                             for a, (advance, level) in funds.items()})


def run(book: InMemoryBook, story: Iterable[tuple[datetime, Payload]], first: date,
        last: date) -> InMemoryBook:
    """A DayStarted each day, then that day's events (in time order)."""
    pending = sorted(story, key=lambda pair: pair[0])
    day, n = first, 0
    while day <= last:
        book.apply(DayStarted(date=day), EventRef("calendar", f"day-{day}"))
        while pending and pending[0][0].date() == day:
            n += 1
            book.apply(pending.pop(0)[1], EventRef(f"agency/{A}", f"event-{n}"))
        day += timedelta(days=1)
    return book


def top_up(amount: str, paid_at: datetime, top_up_id: str = "T-1", agency: str = A
           ) -> RevolvingFundToppedUp:
    return RevolvingFundToppedUp(agency=agency, top_up_id=top_up_id, amount=D(amount),
                                 paid_at=paid_at)


def on(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


# ---- interest -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def june() -> InMemoryBook:
    """1,000,000.00 from 1 June; 250,000.00 paid in on 15 June; the calendar to 1 July."""
    book = InMemoryBook(fund_policy=policy(**{A: ("1000000.00", "1000000.00")}))
    return run(book, [(on(date(2026, 6, 15)), top_up("250000.00", on(date(2026, 6, 15))))],
               date(2026, 6, 1), date(2026, 7, 1))


def test_interest_for_a_month_with_a_top_up_in_the_middle(june: InMemoryBook) -> None:
    # 1,000,000.00 × 0.0035 / 360 = 9.7222… → 9.72 a day, 1 to 14 June: 14 × 9.72 = 136.08
    # the top-up, booked on the 15th, counts from the 15th:
    # 1,250,000.00 × 0.0035 / 360 = 12.1527… → 12.15 a day, 15 to 30 June: 16 × 12.15 = 194.40
    accrued = [e for e in june.payloads(RevolvingFundInterestAccrued) if e.date.month == 6]
    assert [str(e.interest) for e in accrued] == ["9.72"] * 14 + ["12.15"] * 16
    assert accrued[-1].accrued_this_year == D("330.48")
    assert sum((e.interest for e in accrued), D(0)) == D("330.48")
    assert june.state.funds[A].balance == D("1250000.00")  # credited only at year end


def test_top_up_is_acknowledged_with_the_new_balance(june: InMemoryBook) -> None:
    (accepted,) = june.payloads(RevolvingFundTopUpAccepted)
    assert (accepted.top_up_id, accepted.amount, accepted.balance) == (
        "T-1", D("250000.00"), D("1250000.00"))
    (opened,) = june.payloads(RevolvingFundOpened)
    assert (opened.agency, opened.date, opened.balance) == (A, date(2026, 6, 1),
                                                            D("1000000.00"))


def test_the_funds_ledger_explains_its_balance(june: InMemoryBook) -> None:
    ledger = june.ledger(fund.ledger_of(A))
    assert verify_chain(ledger) is None
    assert check_entries_balance(ledger) == []
    balance = balances(ledger)
    key = (fund.ledger_of(A), AccountKind.FUND_BALANCE, A)
    assert balance[key] == D("1250000.00")
    assert balance[(fund.ledger_of(A), AccountKind.INTEREST_ACCRUED, A)] == D("330.48")
    # every posting names its cause: the calendar day or the agency's top-up
    assert {p.cause.source for p in ledger} == {"calendar", f"agency/{A}"}


@pytest.mark.parametrize(("balance", "rate", "day_count", "interest"), [
    ("1000000.00", "0.0035", 360, "9.72"),     # 9.7222…
    ("1250000.00", "0.0035", 360, "12.15"),    # 12.1527…
    ("1000000.00", "0.0035", 365, "9.59"),     # 9.5890…
    ("1285714.29", "0.0035", 360, "12.50"),    # 12.49999…: half up at the fen
    ("0.00", "0.0035", 360, "0.00"),
    ("-5000.00", "0.0035", 360, "0.00"),       # an overdrawn fund earns nothing
])
def test_daily_interest(balance: str, rate: str, day_count: int, interest: str) -> None:
    terms = FundPolicy("t", D("0.5"), D(rate), day_count, D("2"))
    assert terms.daily_interest(D(balance)) == D(interest)


def test_year_end_credits_the_years_interest_and_interest_then_accrues_on_it() -> None:
    book = InMemoryBook(fund_policy=policy(**{A: ("1000000.00", "1000000.00")}))
    run(book, [], date(2026, 12, 30), date(2027, 1, 2))
    accrued = book.payloads(RevolvingFundInterestAccrued)
    # 30 and 31 December at 9.72; credited: 19.44; 1 January on 1,000,019.44: 9.7224… → 9.72
    assert [(str(e.date), str(e.interest)) for e in accrued] == [
        ("2026-12-30", "9.72"), ("2026-12-31", "9.72"), ("2027-01-01", "9.72")]
    (credited,) = book.payloads(RevolvingFundInterestCredited)
    assert (credited.year, credited.amount, credited.balance) == (2026, D("19.44"),
                                                                 D("1000019.44"))
    assert book.state.funds[A].accrued == D("9.72")


# ---- warnings -------------------------------------------------------------------------------


@pytest.mark.parametrize(("balance", "warns"), [
    ("500000.01", False),  # one fen above 50 % of 1,000,000.00
    ("500000.00", True),   # exactly at the threshold
    ("499999.99", True),
])
def test_warning_at_or_below_the_threshold(balance: str, warns: bool) -> None:
    state = ClearingState(funds={A: FundAccount(
        agency=A, balance=D(balance), required_level=D("1000000.00"),
        accrued_through=date(2026, 6, 1), level_year=2026)})
    draft = Draft.of(state)
    fund.check_warnings(draft, policy(**{A: ("1000000.00", "1000000.00")}), date(2026, 6, 2))
    warnings = [r for r in draft.results if isinstance(r.payload, RevolvingFundWarning)]
    assert [r.key for r in warnings] == ([A, HUB] if warns else [])
    assert state.funds[A].warned is False  # the state given is never changed
    if warns:
        warning = warnings[0].payload
        assert (warning.threshold, warning.shortfall) == (
            D("500000.00"), D("1000000.00") - D(balance))


@pytest.fixture(scope="module")
def story() -> InMemoryBook:
    """test_clearing_cycle's story with funds: C's 450.00 of a required 600.00 (warning at
    300.00), B's 1,000.00 of 1,000.00, A's 5,000.00 of 5,000.00; run to 2 January 2027."""
    book = InMemoryBook(fund_policy=policy(**{
        A: ("5000.00", "5000.00"), B: ("1000.00", "1000.00"), C: ("450.00", "600.00")}))
    return run(book, STORY, date(2026, 10, 1), date(2027, 1, 2))


def test_overdue_remittances_are_drawn_from_the_payers_fund(story: InMemoryBook) -> None:
    # C paid 200.00 of 350.00 by the due date (Sunday 15 November moves to Monday the
    # 16th): 150.00 drawn on the 17th; B paid nothing of November's 220.00 by Tuesday
    # 15 December: 220.00 drawn on the 16th
    assert [(d.agency, str(d.date), d.cycle, str(d.amount), str(d.balance))
            for d in story.payloads(RevolvingFundDrawn)] == [
        (C, "2026-11-17", "2026-10", "150.00", "300.00"),
        (B, "2026-12-16", "2026-11", "220.00", "780.00")]


def test_late_remittances_pay_the_fund_back(story: InMemoryBook) -> None:
    assert [(r.agency, str(r.amount), str(r.balance))
            for r in story.payloads(RevolvingFundRepaid)] == [
        (C, "150.00", "450.00"), (B, "110.00", "890.00"), (B, "110.00", "1000.00")]
    assert {a: story.state.funds[a].drawn for a in (A, B, C)} == {A: {}, B: {}, C: {}}


def test_a_draw_to_exactly_the_threshold_warns_agency_and_province_once(
        story: InMemoryBook) -> None:
    warnings = [r for r in story.results if isinstance(r.payload, RevolvingFundWarning)]
    assert [(r.key, r.payload.agency, str(r.payload.date), str(r.payload.balance),
             str(r.payload.threshold), str(r.payload.shortfall)) for r in warnings] == [
        (C, C, "2026-11-17", "300.00", "300.00", "300.00"),
        (HUB, C, "2026-11-17", "300.00", "300.00", "300.00")]
    assert story.state.funds[C].warned is False  # re-armed by the repayment on the 22nd


def test_required_level_from_the_last_cycles_payables(story: InMemoryBook) -> None:
    # on 1 January 2027, A's statements of October (payable 1,000.00 + 250.00 = 1,250.00)
    # and November (900.00): average 1,075.00, times 2 months = 2,150.00
    levels = {e.agency: e for e in story.payloads(RevolvingFundRequiredLevelSet)}
    assert (levels[A].cycles, str(levels[A].average_payable), str(levels[A].required_level),
            str(levels[A].previous_level)) == (
        ["2026-10", "2026-11"], "1075.00", "2150.00", "5000.00")
    assert str(levels[A].date) == "2027-01-01"
    assert story.state.funds[A].required_level == D("2150.00")


def test_fund_ledgers_keep_the_clearing_invariants(story: InMemoryBook) -> None:
    assert check_entries_balance(story.postings) == []
    assert check_reciprocity(story.postings) == []
    assert check_hub_nets_to_zero(story.postings) == []
    for agency in (A, B, C):
        assert verify_chain(story.ledger(fund.ledger_of(agency))) is None
        assert verify_chain(story.ledger(agency)) is None


def test_without_funds_the_story_is_unchanged(story: InMemoryBook) -> None:
    plain = run(InMemoryBook(), STORY, date(2026, 10, 1), date(2027, 1, 2))
    ordinary = [r for r in story.results if not r.payload.TYPE.startswith(
        "clearing.revolving_fund")]
    assert ordinary == plain.results
    assert [p for p in story.postings if not p.agency.startswith("fund/")] == plain.postings


# ---- top-ups refused ------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "code"), [
    (top_up("100.00", on(date(2026, 6, 3)), agency=B), "no_revolving_fund"),
    (top_up("100.00", on(date(2026, 6, 3)), top_up_id="T-1"), "duplicate_top_up"),
    (top_up("0.00", on(date(2026, 6, 3)), top_up_id="T-2"), "top_up_zero"),
])
def test_top_up_refused(payload: RevolvingFundToppedUp, code: str) -> None:
    book = InMemoryBook(fund_policy=policy(**{A: ("1000.00", "1000.00")}))
    run(book, [(on(date(2026, 6, 2)), top_up("100.00", on(date(2026, 6, 2))))],
        date(2026, 6, 1), date(2026, 6, 3))
    before = book.state.funds
    decision = book.apply(payload, EventRef(f"agency/{payload.agency}", "again"))
    (rejected,) = [r.payload for r in decision.results]
    assert isinstance(rejected, SubmissionRejected)
    assert rejected.reasons[0]["code"] == code
    assert decision.entries == () and book.state.funds == before


def test_a_top_up_for_another_agency_is_refused() -> None:
    book = InMemoryBook(fund_policy=policy(**{A: ("1000.00", "1000.00")}))
    run(book, [], date(2026, 6, 1), date(2026, 6, 1))
    cause = EventRef(f"agency/{B}", "x")
    decision = submissions.refuse_other_sender(book.state, cause.source,
                                               top_up("100.00", on(date(2026, 6, 1))), cause)
    assert decision is not None
    (rejected,) = [r.payload for r in decision.results]
    assert rejected.reasons[0]["code"] == "source_mismatch"


# ---- reference data -------------------------------------------------------------------------


def test_the_repositorys_reference_data_loads() -> None:
    loaded = load_fund_policy()
    assert loaded is not None and loaded.day_count == 360
    assert loaded.funds[A].initial_advance == D("1800000.00")


@pytest.mark.parametrize(("terms", "fragment"), [
    ({"warning_share": "0.5", "annual_rate": "0.0035", "day_count": "30/360",
      "months_covered": "2"}, "day_count"),
    ({"warning_share": 0.5, "annual_rate": "0.0035", "day_count": "ACT/360",
      "months_covered": "2"}, "warning_share"),
    ({"warning_share": "1.5", "annual_rate": "0.0035", "day_count": "ACT/360",
      "months_covered": "2"}, "at most"),
])
def test_bad_reference_data_is_refused(terms: dict[str, object], fragment: str) -> None:
    with pytest.raises(ReferenceDataError, match=fragment):
        parse_policy({"version": "x", "terms": terms,
                      "fund": [{"agency": A, "initial_advance": "1.00",
                                "required_level": "1.00"}]})


def test_a_repayment_rearms_the_warning_before_the_next_draw() -> None:
    # C (450.00 of 600.00, warning at 300.00) owes October's 350.00 and November's 200.00;
    # October's is drawn on 17 Nov (100.00 left: warned) and repaid on 15 Dec (450.00,
    # above the threshold again); November's draw on the 16th (250.00) warns again
    book = InMemoryBook(fund_policy=policy(**{C: ("450.00", "600.00")}))
    run(book, [
        (at(10, 5), completed("S1", insured=C, care=A, settled_at=at(10, 5), fund_pay="350.00")),
        (at(11, 5), completed("S2", insured=C, care=A, settled_at=at(11, 5), fund_pay="200.00")),
        (at(12, 15), RemittanceReported(instruction_id=instruction_id("2026-10", C, HUB),
                                        amount=D("350.00"), paid_at=at(12, 15), agency=C)),
    ], date(2026, 10, 1), date(2026, 12, 16))
    assert [(str(w.date), str(w.balance)) for w in book.payloads(RevolvingFundWarning)] == [
        ("2026-11-17", "100.00"), ("2026-11-17", "100.00"),
        ("2026-12-16", "250.00"), ("2026-12-16", "250.00")]
