"""The clearing service's handler: parse → load state → decide → store rows and outbox.

Reads ``settlement.events`` (obligations), ``clearing.submissions`` (agencies' answers
and remittances) and ``clearing.schedule`` (the calendar). A ``calendar.day_started``
carries watermarks: the log positions before which records belong to the previous day.
The day acts only once every input has been read up to its watermarks, and records
read past them wait (``deferred``) until it has; so live processing and a replay act on
exactly the same records, whatever order the partitions are read in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog

from services.clearing import store
from services.clearing.domain import calendar, submissions
from services.clearing.domain.decisions import (
    Decision,
    Draft,
    on_settlement_completed,
    on_settlement_refunded,
)
from services.clearing.domain.items import settlement_key
from services.clearing.domain.ledger import EventRef
from services.clearing.domain.state import ClearingState
from shared import topics
from shared.config import Settings
from shared.events import Envelope, Rejection, decode, derived_id, make_event
from shared.events.clearing import (
    DailyReportConfirmed,
    DailyReportDisputed,
    DayStarted,
    RemittanceReported,
    StatementConfirmed,
    StatementDisputed,
    SubmissionRejected,
)
from shared.events.settlement import SettlementCompleted, SettlementRefunded
from shared.logging import bind_event
from shared.messaging.records import Incoming, Outgoing, Record

log = structlog.get_logger(__name__)
SOURCE = "service/clearing"
#: The inputs a day's watermarks cut.
CUT_TOPICS = (topics.SETTLEMENT_EVENTS, topics.CLEARING_SUBMISSIONS)


class ClearingHandler:
    """Applies events to the clearing aggregate in an order a replay reproduces."""

    async def handle(self, conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[Outgoing]:
        run = _Run(conn, await store.load_state(conn), await store.positions(conn),
                   await store.pending_days(conn))
        for incoming in batch:
            await run.take(incoming)
        await run.drain()
        await run.flush()
        await store.save_state(conn, run.state)
        return run.out

    async def observe(self, conn: asyncpg.Connection, records: Sequence[Record]) -> list[Outgoing]:
        """Duplicates and rejected records also move the cut: record them, then act on days
        whose cut they completed."""
        cut = [r for r in records if r.topic in CUT_TOPICS]
        if not cut:
            return []
        await store.advance_positions(conn, cut)
        run = _Run(conn, await store.load_state(conn), await store.positions(conn),
                   await store.pending_days(conn))
        if not run.pending:
            return []
        await run.drain()
        await run.flush()
        await store.save_state(conn, run.state)
        return run.out

    def answer_rejection(self, record: Record, rejection: Rejection) -> list[Outgoing]:
        """An agency's submission that broke the contract is answered to that agency."""
        if record.topic != topics.CLEARING_SUBMISSIONS:
            return []
        data = rejection.document.get("data")
        agency = data.get("agency") if isinstance(data, dict) else None
        agency = agency if isinstance(agency, str) and agency else (
            (record.key or b"").decode("utf-8", "replace"))
        if not agency:
            return []
        try:
            payload = SubmissionRejected(
                agency=agency, submission_type=str(rejection.document.get("type"))[:100],
                reasons=[{"code": rejection.code, "message": rejection.message[:500]}])
        except Exception:
            return []
        event = make_event(payload, id=derived_id("rejected", record.position), source=SOURCE,
                           time=record.time, subject=agency)
        return [Outgoing.event(topics.CLEARING_RESULTS, agency, event)]


