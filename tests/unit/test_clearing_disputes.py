"""The daily reconciliation's dispute loop: dispute → correction → re-confirmation
(services/clearing/domain/disputes.py), folded through the clearing's one dispatch."""

from __future__ import annotations

from datetime import date

from services.clearing.domain.ledger import EventRef
from services.clearing.domain.state import Dispute
from shared.events.clearing import (
    DailyReportConfirmed,
    DailyReportDisputed,
    DayStarted,
    DisputeCorrected,
    DisputeOpened,
    DisputeResolved,
    StatementConfirmed,
    StatementDisputed,
    StatementIssued,
)
from tests.clearing_book import InMemoryBook
from tests.unit.test_clearing_ledger import A, B, C, at, completed, ref, refunded

OCT = "2026-10"


def _day(book: InMemoryBook, day: date) -> None:
    book.apply(DayStarted(date=day), EventRef("calendar", f"day-{day}"))


def _agency(code: str) -> EventRef:
    return ref(f"agency/{code}")


def _notices(book: InMemoryBook) -> list[tuple[str, str, str, str]]:
    """(type, addressee key, addressed agency, settlement) of every dispute notice."""
    return [(r.payload.TYPE, r.key, r.payload.agency, r.payload.settlement_id)
            for r in book.results
            if isinstance(r.payload, DisputeOpened | DisputeCorrected | DisputeResolved)]


def test_dispute_correction_and_reconfirmation_close_the_loop() -> None:
    book = InMemoryBook()
    s1 = completed("S1", A, B, at(10, 3), "500.00", hospital="H1")
    book.apply(s1, ref("hospital/H1"))
    _day(book, date(2026, 10, 4))  # reports 2026-10-03 to A (insuring) and B (care)

    # 1. A disputes S1: both A and the care-place agency B are told
    book.apply(DailyReportDisputed(agency=A, date=date(2026, 10, 3), settlement_ids=["S1"],
                                   reason="not our insured"), _agency(A))
    opened = book.payloads(DisputeOpened)
    assert [(n.agency, n.disputed_by, n.hospital, n.counterpart) for n in opened] == [
        (A, A, "H1", B), (B, A, "H1", B)]
    assert opened[0].report_date == date(2026, 10, 3)
    assert opened[0].reason == "not our insured"
    assert book.state.open_disputes() == {A: ["S1"]}

    # 2. the hospital refunds it (and settles again): corrected, no longer listed
    book.apply(refunded("R1", s1, at(10, 6)), ref("hospital/H1"))
    corrected = book.payloads(DisputeCorrected)
    assert [(n.agency, n.refund_id, n.hospital) for n in corrected] == [
        (A, "R1", "H1"), (B, "R1", "H1")]
    assert book.state.open_disputes() == {}
    assert book.state.disputes[A]["S1"].status == "corrected"
    book.apply(completed("S1b", A, B, at(10, 6), "450.00", resettles="S1", hospital="H1"),
               ref("hospital/H1"))

    # confirming a report that does not carry the correction closes nothing
    _day(book, date(2026, 10, 6))  # the report of the 5th: nothing of A's
    _day(book, date(2026, 10, 7))  # the report of the 6th carries R1 (and S1b)
    report = book.reports[(A, date(2026, 10, 6))]
    assert "S1" in report.settlement_ids

    # 3. A re-confirms by confirming the report that carries the correction
    book.apply(DailyReportConfirmed(agency=A, date=date(2026, 10, 6),
                                    checksum=report.checksum), _agency(A))
    resolved = book.payloads(DisputeResolved)
    assert [(n.agency, n.outcome, n.confirmed_report_date, n.counterpart) for n in resolved] == [
        (A, "reconfirmed", date(2026, 10, 6), B), (B, "reconfirmed", date(2026, 10, 6), B)]
    assert book.state.disputes[A] == {}

    # every notice is keyed by its addressee, so it reaches clearing.results.<agency>
    assert all(key == agency for _, key, agency, _ in _notices(book))
    assert len({r.event_id for r in book.results}) == len(book.results)


def test_confirming_the_disputed_report_withdraws_the_dispute() -> None:
    book = InMemoryBook()
    book.apply(completed("S1", A, B, at(10, 3), "5.00"), ref())
    _day(book, date(2026, 10, 4))
    day = date(2026, 10, 3)
    book.apply(DailyReportDisputed(agency=A, date=day, settlement_ids=["S1"]), _agency(A))
    book.apply(DailyReportConfirmed(agency=A, date=day), _agency(A))
    assert [(n.agency, n.outcome) for n in book.payloads(DisputeResolved)] == [
        (A, "withdrawn"), (B, "withdrawn")]
    assert book.state.open_disputes() == {}


