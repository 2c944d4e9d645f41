"""The clearing service's handler: parse → load state → decide → store rows and outbox.

Reads ``settlement.events`` (obligations), ``clearing.submissions`` (agencies' answers
and remittances) and ``clearing.schedule`` (the calendar). A ``calendar.day_started``
carries watermarks: the log positions before which records belong to the previous day.
The day acts only once every input has been read up to its watermarks; records read
past them wait (``deferred``) until their place among the days is known, unless no day
that may come first could change their decision (`_Run`, `domain/ordering.py`); so live
processing and a replay act on exactly the same records, whatever order the partitions
are read in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self

import asyncpg
import structlog
from aiokafka import TopicPartition
from pydantic import Field

from services.clearing import store
from services.clearing.domain import calendar, ordering, submissions
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
from shared.events import Envelope, Rejection, decode, decoder, derived_id, make_event
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
from shared.messaging import clients as kafka_clients
from shared.messaging.processing import refusal_copies
from shared.messaging.records import Incoming, Outgoing, Record

log = structlog.get_logger(__name__)
SOURCE = "service/clearing"

#: Refusals of bad input (an agency answering for another), also kept on
#: clearing.submissions.rejected; other refusals are decisions only.
INPUT_REFUSALS = frozenset({"source_mismatch"})

#: The inputs a day's watermarks cut.
CUT_TOPICS = (topics.SETTLEMENT_EVENTS, topics.CLEARING_SUBMISSIONS)


class CompletedView(SettlementCompleted):
    """``settlement.completed`` as the clearing service reads it: the bill's items stay
    plain JSON, unchecked. The settlement service validated every item before it computed
    the amounts, and clearing uses only those amounts; validating 1 to 20 items again cost
    about 45 % of decoding the event (bench.micro)."""

    items: list[Any] = Field(min_length=1)

    def _bill_within_limit(self) -> Self:  # replaces the parent's check over the items
        return self


#: What the clearing service reads its inputs with (`decode`, but with `CompletedView`).
decode_input = decoder({(topics.SETTLEMENT_EVENTS, SettlementCompleted.TYPE): CompletedView})


class ClearingHandler:
    """Applies events to the clearing aggregate in an order a replay reproduces.

    `calendar_on_log` answers whether ``clearing.schedule`` holds any day yet (None:
    assume it may, as a replay of a log does): before the service has read a day, a
    record that a day could change is held back only when a day exists to be read.
    """

    #: Reads `settlement.completed` through `CompletedView` (`BatchProcessor` uses it).
    decode = staticmethod(decode_input)

    def __init__(self, calendar_on_log: Callable[[], Awaitable[bool]] | None = None):
        self.calendar_on_log = calendar_on_log

    async def handle(self, conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[Outgoing]:
        run = await _Run.load(conn, self.calendar_on_log)
        for incoming in batch:
            await run.take(incoming)
        await run.drain()
        await run.finish()
        return run.out

    async def observe(self, conn: asyncpg.Connection, records: Sequence[Record]) -> list[Outgoing]:
        """Duplicates and rejected records also move the cut: record them, then act on days
        whose cut they completed."""
        cut = [r for r in records if r.topic in CUT_TOPICS]
        if not cut:
            return []
        await store.advance_positions(conn, cut)
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pending_days)"):
            return []
        run = await _Run.load(conn, self.calendar_on_log)
        await run.drain()
        await run.finish()
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


#: Records held back are read back and applied this many at a time.
PAGE = 1000
#: Decisions are written out at least this often while held records are applied.
FLUSH_EVERY = 2000


class _Run:
    """One transaction's worth of clearing: the state, the cut, and what to publish.

    Where a record of ``settlement.events`` or ``clearing.submissions`` goes among the
    calendar's days is fixed by the days' watermarks alone, never by the order in which
    the partitions happen to be read. Days read but not acted on yet wait in
    ``pending_days`` (in log order) until every input has been read up to their
    watermarks. A record read

    - before the cut of the first pending day precedes that day: it is applied at once;
    - past the cut of the first pending day comes after it: held back (``deferred``)
      until that day has acted, then looked at again;
    - with no day pending, past the cut of every day read, belongs after the last day
      acted and before some day not read yet. It is applied at once when no day that may
      come before it would act differently for it, nor it for the day
      (`ordering.decidable_now`; daily reports take only items before their day's cut,
      `store.unreported_items`); otherwise it is held back until a day whose cut it
      precedes is read (then applied before that day acts), or until a day acted after
      which it is decidable.

    Before the first day is read the same holds, with no day acted yet; and while no day
    is on the log at all (`CalendarProbe`: a day published later cuts after what was
    written before it), records are applied as they are read.

    Records of a partition are applied in offset order: once one is held back, those
    after it on its partition wait behind it. Held records live in PostgreSQL, in the
    same transactions as everything else, so a crash or a redelivery changes nothing.
    """

    def __init__(self, conn: asyncpg.Connection, state: ClearingState,
                 positions: dict[tuple[str, int], int], pending: list[Record],
                 held: set[tuple[str, int]],
                 calendar_on_log: Callable[[], Awaitable[bool]] | None = None):
        self.conn = conn
        self._calendar_on_log = calendar_on_log
        #: Whether a day is on the log, once asked (before the calendar started).
        self._calendar_exists: bool | None = None
        self.state = state
        self.positions = positions
        self.pending = pending
        self._first_day: DayStarted | None = self._day(pending[0]) if pending else None
        #: Partitions with records held back (in the table or in `to_defer`).
        self.held = held
        self.started = state.today is not None or bool(pending)
        self.to_defer: list[Record] = []
        #: The held records must be looked at again (the first pending day changed, or a
        #: day acted). Not at the start: the transaction that left them held did.
        self.recheck = False
        self.out: list[Outgoing] = []
        #: Decisions' rows, written in one go (before anything reads those tables).
        self.writes = store.Writes()
        self.unflushed = 0

    @classmethod
    async def load(cls, conn: asyncpg.Connection,
                   calendar_on_log: Callable[[], Awaitable[bool]] | None = None) -> _Run:
        return cls(conn, await store.load_state(conn), await store.positions(conn),
                   await store.pending_days(conn), await store.held_partitions(conn),
                   calendar_on_log)

    async def take(self, incoming: Incoming) -> None:
        record = incoming.record
        if isinstance(incoming.event.data, DayStarted):
            await store.add_pending_day(self.conn, record)
            self.started = True
            self.pending.append(record)
            if len(self.pending) == 1:
                self._first_day = incoming.event.data
                self.recheck = bool(self.held)
            await self.drain()
            return
        key = (record.topic, record.partition)
        self.positions[key] = max(self.positions.get(key, 0), record.offset + 1)
        if key not in self.held:
            day = self._first_day
            if ((day is not None and not _past_cut(day, record))
                    or (day is None and await self.decidable(incoming.event))):
                await self.apply(incoming.event, record)
                await self.drain()
                return
        self.to_defer.append(record)
        self.held.add(key)
        await self.drain()

    async def drain(self) -> None:
        """Apply the held records whose place is now known (or that no day can change), and
        act on every pending day whose cut is reached, in order."""
        while True:
            if self.recheck:
                await self._release()
            if not (self._first_day and _cut_reached(self._first_day, self.positions)):
                return
            day_record = self.pending.pop(0)
            await self.apply(decode(day_record.topic, day_record.value))
            await store.drop_pending_day(self.conn, day_record)
            self._first_day = self._day(self.pending[0]) if self.pending else None
            self.recheck = bool(self.held)

    async def _release(self) -> None:
        """One pass over the held records in (topic, partition, offset) order: apply each
        that precedes the first pending day's cut or, with no day pending, is decidable
        now; the first one that must still wait stops its partition."""
        self.recheck = False
        await self._write_deferred()
        day = self._first_day
        after: tuple[str, int, int] = ("", -1, -1)
        still: set[tuple[str, int]] = set()
        while True:
            page = await store.deferred(self.conn, after, PAGE)
            if not page:
                break
            released: list[Record] = []
            for held in page:
                key = (held.topic, held.partition)
                if key in still:
                    continue
                if day is not None and _past_cut(day, held):
                    still.add(key)  # after the pending day: looked at once it has acted
                    continue
                event = decode_input(held.topic, held.value)
                if day is None and not await self.decidable(event):
                    still.add(key)
                    continue
                await self.apply(event, held)
                released.append(held)
            await store.drop_deferred(self.conn, released)
            last = page[-1]
            after = (last.topic, last.partition, last.offset)
            if (last.topic, last.partition) in still:
                after = (last.topic, last.partition, 2**62)  # skip the rest of it
        self.held = still

    async def _write_deferred(self) -> None:
        await store.defer(self.conn, self.to_defer)
        self.to_defer = []

    async def finish(self) -> None:
        await self._write_deferred()
        await self.flush()
        await store.save_state(self.conn, self.state)

    async def decidable(self, event: Envelope[Any]) -> bool:
        """May this record, past the cut of every day read, be decided now?"""
        payload = event.data
        report = None
        if isinstance(payload, DailyReportConfirmed | DailyReportDisputed):
            await self.flush()
            report = await store.report(self.conn, payload.agency, payload.date)
        if ordering.decidable_now(self.state, event.source, payload, report):
            return True
        # Before the calendar's first day is read: a day may still come first only if one
        # is on the log (a day published later cuts after this record).
        return not self.started and not await self._calendar_may_exist()

    async def _calendar_may_exist(self) -> bool:
        if self._calendar_exists is None:
            self._calendar_exists = (self._calendar_on_log is None
                                     or await self._calendar_on_log())
        return self._calendar_exists

    @staticmethod
    def _day(record: Record) -> DayStarted:
        day = decode(record.topic, record.value).data
        assert isinstance(day, DayStarted)
        return day

    async def apply(self, event: Envelope[Any], record: Record | None = None) -> None:
        bind_event(event.id, event.correlationid)
        decision = await self.decide(event)
        if decision is None:
            return
        if record is not None and record.topic.endswith(topics.CLEARING_SUBMISSIONS):
            # an agency answering for another: bad input, its bytes kept as such
            self.out += refusal_copies(record, [r.payload for r in decision.results],
                                       INPUT_REFUSALS)
        self.state = decision.state
        self.writes.add(decision, event.time, SOURCE, (event.id, event.correlationid),
                        (record.topic, record.partition, record.offset) if record else None)
        self.unflushed += 1
        if self.unflushed >= FLUSH_EVERY:
            await self.flush()

    async def flush(self) -> None:
        """Write the decisions taken so far; queue their results for publication."""
        self.unflushed = 0
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
                    unreported=(await store.unreported_items(self.conn, needs.unreported_through,
                                                             payload.watermarks)
                                if needs.unreported_through else []),
                    cycle_totals={c: await store.cycle_totals(self.conn, c)
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
    if not settings.kafka_bootstrap_servers:
        return ClearingHandler()
    return ClearingHandler(CalendarProbe(settings.kafka_bootstrap_servers,
                                         settings.topic_prefix + topics.CLEARING_SCHEDULE,
                                         principal=settings.kafka_principal))


class CalendarProbe:
    """Whether ``clearing.schedule`` holds a day yet: its end offset, asked of Kafka in the
    background (never inside a transaction, except the very first time). Once it does, it
    always will; "not yet" is asked again after `every` seconds. When Kafka cannot say, a
    day is assumed (records are then held back, never decided too early)."""

    def __init__(self, bootstrap: str, topic: str, every: float = 1.0,
                 principal: str | None = None):
        self.bootstrap, self.topic, self.every = bootstrap, topic, every
        self.principal = principal
        self.exists: bool | None = None
        self.asked = -1e9
        self._task: asyncio.Task[None] | None = None

    async def __call__(self) -> bool:
        if self.exists:
            return True
        if (self._task is None or self._task.done()) and (
                time.monotonic() - self.asked >= self.every):
            self.asked = time.monotonic()
            self._task = asyncio.ensure_future(self._ask())
        if self.exists is None:
            await asyncio.shield(self._task)  # type: ignore[arg-type]
        return bool(self.exists) if self.exists is not None else True

    async def _ask(self) -> None:
        consumer = kafka_clients.consumer(bootstrap=self.bootstrap, principal=self.principal,
                                        group_id=None,
                                    enable_auto_commit=False, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(consumer.start(), 10)
            parts = consumer.partitions_for_topic(self.topic) or {0}
            ends = await asyncio.wait_for(consumer.end_offsets(
                [TopicPartition(self.topic, p) for p in parts]), 10)
            self.exists = any(offset > 0 for offset in ends.values())
        except Exception as exc:  # noqa: BLE001 — unknown counts as "a day may exist"
            log.warning("calendar.probe_failed", error=repr(exc))
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
