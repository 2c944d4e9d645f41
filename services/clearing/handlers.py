"""The clearing service's handler: parse → load state → order → decide → store rows and outbox.

Reads ``settlement.events`` (obligations), ``clearing.submissions`` (agencies' answers and
remittances) and ``clearing.schedule`` (the calendar's days). A ``calendar.day_started``
carries watermarks that cut the other two inputs; the shared `Sequencer` applies each record
on the right side of every day's cut, whatever order the partitions are read in, so live
processing and a replay decide exactly the same. For each record it lets through, `_Batch`
refuses a sender acting for another agency, asks the one dispatch (`dispatch.decide`) for
the decision, and adds the decision's rows to the transaction (`store.Tables`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import structlog

from services.clearing import dispatch, store
from services.clearing.domain import ordering, submissions
from services.clearing.domain.ledger import EventRef
from services.clearing.domain.state import ClearingState
from shared import topics
from shared.config import Settings
from shared.events import Envelope, Rejection, decoder, derived_id, make_event
from shared.events.clearing import (
    DailyReportConfirmed,
    DailyReportDisputed,
    DayStarted,
    SubmissionRejected,
)
from shared.events.settlement import SettlementCompleted, SettlementRefunded
from shared.events.views import CompletedView
from shared.logging import bind_event
from shared.messaging.processing import refusal_copies
from shared.messaging.records import Incoming, Outgoing, Record
from shared.messaging.sequencer import Sequencer, Watermarks
from shared.messaging.topic_probe import TopicProbe

log = structlog.get_logger(__name__)
SOURCE = "service/clearing"

#: Refusals of bad input (an agency answering for another), also kept on
#: clearing.submissions.rejected; other refusals are decisions only.
INPUT_REFUSALS = frozenset({"source_mismatch"})

#: The inputs a day's watermarks cut.
CUT_TOPICS = (topics.SETTLEMENT_EVENTS, topics.CLEARING_SUBMISSIONS)

#: Decisions are written out at least this often while many records are applied.
FLUSH_EVERY = 2000

#: What the clearing service reads its inputs with (`decode`, but with `CompletedView`).
decode_input = decoder({(topics.SETTLEMENT_EVENTS, SettlementCompleted.TYPE): CompletedView})


class ClearingHandler:
    """The backbone's `Handler` for the clearing service (`BatchProcessor` calls it).

    `calendar_on_log` answers, for a record read before any day, whether
    ``clearing.schedule`` holds a day yet (None: assume it may; `make_handler` asks Kafka;
    the audit's replay asks what the live service answered, `tools.audit.replay.LiveChoices`).
    """

    #: Reads `settlement.completed` through `CompletedView` (`BatchProcessor` uses it).
    decode = staticmethod(decode_input)

    def __init__(self, calendar_on_log: Callable[[Record], Awaitable[bool]] | None = None):
        self.calendar_on_log = calendar_on_log

    async def handle(self, conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[Outgoing]:
        """Fresh events, in the order read: each applied now or held back for its day."""
        clearing, sequencer = await self._open(conn)
        for incoming in batch:
            await sequencer.take(incoming)
        return await self._close(clearing, sequencer)

    async def observe(self, conn: asyncpg.Connection, records: Sequence[Record]) -> list[Outgoing]:
        """Duplicates and rejected records also move the cut: record them, then act on days
        whose cut they completed."""
        if not await Sequencer.observe(conn, records, CUT_TOPICS):
            return []
        clearing, sequencer = await self._open(conn)
        return await self._close(clearing, sequencer)

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

    async def _open(self, conn: asyncpg.Connection) -> tuple[_Batch, Sequencer]:
        clearing = await _Batch.load(conn)
        sequencer = await Sequencer.load(conn, clearing, started=clearing.state.today is not None,
                                         markers_on_log=self.calendar_on_log)
        return clearing, sequencer

    @staticmethod
    async def _close(clearing: _Batch, sequencer: Sequencer) -> list[Outgoing]:
        await sequencer.drain()
        await sequencer.finish()
        await clearing.tables.save_state(clearing.state)
        return clearing.out


class _Batch:
    """One transaction of clearing: the aggregate, its tables, and what to publish. These
    are the `Rules` the sequencer applies records by."""

    decode = staticmethod(decode_input)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.state = ClearingState()
        self.out: list[Outgoing] = []
        self.tables = store.Tables(conn, self._publish)

    @classmethod
    async def load(cls, conn: asyncpg.Connection) -> _Batch:
        batch = cls(conn)
        batch.state = await batch.tables.load_state()
        return batch

    def watermarks(self, event: Envelope[Any]) -> Watermarks | None:
        """A calendar day cuts the inputs at its watermarks."""
        return event.data.watermarks if isinstance(event.data, DayStarted) else None

    async def decidable(self, event: Envelope[Any]) -> bool:
        """`ordering.decidable_now`, with the daily report an answer refers to."""
        payload = event.data
        report = None
        if isinstance(payload, DailyReportConfirmed | DailyReportDisputed):
            report = await self.tables.report(payload.agency, payload.date)
        return ordering.decidable_now(self.state, event.source, payload, report)

    async def apply(self, event: Envelope[Any], record: Record | None) -> None:
        """Decide on one event and add the decision's rows to the transaction."""
        bind_event(event.id, event.correlationid)
        payload, cause = event.data, EventRef(event.source, event.id)
        decision = submissions.refuse_other_sender(self.state, event.source, payload, cause)
        if decision is None:
            if not isinstance(payload, SettlementCompleted | SettlementRefunded):
                await self.tables.flush()  # the results so far go out before this one's
            decision = await dispatch.decide(self.state, payload, cause, self.tables)
        if decision is None:
            return  # settlement.rejected and refund_rejected owe no clearing
        if isinstance(payload, DayStarted):
            log.info("calendar.day_started", date=str(payload.date),
                     results=len(decision.results))
        if record is not None and record.topic.endswith(topics.CLEARING_SUBMISSIONS):
            # an agency answering for another: bad input, its bytes kept as such
            self.out += refusal_copies(record, [r.payload for r in decision.results],
                                       INPUT_REFUSALS)
        self.state = decision.state
        self.tables.add(decision, event.time, SOURCE, (event.id, event.correlationid),
                        (record.topic, record.partition, record.offset) if record else None)
        if self.tables.unflushed >= FLUSH_EVERY:
            await self.tables.flush()

    def _publish(self, key: str, envelope: Any, context: tuple[str, str | None]) -> None:
        cause_id, correlation = context
        bind_event(cause_id, correlation)
        log.info(envelope.type, agency=key, id=envelope.id)
        self.out.append(Outgoing.event(topics.CLEARING_RESULTS, key, envelope))


async def make_handler(pool: asyncpg.Pool, settings: Settings) -> ClearingHandler:
    """The handler as the service runs it: whether a day is on the log is asked of Kafka."""
    if not settings.kafka_bootstrap_servers:
        return ClearingHandler()
    return ClearingHandler(TopicProbe(settings.kafka_bootstrap_servers,
                                      settings.topic_prefix + topics.CLEARING_SCHEDULE,
                                      principal=settings.kafka_principal))