def test_a_correction_disputed_again_opens_a_new_dispute() -> None:
    book = InMemoryBook()
    s1 = completed("S1", A, B, at(10, 3), "5.00")
    book.apply(s1, ref())
    _day(book, date(2026, 10, 4))
    book.apply(DailyReportDisputed(agency=A, date=date(2026, 10, 3), settlement_ids=["S1"]),
               _agency(A))
    book.apply(refunded("R1", s1, at(10, 5)), ref())
    _day(book, date(2026, 10, 6))
    book.apply(DailyReportDisputed(agency=A, date=date(2026, 10, 5), settlement_ids=["S1"],
                                   reason="refund amount wrong"), _agency(A))
    assert book.state.disputes[A]["S1"] == Dispute(
        settlement_id="S1", report_date=date(2026, 10, 5), reason="refund amount wrong",
        hospital=f"H{B}", counterpart=B)
    assert book.state.open_disputes() == {A: ["S1"]}
    assert len(book.payloads(DisputeOpened)) == 4  # twice, to A and B each


def test_a_refund_corrects_only_the_disputes_of_its_hospital() -> None:
    book = InMemoryBook()
    mine = completed("S1", A, B, at(10, 3), "5.00", hospital="H1")
    other = completed("S1", A, B, at(10, 3), "7.00", hospital="H2")  # same id, other hospital
    book.apply(mine, ref("hospital/H1"))
    book.apply(other, ref("hospital/H2"))
    _day(book, date(2026, 10, 4))
    book.apply(DailyReportDisputed(agency=A, date=date(2026, 10, 3), settlement_ids=["S1"]),
               _agency(A))
    # two settlements S1: the dispute cannot name one hospital or counterpart, so only A hears
    assert [(n.agency, n.hospital) for n in book.payloads(DisputeOpened)] == [(A, None)]
    book.apply(refunded("R9", other, at(10, 5)), ref("hospital/H2"))
    assert book.state.disputes[A]["S1"].status == "corrected"
    assert book.state.disputes[A]["S1"].hospital == "H2"


def test_statement_disputes_reach_the_counterpart_and_close_on_confirmation() -> None:
    book = InMemoryBook()
    book.apply(completed("S1", A, C, at(10, 3), "5.00"), ref())
    _day(book, date(2026, 11, 2))  # October's statements
    statement = {s.agency: s for s in book.payloads(StatementIssued)}[A]
    book.apply(StatementDisputed(agency=A, cycle=OCT, settlement_ids=["S1"], reason="x"),
               _agency(A))
    assert [(n.agency, n.statement_cycle, n.counterpart)
            for n in book.payloads(DisputeOpened)] == [(A, OCT, C), (C, OCT, C)]
    _day(book, date(2026, 11, 3))
    book.apply(StatementConfirmed(agency=A, cycle=OCT, checksum=statement.checksum),
               _agency(A))
    # confirming the statement the dispute was raised against withdraws it (docs/clearing.md,
    # "The dispute loop"), as confirming a disputed daily report does
    assert [(n.agency, n.outcome, n.confirmed_statement_cycle)
            for n in book.payloads(DisputeResolved)] == [(A, "withdrawn", OCT),
                                                          (C, "withdrawn", OCT)]
    assert book.state.open_disputes() == {}


def test_confirming_a_statement_again_closes_no_later_dispute() -> None:
    book = InMemoryBook()
    book.apply(completed("S1", A, B, at(10, 3), "100.00", hospital="H1"), ref("hospital/H1"))
    _day(book, date(2026, 10, 4))
    book.apply(DailyReportDisputed(agency=A, date=date(2026, 10, 3), settlement_ids=["S1"]),
               _agency(A))
    _day(book, date(2026, 11, 2))  # October's statement lists S1
    statement = {s.agency: s for s in book.payloads(StatementIssued)}[A]
    assert statement.disputed_settlement_ids == ["S1"]
    book.apply(StatementConfirmed(agency=A, cycle=OCT), _agency(A))  # withdraws it
    assert len(book.payloads(DisputeResolved)) == 2
    # A disputes S1 again, against its daily report, then sends its confirmation once more
    book.apply(DailyReportDisputed(agency=A, date=date(2026, 10, 3), settlement_ids=["S1"],
                                   reason="again"), _agency(A))
    book.apply(StatementConfirmed(agency=A, cycle=OCT), _agency(A))
    assert len(book.payloads(DisputeResolved)) == 2
    assert book.state.open_disputes() == {A: ["S1"]}
