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

import asyncio
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import TopicPartition

from services.registry import SERVICES, spec_of
from shared import topics
from shared.config import Settings
from shared.db import AUDITOR, apply_migrations, create_pool, role_url
from shared.messaging import clients as kafka_clients
from shared.messaging.processing import BatchProcessor, tune_gc
from shared.messaging.records import Record

Partition = tuple[str, int]
Position = tuple[str, int, int]
#: Published topics compared with what the replay rebuilt.
OUTPUTS = (topics.FILING_EVENTS, topics.SETTLEMENT_EVENTS, topics.CLEARING_RESULTS,
           topics.REIMBURSEMENT_EVENTS)
#: Batch size of a replay in log order (inbox order reproduces the live batches).
LOG_BATCH = 500
#: At most this many records in one replay transaction made of merged live transactions
#: (`Plan.transactions`).
MERGE_LIMIT = 5000


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
                   on_read: Callable[[int, int], None] | None = None, *,
                   principal: str | None = None) -> Log:
    """Read the topics from the beginning up to their end offsets at the start of the read."""
    consumer = kafka_clients.consumer(bootstrap=bootstrap, group_id=None,
                                      principal=principal or kafka_clients.AUDITOR,
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
    """Read the live service's inbox and rejected tables (read-only, as the auditor)."""
    conn = await asyncpg.connect(role_url(live_url, AUDITOR), server_settings={
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
    #: Per batch: every record of it is an event the live service took as new in that very
    #: transaction (an inbox row; no duplicate, no refused record). Only such batches are
    #: merged (`transactions`); empty for a plan in log order.
    plain: list[bool] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(len(b) for b in self.batches)

    def transactions(self, limit: int = MERGE_LIMIT) -> list[list[Record]]:
        """The batches to replay, consecutive *plain* live transactions merged into one (up
        to `limit` records); every other batch as it was.

        Why this gives the same state. The handlers carry the state of one transaction from
        event to event in memory and write it at its end; the next transaction loads what
        was written, so for events that all take effect, ``[A, B]`` in one transaction does
        what A then B did. Two things are not carried that way, and they are why only plain
        batches merge, and why a batch holding a ``clearing.schedule`` record (a day) always
        starts a transaction of its own:

        - a duplicate or a refused record moves the clearing service's read position only
          when its transaction ends (`observe`), so it could complete a day's cut later in
          a merged transaction than it did live; plain batches hold neither;
        - the filing service starts a day on the persons whose *stored* next deadline is
          due: a filing changed earlier in the same transaction is not among them. A day
          therefore never joins the transactions before it.

        Batches of a plan in log order are never merged.
        """
        if not self.plain:
            return self.batches
        merged: list[list[Record]] = []
        open_ = False  # the last merged transaction is plain and may take more
        for batch, plain in zip(self.batches, self.plain, strict=True):
            if (open_ and plain and len(merged[-1]) + len(batch) <= limit
                    and not any(r.topic == topics.CLEARING_SCHEDULE for r in batch)):
                merged[-1] = merged[-1] + batch
                continue
            merged.append(list(batch))
            open_ = plain
        return merged


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
    #: Records with an inbox row of their own (taken as new live), by object identity.
    taken_new: set[int] = set()
    for (topic, partition), records in partitions.items():
        anchored = [(i, taken.ranks[(topic, partition, r.offset)]) for i, r in enumerate(records)
                    if (topic, partition, r.offset) in taken.ranks]
        # The live service took a partition in offset order: its transactions follow the
        # offsets, and so do the events it took within one. A refused record is recorded
        # after the events of its transaction whatever its offset (`BatchProcessor`).
        times = [rank[0] for _, rank in anchored]
        took = [rank for _, rank in anchored if rank[1] == 0]
        if times != sorted(times) or took != sorted(took):
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
                if rank[1] == 0:
                    taken_new.add(id(record))
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
            plan.plain.append(True)
            batch_time = rank[0]
        plan.batches[-1].append(record)
        if id(record) not in taken_new:
            plan.plain[-1] = False
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


@dataclass
class RebuildResult:
    """What a rebuild did: the `BatchProcessor`'s counters and the transactions it ran."""

    processed: int = 0
    duplicates: int = 0
    rejected: int = 0
    commits: int = 0
    #: The clearing service's rebuilt ledgers, verified where they were rebuilt
    #: (`compare.ledger_chains`); None for the other services.
    chains: Any = None
    #: CPU seconds of the rebuild's own process (None when it ran in the audit's process).
    cpu_seconds: float | None = None


def combined(results: Sequence[RebuildResult]) -> RebuildResult:
    """The results of a service rebuilt in groups of persons, as one."""
    if len(results) == 1:
        return results[0]
    cpu = [r.cpu_seconds for r in results]
    return RebuildResult(sum(r.processed for r in results), sum(r.duplicates for r in results),
                         sum(r.rejected for r in results), sum(r.commits for r in results),
                         next((r.chains for r in results if r.chains is not None), None),
                         None if None in cpu else round(sum(cpu), 3))  # type: ignore[misc]


async def rebuild(service: str, audit_url: str, settings: Settings, plan: Any,
                  on_batch: Callable[[str, int], None] | None = None, *,
                  verify_chains: bool = True, merge_limit: int = MERGE_LIMIT,
                  stop_after: int | None = None) -> RebuildResult:
    """Run `service`'s real handler over the plan against the audit database (and, for the
    clearing service, verify the rebuilt ledgers' hash chains unless told not to).

    `plan` is a `Plan` in memory, or a `stream.PlanSummary` whose records are staged in the
    audit database: those are read back a page at a time, and a checkpoint is committed with
    every transaction, so that a rebuild stopped anywhere goes on from its last transaction
    (`stop_after`: stop, as an interruption would, after that many transactions)."""

    spec = spec_of(service)
    pool = await create_pool(audit_url, service, max_size=2)
    choices: LiveChoices | None = None
    try:
        await apply_migrations(pool, spec.migrations)
        handler = await spec.make_handler(pool, settings)
        if service == "clearing" and settings.database_url:
            choices = await LiveChoices.open(settings.database_url, service)
            if choices is not None:
                handler.calendar_on_log = choices
        if isinstance(plan, Plan):
            processor = BatchProcessor(pool, handler)
            for batch in plan.transactions(merge_limit):
                await processor.process(batch)
                if on_batch:
                    on_batch(service, len(batch))
        else:
            # the plan's own name: a service rebuilt in groups of persons has one per group
            processor = await _rebuild_staged(plan.service, audit_url, pool, handler,
                                              on_batch, merge_limit, stop_after)
        chains = None
        if service == "clearing" and verify_chains:
            async with pool.acquire() as conn:
                chains = await _ledger_chains(conn)
        return RebuildResult(processor.processed, processor.duplicates, processor.rejected,
                             processor.commits, chains)
    finally:
        if choices is not None:
            await choices.close()
        await pool.close()


class LiveChoices:
    """The clearing rebuild's answer to "may a day be on the log yet?" for a record read
    before any day: what the live service answered. It asked the broker, so its answer
    depended on when it asked; it kept every record it applied at once because no day was on
    the log (``sequencer_unmarked``, shared/messaging/sequencer.py), and the rebuild applies
    exactly those at once and holds the others, so that it posts in the live order. Read
    from the live database a window of offsets at a time (bounded memory)."""

    WINDOW = 20_000

    def __init__(self, conn: asyncpg.Connection, service: str):
        self._conn, self._table = conn, f"{service}.sequencer_unmarked"
        self._window: dict[Partition, tuple[int, int, set[int]]] = {}

    @classmethod
    async def open(cls, live_url: str, service: str) -> LiveChoices | None:
        """None when the live database keeps no such answers (an installation from before
        they were kept): the rebuild then asks the broker, as it did."""
        conn = await asyncpg.connect(role_url(live_url, AUDITOR), server_settings={
            "default_transaction_read_only": "on", "application_name": "clearinghouse-audit"})
        if await conn.fetchval("SELECT to_regclass($1)", f"{service}.sequencer_unmarked"):
            return cls(conn, service)
        await conn.close()
        return None

    async def __call__(self, record: Record) -> bool:
        part = (record.topic, record.partition)
        window = self._window.get(part)
        if window is None or not window[0] <= record.offset < window[1]:
            low, high = record.offset, record.offset + self.WINDOW
            rows = await self._conn.fetch(
                f"""SELECT "offset" FROM {self._table} WHERE topic = $1 AND "partition" = $2
                    AND "offset" >= $3 AND "offset" < $4""", *part, low, high)
            window = self._window[part] = (low, high, {r["offset"] for r in rows})
        return record.offset not in window[2]

    async def close(self) -> None:
        await self._conn.close()


async def _rebuild_staged(service: str, audit_url: str, pool: asyncpg.Pool, handler: Any,
                          on_batch: Callable[[str, int], None] | None, merge_limit: int,
                          stop_after: int | None) -> BatchProcessor:
    from tools.audit import stream

    reader = await asyncpg.connect(audit_url)
    try:
        start = await stream.checkpoint(reader, service)
        checkpointer = stream.Checkpointer(service)
        processor = BatchProcessor(pool, handler, in_transaction=checkpointer)
        if start.ord and on_batch:
            on_batch(service, start.ord)  # replayed before the interruption
        done = 0
        if not start.done:
            async for transaction, last in stream.transactions(reader, service, start.ord,
                                                                merge_limit):
                if stop_after is not None and done >= stop_after:
                    raise stream.Stopped(f"{service}: stopped after {done} transaction(s)")
                checkpointer.ord = last
                await processor.process(transaction)
                done += 1
                if on_batch:
                    on_batch(service, len(transaction))
            await stream.mark_done(reader, service)
        final = await stream.checkpoint(reader, service)
        processor.processed, processor.duplicates = final.processed, final.duplicates
        processor.rejected, processor.commits = final.rejected, final.commits
        return processor
    finally:
        await reader.close()


class RebuildDied(RuntimeError):
    """A rebuild process ended without an answer (killed, out of memory)."""


#: Plans with at least this many records are rebuilt in a process of their own (starting
#: one costs about a second of CPU: imports, reference data).
OWN_PROCESS_FROM = 5000


async def rebuild_anywhere(service: str, audit_url: str, settings: Settings, plan: Plan,
                           on_batch: Callable[[str, int], None] | None = None,
                           rebuilt: asyncio.Future[RebuildResult] | None = None, *,
                           processes: str = "auto",
                           merge_limit: int = MERGE_LIMIT,
                           stop_after: int | None = None) -> RebuildResult:
    """`rebuild`, in a separate (spawned) process when the plan is large: the services'
    rebuilds are independent (each has its own schema and its own inputs from the log),
    and a process each lets them use more than one core.

    `rebuilt` is given the result as soon as the handlers are done; the clearing service's
    process then verifies the rebuilt hash chains while the caller goes on (comparing
    tables), and the returned result carries them. `processes`: ``auto`` (a process of its
    own from `OWN_PROCESS_FROM` records), ``always`` or ``never``."""
    if processes == "never" or (processes == "auto" and plan.records < OWN_PROCESS_FROM):
        here = await rebuild(service, audit_url, settings, plan, on_batch,
                             merge_limit=merge_limit, stop_after=stop_after)
        if rebuilt is not None:
            rebuilt.set_result(here)
        return here
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_rebuild_process, name=f"audit-{service}",
                              args=(service, audit_url, settings, plan, child, merge_limit,
                                    stop_after),
                              daemon=True)
    process.start()
    child.close()
    result: RebuildResult | None = None
    answered = False
    try:
        while True:
            message = await asyncio.to_thread(_receive, parent)
            if message is None:
                raise RebuildDied(f"the {service} rebuild process ended without an answer "
                                  f"(exit code {process.exitcode})")
            kind, value = message
            if kind == "batch":
                if on_batch:
                    on_batch(service, value)
            elif kind == "done":
                result = value
                if rebuilt is not None:
                    rebuilt.set_result(result)
                if service != "clearing":
                    answered = True
                    return result  # type: ignore[no-any-return]
            elif kind == "chains" and result is not None:
                result.chains = value
                answered = True
                return result  # type: ignore[no-any-return]
            else:
                raise value if isinstance(value, BaseException) else RuntimeError(value)
    finally:
        if not answered and process.is_alive():
            process.terminate()  # cancelled or failed before its last answer: stop its work
        await asyncio.to_thread(process.join, 30)
        parent.close()
        if process.is_alive():
            process.kill()


def _receive(connection: Any) -> Any:
    try:
        return connection.recv()
    except EOFError:
        return None


def _rebuild_process(service: str, audit_url: str, settings: Settings, plan: Any,
                     connection: Any, merge_limit: int, stop_after: int | None) -> None:
    """The child's side of `rebuild_anywhere`."""
    import pickle

    from shared.logging import configure_logging
    from shared.running import die_with_parent

    die_with_parent(os.getppid())()  # an audit killed outright leaves no rebuild running

    configure_logging("ERROR")  # as the audit command: refused records are no news
    tune_gc()  # as the services
    try:
        import time

        result = asyncio.run(rebuild(service, audit_url, settings, plan,
                                     lambda _, n: connection.send(("batch", n)),
                                     verify_chains=False, merge_limit=merge_limit,
                                     stop_after=stop_after))
        result.cpu_seconds = round(time.process_time(), 3)
        connection.send(("done", result))
        if service == "clearing":
            connection.send(("chains", asyncio.run(_audit_chains(audit_url))))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent
        try:
            pickle.dumps(exc)
            connection.send(("error", exc))
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            connection.send(("error", repr(exc)))
    finally:
        connection.close()


async def _ledger_chains(conn: asyncpg.Connection) -> Any:
    from tools.audit.compare import ledger_chains

    return await ledger_chains(conn)


async def _audit_chains(audit_url: str) -> Any:
    conn = await asyncpg.connect(audit_url)
    try:
        return await _ledger_chains(conn)
    finally:
        await conn.close()

