"""Rebuild the three services from the log, in-process, into a fresh database.

The log is read from the beginning with a plain Kafka consumer. Each service gets its own
input topics, every partition in offset order, and runs its real handler behind a real
`BatchProcessor` against the audit database (its own migrations, inbox and outbox). What
the handlers decide to publish stays in the audit database's outbox tables: nothing is
published; `compare` holds it against what the live system published.

How the partitions of a service's inputs are interleaved (``order``):

- ``inbox`` (default): as the live service consumed them. Its inbox records the position,
  the transaction (``processed_at``) and the order (``seq``) of every event it took, and
  ``rejected`` every record it refused; the replay takes the same records in the same
  transactions in the same order. Records the live service skipped as duplicates go right
  after their predecessor in the partition; records it has not read yet are left out.
- ``log``: by the records' Kafka timestamps (then topic, partition, offset), independent of
  the live database. A service that folds two topics (settlement: filing.events and
  settlement.submissions) may then see a person's filing event and submission in another
  relative order than it did live, and decide differently.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.registry import SERVICES, spec_of
from shared import topics
from shared.config import Settings
from shared.db import apply_migrations, create_pool
from shared.messaging.processing import BatchProcessor
from shared.messaging.records import Record

Partition = tuple[str, int]
Position = tuple[str, int, int]
#: Published topics compared with what the replay rebuilt.
OUTPUTS = (topics.FILING_EVENTS, topics.SETTLEMENT_EVENTS, topics.CLEARING_RESULTS)
#: Batch size of a replay in log order (inbox order reproduces the live batches).
LOG_BATCH = 500


@dataclass
class Log:
    """Every record of the topics read, per partition in offset order (topics unprefixed)."""

    partitions: dict[Partition, list[Record]] = field(default_factory=dict)

    def of(self, topic_names: Iterable[str]) -> dict[Partition, list[Record]]:
        wanted = set(topic_names)
        return {tp: rs for tp, rs in sorted(self.partitions.items()) if tp[0] in wanted}

    def records(self, topic: str) -> list[Record]:
        return [r for tp, rs in sorted(self.partitions.items()) if tp[0] == topic for r in rs]

    def __len__(self) -> int:
        return sum(len(rs) for rs in self.partitions.values())


def topics_to_read() -> list[str]:
    """Every service's inputs, the published outputs and the dead-letter twins."""
    names = {t for name in SERVICES for t in spec_of(name).consumes} | set(OUTPUTS)
    names |= {topics.rejected(t) for t in topics.CONSUMED}
    return sorted(names)


async def read_log(bootstrap: str, prefix: str, topic_names: Iterable[str],
                   on_read: Callable[[int, int], None] | None = None) -> Log:
    """Read the topics from the beginning up to their end offsets at the start of the read."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_bytes=64 * 1024 * 1024,
                                max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    log = Log()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - every topic's partitions
        assigned = [TopicPartition(prefix + t, p) for t in topic_names
                    for p in sorted(consumer.partitions_for_topic(prefix + t) or ())]
        if not assigned:
            return log
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        total = sum(ends.values())
        for tp in assigned:
            log.partitions[(tp.topic[len(prefix):], tp.partition)] = []
        remaining = {tp for tp in assigned if ends[tp] > 0}
        read = 0
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=10_000)
            for tp, found in batch.items():
                kept = [r for r in found if r.offset < ends[tp]]
                log.partitions[(tp.topic[len(prefix):], tp.partition)].extend(
                    Record(topic=r.topic[len(prefix):], partition=r.partition, offset=r.offset,
                           key=r.key, value=r.value, headers=tuple(r.headers or ()),
                           timestamp_ms=r.timestamp or 0) for r in kept)
                read += len(kept)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            if on_read:
                on_read(read, total)
        return log
    finally:
        await consumer.stop()


# ---- the live service's consumption ---------------------------------------------------------

Rank = tuple[datetime, int, tuple[Any, ...]]


@dataclass
class Consumption:
    """What the live service took: the rank (transaction, order) of each position it
    recorded in its inbox or rejected, and the (source, id) of every event it took."""

    ranks: dict[Position, Rank] = field(default_factory=dict)
    ids: dict[tuple[str, str], Rank] = field(default_factory=dict)
    #: False when the live inbox has no ``seq``: the order within one transaction is then
    #: approximated by topic, partition and offset.
    exact: bool = True
    present: bool = False


async def live_consumption(live_url: str, service: str) -> Consumption:
    """Read the live service's inbox and rejected tables (read-only)."""
    conn = await asyncpg.connect(live_url, server_settings={
        "default_transaction_read_only": "on", "application_name": "clearinghouse-audit"})
    try:
        if await conn.fetchval("SELECT to_regclass($1)", f"{service}.inbox") is None:
            return Consumption(present=False)
        exact = bool(await conn.fetchval(
            """SELECT count(*) FROM information_schema.columns
               WHERE table_schema = $1 AND table_name = 'inbox' AND column_name = 'seq'""",
            service))
        order = "seq" if exact else "NULL::bigint"
        consumption = Consumption(exact=exact, present=True)
        for r in await conn.fetch(
                f'SELECT source, id, topic, "partition", "offset", processed_at, {order} AS seq '
                f"FROM {service}.inbox"):
            within = (r["seq"],) if exact else (r["topic"], r["partition"], r["offset"])
            rank: Rank = (r["processed_at"], 0, within)
            consumption.ranks[(r["topic"], r["partition"], r["offset"])] = rank
            consumption.ids[(r["source"], r["id"])] = rank
        numbered = bool(await conn.fetchval(
            """SELECT count(*) FROM information_schema.columns
               WHERE table_schema = $1 AND table_name = 'rejected' AND column_name = 'seq'""",
            service))
        for r in await conn.fetch(
                f'SELECT topic, "partition", "offset", rejected_at, '
                f'{"seq" if numbered else "NULL::bigint"} AS seq FROM {service}.rejected'):
            within = (r["seq"],) if numbered else (r["topic"], r["partition"], r["offset"])
            consumption.ranks[(r["topic"], r["partition"], r["offset"])] = (
                r["rejected_at"], 1, within)
        return consumption
    finally:
        await conn.close()