class _Run:
    """One transaction's worth of clearing: the state, the cut, and what to publish."""

    def __init__(self, conn: asyncpg.Connection, state: ClearingState,
                 positions: dict[tuple[str, int], int], pending: list[Record]):
        self.conn = conn
        self.state = state
        self.positions = positions
        self.pending = pending
        self.out: list[Outgoing] = []
        #: Decisions' rows, written in one go (before anything reads those tables).
        self.writes = store.Writes()

    async def take(self, incoming: Incoming) -> None:
        record = incoming.record
        if isinstance(incoming.event.data, DayStarted):
            await store.add_pending_day(self.conn, record)
            self.pending.append(record)
            await self.drain()
            return
        key = (record.topic, record.partition)
        self.positions[key] = max(self.positions.get(key, 0), record.offset + 1)
        if self.pending and _past_cut(self._day(self.pending[0]), record):
            await store.defer(self.conn, record)
            return
        await self.apply(incoming.event)
        await self.drain()

    async def drain(self) -> None:
        """Act on every pending day whose cut is reached, then on the records it held back."""
        while self.pending and _cut_reached(self._day(self.pending[0]), self.positions):
            day_record = self.pending.pop(0)
            await self.apply(decode(day_record.topic, day_record.value))
            await store.drop_pending_day(self.conn, day_record)
            for held in await store.deferred(self.conn):
                if self.pending and _past_cut(self._day(self.pending[0]), held):
                    continue
                await self.apply(decode(held.topic, held.value))
                await store.drop_deferred(self.conn, held)

    @staticmethod
    def _day(record: Record) -> DayStarted:
        day = decode(record.topic, record.value).data
        assert isinstance(day, DayStarted)
        return day

    async def apply(self, event: Envelope[Any]) -> None:
        bind_event(event.id, event.correlationid)
        decision = await self.decide(event)
        if decision is None:
            return
        self.state = decision.state
        self.writes.add(decision, event.time, SOURCE, (event.id, event.correlationid))

    async def flush(self) -> None:
        """Write the decisions taken so far; queue their results for publication."""
        if not self.writes:
            return
        for key, envelope, (cause_id, correlation) in await self.writes.flush(self.conn):
            bind_event(cause_id, correlation)
            log.info(envelope.type, agency=key, id=envelope.id)
            self.out.append(Outgoing.event(topics.CLEARING_RESULTS, key, envelope))

    async def decide(self, event: Envelope[Any]) -> Decision | None:
        payload, state = event.data, self.state
        cause = EventRef(event.source, event.id)
        refused = _sender_refused(state, event, cause)
        if refused is not None:
            return refused
        if not isinstance(payload, SettlementCompleted | SettlementRefunded):
            await self.flush()  # what follows reads the tables
        match payload:
            case SettlementCompleted():
                original = (await self.writes.item(self.conn, settlement_key(
                    payload.hospital, payload.resettles)) if payload.resettles else None)
                return on_settlement_completed(state, payload, cause, original)
            case SettlementRefunded():
                return on_settlement_refunded(state, payload, cause)
            case DayStarted():
                needs = calendar.needs(calendar.due_actions(state, payload.date))
                inputs = calendar.CalendarInputs(
                    unreported=(await store.unreported_items(self.conn, needs.unreported_through)
                                if needs.unreported_through else []),
                    cycle_items={c: await store.cycle_items(self.conn, c)
                                 for c in needs.statement_cycles})
                decision = calendar.on_day_started(state, payload, cause, inputs)
                log.info("calendar.day_started", date=str(payload.date),
                         results=len(decision.results))
                return decision
            case DailyReportConfirmed() | DailyReportDisputed():
                report = await store.report(self.conn, payload.agency, payload.date)
                if isinstance(payload, DailyReportConfirmed):
                    return submissions.on_daily_report_confirmed(state, payload, cause, report)
                return submissions.on_daily_report_disputed(state, payload, cause, report)
            case StatementConfirmed():
                return submissions.on_statement_confirmed(state, payload, cause)
            case StatementDisputed():
                return submissions.on_statement_disputed(state, payload, cause)
            case RemittanceReported():
                return submissions.on_remittance_reported(state, payload, cause)
        return None  # settlement.rejected and refund_rejected owe no clearing


def _sender_refused(state: ClearingState, event: Envelope[Any], cause: EventRef
                    ) -> Decision | None:
    """An agency answers only for itself: its envelope source must be ``agency/<code>`` of
    the agency the submission is about (for a remittance, the instruction's payer)."""
    payload = event.data
    if not isinstance(payload, (DailyReportConfirmed, DailyReportDisputed, StatementConfirmed,
                                StatementDisputed, RemittanceReported)):
        return None
    claimed = payload.agency
    if isinstance(payload, RemittanceReported):
        cycle = state.cycle_of_instruction(payload.instruction_id)
        if cycle is not None:
            claimed = state.cycles[cycle].instructions[payload.instruction_id].payer
    if claimed is None or event.source == f"agency/{claimed}":
        return None
    sender = event.source.removeprefix("agency/")
    draft = Draft.of(state)
    draft.reject(cause, payload, sender, [{
        "code": "source_mismatch",
        "message": f"sent by {event.source} about agency {claimed}: an agency answers only "
                   f"for itself, with source agency/<its code>"}])
    return draft.decision()


def _past_cut(day: DayStarted, record: Record) -> bool:
    marks = day.watermarks.get(record.topic)
    if not marks:
        return False
    mark = marks.get(str(record.partition))
    return mark is not None and record.offset >= mark


def _cut_reached(day: DayStarted, positions: dict[tuple[str, int], int]) -> bool:
    return all(positions.get((topic, int(partition)), 0) >= mark
               for topic, marks in day.watermarks.items()
               for partition, mark in marks.items() if mark > 0)


async def make_handler(pool: asyncpg.Pool, settings: Settings) -> ClearingHandler:
    return ClearingHandler()
