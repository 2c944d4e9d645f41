"""An in-memory clearing book for unit and property tests: the clearing service's one
dispatch (`services.clearing.dispatch.decide`) folded over a sequence of events, with the
tables it reads kept in dictionaries (the PostgreSQL store mirrors them row for row).
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from services.clearing import dispatch
from services.clearing.domain.cycles import CycleTotals, cycle_totals
from services.clearing.domain.decisions import Decision, Result
from services.clearing.domain.fund import FundPolicy
from services.clearing.domain.items import ClearingItem, ItemKind
from services.clearing.domain.ledger import EventRef, Posting
from services.clearing.domain.reports import ReportRecord
from services.clearing.domain.state import ClearingState
from shared.events.base import Payload
from shared.messaging.sequencer import Watermarks

P = TypeVar("P", bound=Payload)
T = TypeVar("T")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (the in-memory lookups answer at once)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("the in-memory book awaited something that suspends")


@dataclass
class InMemoryBook:
    """The clearing aggregate plus its tables (items, daily reports, postings, results)."""

    state: ClearingState = field(default_factory=ClearingState)
    items: dict[str, ClearingItem] = field(default_factory=dict)
    reports: dict[tuple[str, date], ReportRecord] = field(default_factory=dict)
    postings: list[Posting] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    #: The revolving funds' reference data (None: no funds, as before they existed).
    fund_policy: FundPolicy | None = None

    def apply(self, payload: Payload, cause: EventRef) -> Decision:
        """Decide on one event, loading what the decision needs, and store the outcome."""
        decision = self.decide(payload, cause)
        self.store(decision)
        return decision

    def decide(self, payload: Payload, cause: EventRef) -> Decision:
        decision = _run(dispatch.decide(self.state, payload, cause, self))
        if decision is None:
            raise TypeError(f"clearing does not take {type(payload).__name__}")
        return decision

    # ---- dispatch.Lookups ----------------------------------------------------------------

    async def item(self, item_id: str) -> ClearingItem | None:
        return self.items.get(item_id)

    async def refund_items(self, hospital: str, settlement_id: str) -> list[ClearingItem]:
        return [i for i in self.items.values() if i.kind is ItemKind.REFUND
                and (i.hospital, i.settlement_id) == (hospital, settlement_id)]

    async def unreported_items(self, through: date, cut: Watermarks | None = None
                               ) -> list[ClearingItem]:
        """Every unreported item up to `through` (the book keeps no input positions: every
        item precedes every cut)."""
        return [i for i in self.items.values()
                if i.reported_on is None and i.business_date <= through]

    async def cycle_totals(self, cycle: str) -> CycleTotals:
        return cycle_totals(cycle, [i for i in self.items.values() if i.cycle == cycle])

    async def report(self, agency: str, day: date) -> ReportRecord | None:
        return self.reports.get((agency, day))

    async def settlement_items(self, agency: str, settlement_ids: list[str]
                               ) -> list[ClearingItem]:
        wanted = set(settlement_ids)
        return [i for i in self.items.values()
                if i.kind is ItemKind.SETTLEMENT and i.settlement_id in wanted
                and agency in (i.care_agency, i.insured_agency)]

    def revolving_fund_policy(self) -> FundPolicy | None:
        return self.fund_policy

    # ---- what the handler writes in one transaction (plus inbox and outbox) --------------

    def store(self, decision: Decision) -> None:
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
