"""`ordering.independent_of_days` for statement confirmations: one that resolves disputes
(which later statements would list) waits for its place among the calendar's days."""

from __future__ import annotations

from datetime import date

from services.clearing.domain.ledger import EventRef
from services.clearing.domain.ordering import independent_of_days
from shared.events.clearing import DayStarted, StatementConfirmed, StatementDisputed
from tests.clearing_book import InMemoryBook
from tests.unit.test_clearing_ledger import A, B, at, completed, ref

OCT = "2026-10"


def _october_issued() -> InMemoryBook:
    book = InMemoryBook()
    book.apply(completed("S1", A, B, at(10, 3), "100.00"), ref())
    book.apply(DayStarted(date=date(2026, 11, 2)), EventRef("calendar", "day-2026-11-02"))
    return book


def test_a_confirmation_that_resolves_nothing_is_independent_of_days() -> None:
    book = _october_issued()
    assert independent_of_days(book.state, f"agency/{A}", StatementConfirmed(agency=A,
                                                                             cycle=OCT))


def test_a_confirmation_withdrawing_a_statement_dispute_waits() -> None:
    book = _october_issued()
    book.apply(StatementDisputed(agency=A, cycle=OCT, settlement_ids=["S1"]), ref(f"agency/{A}"))
    confirmation = StatementConfirmed(agency=A, cycle=OCT)
    assert not independent_of_days(book.state, f"agency/{A}", confirmation)
    book.apply(confirmation, ref(f"agency/{A}"))  # withdraws it
    assert independent_of_days(book.state, f"agency/{A}", confirmation)  # a repeat
