"""The backbone's consuming half: a batch of records becomes one database transaction.

For each batch: decode every record; records that break the contract are
recorded and forwarded to ``<topic>.rejected`` (original bytes, reason code in
the headers) with the sender's error event, and so are participants' submissions whose
signature does not verify (`Verifier`, docs/security.md); events already in the inbox are
skipped; the rest go to the service's handler, whose state changes, inbox rows
and outgoing events commit together. Only after that commit are offsets
committed, so a crash anywhere loses nothing and counts nothing twice.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
import structlog

from shared import participant_keys, signatures, topics
from shared.events import Envelope, Rejection, decode
from shared.messaging.records import Incoming, Outgoing, Record

log = structlog.get_logger(__name__)

#: Errors after which the same batch is tried again: the database or network went away.
TRANSIENT = (
    OSError, ConnectionError, asyncio.TimeoutError,
    asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
    asyncpg.SerializationError, asyncpg.DeadlockDetectedError, asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
)


class Handler(Protocol):
    """A service's side of the backbone."""

    async def handle(self, conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[Outgoing]:
        """Apply new events (in order) within the open transaction; return what to publish."""
        ...

    def answer_rejection(self, record: Record, rejection: Rejection) -> list[Outgoing]:
        """The error event owed to the sender of a rejected record, if the contract names one."""
        ...

    async def observe(self, conn: asyncpg.Connection, records: Sequence[Record]) -> list[Outgoing]:
        """Every record of the batch (fresh, duplicate or rejected) has been read: a handler
        that orders its inputs by log position (the clearing calendar) learns it here."""
        ...


def rejected_record(record: Record, rejection: Rejection) -> Outgoing:
    """The original bytes, forwarded to ``<topic>.rejected`` with the reason in headers."""
    return Outgoing(
        topic=topics.rejected(record.topic),
        key=record.key,
        value=record.value or b"",
        headers=(
            ("reason-code", rejection.code),
            ("reason", rejection.message[:1000]),
            ("original-topic", record.topic),
            ("original-partition", str(record.partition)),
            ("original-offset", str(record.offset)),
        ),
    )


def refusal_copies(record: Record, outcomes: Sequence[Any], codes: frozenset[str]
                   ) -> list[Outgoing]:
    """Bad input refused by a business rule rather than by the contract's form (unknown
    reference codes, a sender acting for another) is kept on ``<topic>.rejected`` too,
    original bytes and the first such reason, beside the decision event the sender gets."""
    for outcome in outcomes:
        # vars(): a pydantic model without the field would raise (and catch) AttributeError
        for reason in vars(outcome).get("reasons") or ():
            code = reason["code"] if isinstance(reason, dict) else reason.code
            if code in codes:
                message = reason["message"] if isinstance(reason, dict) else reason.message
                return [rejected_record(record, Rejection(code, message))]
    return []


async def write_outbox(conn: asyncpg.Connection, outgoing: Sequence[Outgoing]) -> None:
    if not outgoing:
        return
    await conn.copy_records_to_table(
        "outbox", columns=["topic", "key", "value", "headers"],
        records=[(o.topic, o.key, o.value, _headers_json(o.headers)) for o in outgoing],
    )


def _headers_json(headers: tuple[tuple[str, str], ...]) -> str:
    import orjson

    return orjson.dumps([list(h) for h in headers]).decode()


def tune_gc() -> None:
    """Garbage collection for a process that handles batches, once start-up is done.

    What start-up built (reference data, policies, pydantic's schemas) lives as long as the
    process: freezing it keeps the cyclic collector from scanning it again and again, and a
    higher first threshold lets it run less often (a batch allocates a few hundred thousand
    short-lived objects, few of them in cycles). docs/benchmarks.md, "What changed"."""
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


class Verifier:
    """Checks the participant's signature of every record on a signed topic (one place for
    the three services), against the key registry as the file stands (read again when it
    changes). With ``CLEARINGHOUSE_SIGNATURES=off`` (the bench's comparison only) it
    accepts everything."""

    def __init__(self, registry_path: Any = None, *, enabled: bool | None = None):
        self._path = registry_path
        self.enabled = signatures.enabled() if enabled is None else enabled

    def registry(self) -> signatures.KeyRegistry:
        return participant_keys.current_registry(self._path)

    def __call__(self, record: Record, event: Envelope[Any],
                 registry: signatures.KeyRegistry) -> None:
        if not self.enabled or record.topic not in signatures.SIGNED_TOPICS:
            return
        signatures.verify(record.value or b"", signatures.header_value(record.headers),
                          event.source, registry, record.time)


class BatchProcessor:
    """Turns record batches into committed effects for one service."""

    def __init__(self, pool: asyncpg.Pool, handler: Handler, *, on_commit: Any = None,
                 verifier: Verifier | None = None, in_transaction: Any = None):
        self._pool = pool
        #: Awaited inside every transaction committed, last, with (conn, events taken,
        #: duplicates, records refused, whether the transaction is the whole batch): the
        #: audit's replay commits its checkpoint with the effects (tools/audit/stream.py).
        self._in_transaction = in_transaction
        self._splitting = False
        self._handler = handler
        self._verify = verifier or Verifier()
        self._on_commit = on_commit
        #: A handler may read its inputs with a view of the contract (`shared.events.decoder`).
        self._decode = getattr(handler, "decode", decode)
        self.processed = 0
        self.duplicates = 0
        self.rejected = 0
        self.commits = 0

    async def process(self, records: Sequence[Record]) -> None:
        """Process a batch until it has committed; transient failures are retried with backoff."""
        decoded: list[Incoming] = []
        rejections: list[tuple[Record, Rejection]] = []
        registry = self._verify.registry() if self._verify.enabled else None
        for record in records:
            try:
                event = self._decode(record.topic, record.value)
                if registry is not None:
                    self._verify(record, event, registry)
                decoded.append(Incoming(record, event))
            except Rejection as rejection:
                rejections.append((record, rejection))
        await self._process(decoded, rejections)
        if self._on_commit is not None:
            self._on_commit()

    async def _process(
        self, decoded: list[Incoming], rejections: list[tuple[Record, Rejection]]
    ) -> None:
        try:
            await self._retrying(decoded, rejections)
        except TRANSIENT:
            raise
        except Exception as exc:  # a bug or a poison event: isolate it, keep the rest
            if len(decoded) > 1:
                log.warning("batch.split", error=repr(exc), records=len(decoded))
                self._splitting = True
                try:
                    for one in decoded:
                        await self._process([one], [])
                    if rejections:
                        await self._retrying([], rejections)
                finally:
                    self._splitting = False
            elif decoded:
                log.exception("event.failed", position=decoded[0].record.position)
                failed = Rejection("processing_failed", f"could not be processed: {exc!r}")
                await self._retrying([], [*rejections, (decoded[0].record, failed)])
            else:
                raise

    async def _retrying(
        self, decoded: list[Incoming], rejections: list[tuple[Record, Rejection]]
    ) -> None:
        delay = 0.1
        while True:
            try:
                await self._commit(decoded, rejections)
                return
            except TRANSIENT as exc:
                log.warning("batch.retry", error=repr(exc), retry_in=delay,
                            records=len(decoded) + len(rejections))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _commit(
        self, decoded: list[Incoming], rejections: list[tuple[Record, Rejection]]
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await self._claim(conn, decoded)
            outgoing = await self._handler.handle(conn, fresh) if fresh else []
            for record, rejection in rejections:
                is_new = await conn.fetchval(
                    """INSERT INTO rejected (topic, "partition", "offset", reason_code, reason)
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true""",
                    record.topic, record.partition, record.offset, rejection.code,
                    rejection.message[:1000],
                )
                if is_new:
                    log.warning("record.rejected", position=record.position,
                                reason_code=rejection.code, reason=rejection.message[:300])
                    outgoing.append(rejected_record(record, rejection))
                    outgoing.extend(self._handler.answer_rejection(record, rejection))
            outgoing += await self._handler.observe(
                conn, [i.record for i in decoded] + [r for r, _ in rejections])
            await write_outbox(conn, outgoing)
            if self._in_transaction is not None:
                await self._in_transaction(conn, len(fresh), len(decoded) - len(fresh),
                                           len(rejections), not self._splitting)
        self.commits += 1
        self.processed += len(fresh)
        self.duplicates += len(decoded) - len(fresh)
        self.rejected += len(rejections)

    @staticmethod
    async def _claim(conn: asyncpg.Connection, decoded: list[Incoming]) -> list[Incoming]:
        """Insert inbox rows; return, in order, the events that had not taken effect before."""
        if not decoded:
            return []
        first: dict[tuple[str, str], Incoming] = {}
        for incoming in decoded:
            first.setdefault(incoming.key, incoming)
        rows = await conn.fetch(
            """INSERT INTO inbox (source, id, topic, "partition", "offset")
               SELECT source, id, topic, "partition", "offset"
               FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[])
                    WITH ORDINALITY AS r(source, id, topic, "partition", "offset", n)
               ORDER BY n
               ON CONFLICT DO NOTHING RETURNING source, id""",
            [k[0] for k in first], [k[1] for k in first],
            [i.record.topic for i in first.values()],
            [i.record.partition for i in first.values()],
            [i.record.offset for i in first.values()],
        )
        claimed = {(r["source"], r["id"]) for r in rows}
        return [i for k, i in first.items() if k in claimed]
