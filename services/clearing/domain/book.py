"""An in-memory clearing book: the decisions folded over a sequence of events, with the
same lookups the handler makes against its tables. Used by the unit tests and for
replaying a log in memory (an audit rebuild); the PostgreSQL store mirrors it row for row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from services.clearing.domain import calendar, submissions
from services.clearing.domain.decisions import (
    Decision,
    Result,
    on_settlement_completed,
    on_settlement_refunded,
)
from services.clearing.domain.items import ClearingItem, settlement_key
from services.clearing.domain.ledger import EventRef, Posting
from services.clearing.domain.reports import ReportRecord
from services.clearing.domain.state import ClearingState
from shared.events.base import Payload
from shared.events.clearing import (
    DailyReportConfirmed,
    DailyReportDisputed,
    DayStarted,
    RemittanceReported,
    StatementConfirmed,
    StatementDisputed,
)
from shared.events.settlement import SettlementCompleted, SettlementRefunded

P = TypeVar("P", bound=Payload)


@dataclass
class InMemoryBook:
    """The clearing aggregate plus its tables (items, daily reports, postings, results)."""

    state: ClearingState = field(default_factory=ClearingState)
    items: dict[str, ClearingItem] = field(default_factory=dict)
    reports: dict[tuple[str, date], ReportRecord] = field(default_factory=dict)
    postings: list[Posting] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)

    def apply(self, payload: Payload, cause: EventRef) -> Decision:
        """Decide on one event, loading what the decision needs, and store the outcome."""
        decision = self.decide(payload, cause)
        self.store(decision)
        return decision

    def decide(self, payload: Payload, cause: EventRef) -> Decision:
        state = self.state
        match payload:
            case SettlementCompleted():
                original = (self.items.get(settlement_key(payload.hospital, payload.resettles))
                            if payload.resettles else None)
                return on_settlement_completed(state, payload, cause, original)
            case SettlementRefunded():
                return on_settlement_refunded(state, payload, cause)
            case DayStarted():
                return calendar.on_day_started(state, payload, cause, self.calendar_inputs(
                    calendar.needs(calendar.due_actions(state, payload.date))))
            case DailyReportConfirmed():
                return submissions.on_daily_report_confirmed(
                    state, payload, cause, self.reports.get((payload.agency, payload.date)))
            case DailyReportDisputed():
                return submissions.on_daily_report_disputed(
                    state, payload, cause, self.reports.get((payload.agency, payload.date)))
            case StatementConfirmed():
                return submissions.on_statement_confirmed(state, payload, cause)
            case StatementDisputed():
                return submissions.on_statement_disputed(state, payload, cause)
            case RemittanceReported():
                return submissions.on_remittance_reported(state, payload, cause)
        raise TypeError(f"clearing does not take {type(payload).__name__}")

    def calendar_inputs(self, needs: calendar.CalendarNeeds) -> calendar.CalendarInputs:
        """What the handler would select: unreported items up to a date, a cycle's items."""
        through = needs.unreported_through
        unreported = ([i for i in self.items.values()
                       if i.reported_on is None and i.business_date <= through]
                      if through is not None else [])
        return calendar.CalendarInputs(
            unreported=unreported,
            cycle_items={c: [i for i in self.items.values() if i.cycle == c]
                         for c in needs.statement_cycles})

    def store(self, decision: Decision) -> None:
        """What the handler does in one transaction (plus inbox and outbox)."""
        self.state = decision.state
        for item in decision.items:
            self.items[item.item_id] = item
        for report in decision.reports:
            self.reports[(report.agency, report.date)] = report
        self.postings += decision.postings
        self.results += decision.results

    def payloads(self, kind: type[P]) -> list[P]:
        """The results published so far of one type, in order."""
        return [r.payload for r in self.results if isinstance(r.payload, kind)]

    def ledger(self, agency: str) -> list[Posting]:
        """One agency's postings in sequence order: the input of `chain.verify_chain`."""
        return sorted((p for p in self.postings if p.agency == agency), key=lambda p: p.sequence)