def event_identity(record: Record) -> tuple[str, str] | None:
    """(source, id) of a record's CloudEvent, or None when it has none."""
    try:
        document = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    source, id_ = document.get("source"), document.get("id")
    return (source, id_) if isinstance(source, str) and isinstance(id_, str) else None


# ---- the plan: which records, in which transactions ----------------------------------------


@dataclass
class Plan:
    """One service's replay: batches of records, each to be one transaction."""

    service: str
    batches: list[list[Record]] = field(default_factory=list)
    #: Records after the live service's read position: not replayed.
    unread: int = 0
    #: Records the live service passed over without a trace (neither taken nor refused nor a
    #: duplicate): replayed, and reported.
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(len(b) for b in self.batches)


def log_plan(service: str, partitions: dict[Partition, list[Record]]) -> Plan:
    """All records, merged by Kafka timestamp (then topic, partition, offset)."""
    merged = sorted((r for rs in partitions.values() for r in rs),
                    key=lambda r: (r.timestamp_ms, r.topic, r.partition, r.offset))
    return Plan(service, [merged[n:n + LOG_BATCH] for n in range(0, len(merged), LOG_BATCH)])


def inbox_plan(service: str, partitions: dict[Partition, list[Record]],
               taken: Consumption) -> Plan:
    """The records the live service read, in its transactions and in its order."""
    plan = Plan(service)
    placed: list[tuple[tuple[Rank, int], Record]] = []
    for (topic, partition), records in partitions.items():
        anchored = [(i, taken.ranks[(topic, partition, r.offset)]) for i, r in enumerate(records)
                    if (topic, partition, r.offset) in taken.ranks]
        ranks = [rank for _, rank in anchored]
        if ranks != sorted(ranks):
            raise ValueError(f"the live {service} inbox does not follow the order of "
                             f"{topic}/{partition}; replay with --order log")
        last_anchor = anchored[-1][0] if anchored else -1
        previous: Rank | None = None
        before: list[Record] = []
        step = 0
        for i, record in enumerate(records):
            rank = taken.ranks.get((topic, partition, record.offset))
            if rank is not None:
                placed += [((rank, n - len(before)), r) for n, r in enumerate(before)]
                before, previous, step = [], rank, 0
                placed.append(((rank, 0), record))
                continue
            identity = event_identity(record)
            duplicate = identity is not None and identity in taken.ids
            if i > last_anchor and not duplicate:
                plan.unread = len(records) - i + plan.unread
                break
            if not duplicate:
                plan.skipped.append(record.position)
            if previous is None and i < last_anchor:
                before.append(record)
                continue
            anchor = previous if previous is not None else taken.ids[identity]  # type: ignore[index]
            previous, step = anchor, step + 1
            placed.append(((anchor, step), record))
    placed.sort(key=lambda entry: entry[0])
    batch_time: datetime | None = None
    for (rank, _), record in placed:
        if rank[0] != batch_time or not plan.batches:
            plan.batches.append([])
            batch_time = rank[0]
        plan.batches[-1].append(record)
    if not taken.exact:
        plan.notes.append(f"the live {service} inbox has no seq column: within one live "
                          "transaction, records are replayed by topic, partition and offset")
    return plan


def reordered_keys(a: Plan, b: Plan, topic_names: Iterable[str]) -> list[str]:
    """Record keys (persons) whose records of `topic_names` come in another relative order
    in plan `a` than in plan `b`."""
    wanted = set(topic_names)

    def sequences(plan: Plan) -> dict[bytes | None, list[Position]]:
        found: dict[bytes | None, list[Position]] = defaultdict(list)
        for batch in plan.batches:
            for r in batch:
                if r.topic in wanted:
                    found[r.key].append((r.topic, r.partition, r.offset))
        return found

    left, right = sequences(a), sequences(b)
    differ = []
    for key in set(left) & set(right):
        common = set(left[key]) & set(right[key])
        if [p for p in left[key] if p in common] != [p for p in right[key] if p in common]:
            differ.append((key or b"").decode("utf-8", "replace"))
    return sorted(differ)


# ---- running the handlers -------------------------------------------------------------------


async def rebuild(service: str, audit_url: str, settings: Settings, plan: Plan,
                  on_batch: Callable[[str, int], None] | None = None) -> BatchProcessor:
    """Run `service`'s real handler over the plan against the audit database."""
    spec = spec_of(service)
    pool = await create_pool(audit_url, service, max_size=2)
    try:
        await apply_migrations(pool, spec.migrations)
        handler = await spec.make_handler(pool, settings)
        with _no_fault_injection():
            processor = BatchProcessor(pool, handler)
        for batch in plan.batches:
            await processor.process(batch)
            if on_batch:
                on_batch(service, len(batch))
        return processor
    finally:
        await pool.close()


@contextlib.contextmanager
def _no_fault_injection() -> Any:
    """The crash tests' fault injection must never stop an audit."""
    saved = os.environ.pop("CLEARINGHOUSE_CRASH_AFTER_COMMITS", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["CLEARINGHOUSE_CRASH_AFTER_COMMITS"] = saved
