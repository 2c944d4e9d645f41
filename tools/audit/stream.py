"""The replay in bounded memory: the log is staged in the audit database, partition by
partition, the plans are made there, and each service's rebuild reads its transactions back
a page at a time; a checkpoint is committed with every replayed transaction, so an
interrupted audit resumes where it stopped (`clearinghouse audit replay --resume NAME`).

What is in memory at any time: one page of records (`PAGE`), one replay transaction (at most
`replay.MERGE_LIMIT` records, or one live transaction when that is larger), the records of a
partition before its first inbox row (none in practice), and the positions the live service
passed over. The plan is the same as `replay.inbox_plan` / `replay.log_plan` would make from the
whole log in memory (tests/integration/test_audit.py holds them side by side).

Tables (schema ``audit_log`` of the audit database, beside the services' rebuilt schemas):
``records`` the staged log; ``positions`` how far each partition is staged; ``placed`` /
``plan`` a service's records in replay order with their live transaction (``batch``);
``plans`` each plan's summary; ``checkpoints`` each rebuild's last committed plan row and
counters; ``state`` what is done.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import TopicPartition

from shared import topics
from shared.db import AUDITOR, role_url
from shared.messaging import clients as kafka_clients
from shared.messaging.records import Record
from tools.audit import replay

SCHEMA = "audit_log"
#: Records per COPY while staging and per read while replaying.
PAGE = 2000
C = 'COLLATE "C"'  # the order of Python's str comparisons

STAGE_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.records (
    topic text NOT NULL, "partition" integer NOT NULL, "offset" bigint NOT NULL,
    key bytea, value bytea, headers bytea NOT NULL, timestamp_ms bigint NOT NULL,
    source text, id text, event_id text,
    PRIMARY KEY (topic, "partition", "offset"));
CREATE TABLE IF NOT EXISTS {SCHEMA}.positions (
    topic text NOT NULL, "partition" integer NOT NULL, next_offset bigint NOT NULL,
    end_offset bigint NOT NULL, PRIMARY KEY (topic, "partition"));
CREATE TABLE IF NOT EXISTS {SCHEMA}.placed (
    service text NOT NULL, at timestamptz NOT NULL, kind integer NOT NULL, seq bigint,
    wtopic text, wpartition integer, woffset bigint, step integer NOT NULL,
    topic text NOT NULL, "partition" integer NOT NULL, "offset" bigint NOT NULL,
    taken_new boolean NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.plan (
    service text NOT NULL, ord bigint NOT NULL, batch bigint NOT NULL, plain boolean NOT NULL,
    topic text NOT NULL, "partition" integer NOT NULL, "offset" bigint NOT NULL,
    PRIMARY KEY (service, ord));
CREATE TABLE IF NOT EXISTS {SCHEMA}.plans (service text PRIMARY KEY, summary jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.checkpoints (
    service text PRIMARY KEY, ord bigint NOT NULL DEFAULT 0,
    processed bigint NOT NULL DEFAULT 0, duplicates bigint NOT NULL DEFAULT 0,
    rejected bigint NOT NULL DEFAULT 0, commits bigint NOT NULL DEFAULT 0,
    done boolean NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS {SCHEMA}.state (key text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.grouped (
    service text NOT NULL, ord bigint NOT NULL, g integer NOT NULL, source text, id text,
    hospital text, settlement_id text, PRIMARY KEY (service, ord));
"""


async def prepare(conn: asyncpg.Connection) -> None:
    await conn.execute(STAGE_SQL)


async def get_state(conn: asyncpg.Connection, key: str) -> Any:
    found = await conn.fetchval(f"SELECT value::text FROM {SCHEMA}.state WHERE key = $1", key)
    return orjson.loads(found) if found is not None else None


async def set_state(conn: asyncpg.Connection, key: str, value: Any) -> None:
    await conn.execute(
        f"""INSERT INTO {SCHEMA}.state (key, value) VALUES ($1, $2::jsonb)
            ON CONFLICT (key) DO UPDATE SET value = excluded.value""",
        key, orjson.dumps(value).decode())


# ---- staging the log ------------------------------------------------------------------------


def _headers(headers: Iterable[tuple[str, bytes]]) -> bytes:
    return orjson.dumps([[k, v.hex()] for k, v in headers])


def _unheaders(data: bytes) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, bytes.fromhex(v)) for k, v in orjson.loads(data))


def record_of(row: asyncpg.Record) -> Record:
    return Record(topic=row["topic"], partition=row["partition"], offset=row["offset"],
                  key=row["key"], value=row["value"], headers=_unheaders(row["headers"]),
                  timestamp_ms=row["timestamp_ms"])


async def stage_log(audit: asyncpg.Connection, bootstrap: str, prefix: str,
                    topic_names: Iterable[str],
                    on_read: Callable[[int, int], None] | None = None, *,
                    principal: str | None = None) -> int:
    """Copy the topics into ``audit_log.records``, one partition after the other, up to the
    end offsets of the first call (kept, so a resumed staging stops at the same place); the
    records staged in all. Resumes after the last page staged."""
    consumer = kafka_clients.consumer(bootstrap=bootstrap, group_id=None,
                                      principal=principal or kafka_clients.AUDITOR,
                                      enable_auto_commit=False, auto_offset_reset="earliest",
                                      fetch_max_bytes=8 * 1024 * 1024,
                                      max_partition_fetch_bytes=4 * 1024 * 1024,
                                      # one partition at a time: do not wait for more
                                      fetch_max_wait_ms=10)
    await consumer.start()
    try:
        known = {(r["topic"], r["partition"]): (r["next_offset"], r["end_offset"])
                 for r in await audit.fetch(f"SELECT * FROM {SCHEMA}.positions")}
        if not known:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - every partition
            assigned = [TopicPartition(prefix + t, p) for t in topic_names
                        for p in sorted(consumer.partitions_for_topic(prefix + t) or ())]
            ends = await consumer.end_offsets(assigned) if assigned else {}
            begins = await consumer.beginning_offsets(assigned) if assigned else {}
            known = {(tp.topic[len(prefix):], tp.partition): (begins[tp], ends[tp])
                     for tp in assigned}
            await audit.executemany(
                f"INSERT INTO {SCHEMA}.positions VALUES ($1, $2, $3, $4)",
                [(t, p, b, e) for (t, p), (b, e) in sorted(known.items())])
        total = sum(e for _, e in known.values())
        read = sum(n for n, _ in known.values())
        for (topic, partition), (next_offset, end) in sorted(known.items()):
            if next_offset >= end:
                continue
            tp = TopicPartition(prefix + topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, next_offset)
            while next_offset < end:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=PAGE)
                rows = []
                for r in batch.get(tp, []):
                    if r.offset >= end:
                        continue
                    identity = replay.event_identity(Record(topic, partition, r.offset, r.key,
                                                            r.value))
                    rows.append((topic, partition, r.offset, r.key, r.value,
                                 _headers(r.headers or ()), r.timestamp or 0,
                                 identity[0] if identity else None,
                                 identity[1] if identity else None, _event_id(r.value)))
                position = await consumer.position(tp)
                if not rows and position < end:
                    continue
                async with audit.transaction():
                    if rows:
                        await audit.copy_records_to_table(
                            "records", schema_name=SCHEMA, records=rows,
                            columns=("topic", "partition", "offset", "key", "value",
                                     "headers", "timestamp_ms", "source", "id", "event_id"))
                    next_offset = min(position, end)
                    await audit.execute(
                        f"""UPDATE {SCHEMA}.positions SET next_offset = $3
                            WHERE topic = $1 AND "partition" = $2""",
                        topic, partition, next_offset)
                read += len(rows)
                if on_read:
                    on_read(read, total)
        return int(await audit.fetchval(f"SELECT count(*) FROM {SCHEMA}.records"))
    finally:
        await consumer.stop()


def _event_id(value: bytes | None) -> str | None:
    """The CloudEvent id the comparison matches published and rebuilt events by."""
    try:
        document = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    found = document.get("id") if isinstance(document, dict) else None
    return found if isinstance(found, str) and found else None


async def compare_events(audit_url: str, topic: str, schemas: Sequence[str],
                         result: Any) -> None:
    """`compare.compare_events` for a staged topic without holding it: the published records
    (by event id, else position) and the rebuilt events of the services' outboxes (by event
    id) both read in id order through cursors and merged."""
    from tools.audit.compare import Difference, TopicSummary, _event_differences, _text

    live_query = (f"""SELECT coalesce(event_id, topic || '/' || "partition" || '@' || "offset")
                          AS eid, key, value FROM {SCHEMA}.records WHERE topic = $1
                      ORDER BY coalesce(event_id, topic || '/' || "partition" || '@' || "offset")
                               {C}, "partition", "offset" """)
    outboxes = " UNION ALL ".join(
        f"""SELECT coalesce(convert_from(value, 'UTF8')::jsonb ->> 'id', '') AS eid, key,
                   value, {n} AS rank, seq FROM "{schema}".outbox WHERE topic = $1"""
        for n, schema in enumerate(schemas))
    replay_query = f"SELECT * FROM ({outboxes}) AS o ORDER BY eid {C}, rank, seq"

    published = republished = rebuilt = differing = 0

    async def rows(query: str) -> AsyncIterator[tuple[str, bytes | None, bytes]]:
        reader = await asyncpg.connect(audit_url)
        try:
            async with reader.transaction(readonly=True):
                async for r in reader.cursor(query, topic, prefetch=PAGE):
                    yield r["eid"], r["key"], bytes(r["value"] or b"")
        finally:
            await reader.close()

    async def live_events() -> AsyncIterator[tuple[str, tuple[bytes | None, bytes]]]:
        nonlocal published, republished
        first: tuple[str, tuple[bytes | None, bytes]] | None = None
        async for eid, key, value in rows(live_query):
            if first is not None and first[0] == eid:
                republished += 1
                if first[1] != (key, value):
                    result.differences.append(Difference(
                        "event", topic, {"id": eid}, "differs", "published twice",
                        _text(first[1][1]), _text(value)))
                continue
            if first is not None:
                yield first
            first = (eid, (key, value))
            published += 1
        if first is not None:
            yield first

    async def replay_events() -> AsyncIterator[tuple[str, tuple[bytes | None, bytes]]]:
        nonlocal rebuilt, differing
        last: tuple[str, tuple[bytes | None, bytes]] | None = None
        async for eid, key, value in rows(replay_query):
            if last is not None and last[0] == eid:
                # the live side publishes an event once: a second copy is a difference
                differing += 1
                result.differences.append(Difference(
                    "event", topic, {"id": eid}, "differs", "rebuilt twice",
                    _text(last[1][1]), _text(value)))
                continue
            if last is not None:
                yield last
                rebuilt += 1
            last = (eid, (key, value))
        if last is not None:
            yield last
            rebuilt += 1

    a, b = live_events(), replay_events()
    x, y = await anext(a, None), await anext(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[0] < y[0]):
            found = _event_differences(topic, x[0], x[1], None)  # type: ignore[index]
            x = await anext(a, None)
        elif x is None or y[0] < x[0]:
            found = _event_differences(topic, y[0], None, y[1])
            y = await anext(b, None)
        else:
            found = _event_differences(topic, x[0], x[1], y[1])
            x, y = await anext(a, None), await anext(b, None)
        differing += bool(found)
        result.differences += found
    result.topics.append(TopicSummary(topic, published, rebuilt, republished, differing))


async def staged_records(conn: asyncpg.Connection, topic: str) -> list[Record]:
    """The staged records of one topic, in partition and offset order (the comparison reads
    one published topic at a time)."""
    return [record_of(r) for r in await conn.fetch(
        f"""SELECT * FROM {SCHEMA}.records WHERE topic = $1
            ORDER BY "partition", "offset" """, topic)]


async def staged_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.records"))


# ---- plans ----------------------------------------------------------------------------------


@dataclass
class PlanSummary:
    """What `replay.Plan` reports, without its records (they stay in the database)."""

    service: str
    records: int = 0
    batches: int = 0
    unread: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def save_summary(conn: asyncpg.Connection, summary: PlanSummary) -> None:
    await conn.execute(
        f"""INSERT INTO {SCHEMA}.plans VALUES ($1, $2::jsonb)
            ON CONFLICT (service) DO UPDATE SET summary = excluded.summary""",
        summary.service, orjson.dumps(asdict(summary)).decode())


async def saved_summary(conn: asyncpg.Connection, service: str) -> PlanSummary | None:
    found = await conn.fetchval(f"SELECT summary::text FROM {SCHEMA}.plans WHERE service = $1",
                                service)
    return PlanSummary(**orjson.loads(found)) if found else None


async def plan_log_order(conn: asyncpg.Connection, service: str,
                         consumes: Sequence[str]) -> PlanSummary:
    """`replay.log_plan` in SQL: by Kafka timestamp, then topic, partition and offset, in
    batches of `replay.LOG_BATCH`; never merged."""
    async with conn.transaction():
        await conn.execute(f"DELETE FROM {SCHEMA}.plan WHERE service = $1", service)
        await conn.execute(
            f"""INSERT INTO {SCHEMA}.plan
                SELECT $1, n, (n - 1) / $3, false, topic, "partition", "offset" FROM (
                    SELECT topic, "partition", "offset", row_number() OVER (
                        ORDER BY timestamp_ms, topic {C}, "partition", "offset") AS n
                    FROM {SCHEMA}.records WHERE topic = ANY($2::text[])) AS x""",
            service, list(consumes), replay.LOG_BATCH)
        records = int(await conn.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.plan WHERE service = $1", service))
        summary = PlanSummary(service, records, -(-records // replay.LOG_BATCH))
        await save_summary(conn, summary)
    return summary


Rank = tuple[datetime, int, tuple[Any, ...]]


class _Peek:
    """An async iterator that can look at its next item."""

    def __init__(self, source: AsyncIterator[Any]):
        self._source = source
        self._next: Any = None
        self._done = False

    async def peek(self) -> Any:
        if self._next is None and not self._done:
            try:
                self._next = await anext(self._source)
            except StopAsyncIteration:
                self._done = True
        return self._next

    async def take(self) -> Any:
        found = await self.peek()
        self._next = None
        return found


async def _cursor(conn: asyncpg.Connection, query: str, *args: Any) -> AsyncIterator[Any]:
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        async for row in conn.cursor(query, *args, prefetch=PAGE):
            yield row


async def _next_rank(ranks: _Peek, part: tuple[str, int]) -> tuple[int, Rank] | None:
    """The next rank of partition `part` (offset, rank), or None when it has no more (ranks
    of partitions without staged records are passed over)."""
    found = None
    while True:
        row = await ranks.peek()
        if row is None:
            return found
        if (row["topic"], row["partition"]) < part:
            await ranks.take()
            continue
        if (row["topic"], row["partition"]) != part:
            return found
        if found is not None and row["offset"] != found[0]:
            return found
        await ranks.take()
        within = (row["seq"],) if row["seq"] is not None else (
            row["topic"], row["partition"], row["offset"])
        found = (row["offset"], (row["at"], row["kind"], within))


async def plan_inbox_order(audit_url: str, live_url: str, service: str,
                           consumes: Sequence[str], exact: bool, numbered: bool
                           ) -> PlanSummary:
    """`replay.inbox_plan`, streaming: each partition's staged records merged in offset order
    with the live service's inbox and rejected rows of that partition (read in the same
    order), the placement of every record written to ``placed``, then numbered in replay
    order into ``plan``. Raises ValueError as `inbox_plan` does."""
    live = await asyncpg.connect(role_url(live_url, AUDITOR), server_settings={
        "default_transaction_read_only": "on", "application_name": "clearinghouse-audit"})
    audit = await asyncpg.connect(audit_url)
    reader = await asyncpg.connect(audit_url)
    lookup = await asyncpg.connect(role_url(live_url, AUDITOR), server_settings={
        "default_transaction_read_only": "on", "application_name": "clearinghouse-audit"})
    summary = PlanSummary(service)
    try:
        await audit.execute(f"DELETE FROM {SCHEMA}.placed WHERE service = $1", service)
        seq = "seq" if exact else "NULL::bigint"
        rseq = "seq" if numbered else "NULL::bigint"
        ranks = _Peek(_cursor(live, f"""
            SELECT * FROM (
                SELECT topic, "partition", "offset", processed_at AS at, 0 AS kind,
                       {seq} AS seq
                FROM {service}.inbox WHERE topic = ANY($1::text[])
                UNION ALL
                SELECT topic, "partition", "offset", rejected_at, 1, {rseq}
                FROM {service}.rejected WHERE topic = ANY($1::text[])) AS ranks
            ORDER BY topic {C}, "partition", "offset", kind""", list(consumes)))
        records = _Peek(_cursor(reader, f"""
            SELECT topic, "partition", "offset", source, id FROM {SCHEMA}.records
            WHERE topic = ANY($1::text[]) ORDER BY topic {C}, "partition", "offset" """,
            list(consumes)))
        out: list[tuple[Any, ...]] = []

        async def flush(force: bool = False) -> None:
            if out and (force or len(out) >= PAGE):
                await audit.copy_records_to_table(
                    "placed", schema_name=SCHEMA, records=out,
                    columns=("service", "at", "kind", "seq", "wtopic", "wpartition", "woffset",
                             "step", "topic", "partition", "offset", "taken_new"))
                out.clear()

        def place(rank: Rank, step: int, position: tuple[str, int, int], new: bool) -> None:
            within = rank[2]
            w = (None, *within) if len(within) == 3 else (within[0], None, None, None)
            out.append((service, rank[0], rank[1], *w, step, *position, new))

        async def identity_rank(source: str | None, id_: str | None) -> Rank | None:
            if source is None or id_ is None:
                return None
            row = await lookup.fetchrow(
                f"""SELECT processed_at, {seq} AS seq, topic, "partition", "offset"
                    FROM {service}.inbox WHERE source = $1 AND id = $2""", source, id_)
            if row is None:
                return None
            return (row["processed_at"], 0, (row["seq"],) if exact else
                    (row["topic"], row["partition"], row["offset"]))

        while await records.peek() is not None:
            first = await records.peek()
            part = (first["topic"], first["partition"])
            # This partition's ranks, as `Consumption.ranks` holds them (a position both
            # taken and refused counts as refused, as there).
            previous: Rank | None = None
            before: list[tuple[str, int, int]] = []
            step = 0
            last_time: datetime | None = None
            last_took: Rank | None = None
            pending_rank: tuple[int, Rank] | None = None

            pending_rank = await _next_rank(ranks, part)
            while (row := await records.peek()) is not None and (
                    row["topic"], row["partition"]) == part:
                await records.take()
                offset = row["offset"]
                position = (part[0], part[1], offset)
                while pending_rank is not None and pending_rank[0] < offset:
                    pending_rank = await _next_rank(ranks, part)  # a position no longer in the log
                rank = pending_rank[1] if pending_rank and pending_rank[0] == offset else None
                if rank is not None:
                    if last_time is not None and rank[0] < last_time or (
                            rank[1] == 0 and last_took is not None and rank < last_took):
                        raise ValueError(f"the live {service} inbox does not follow the order "
                                         f"of {part[0]}/{part[1]}; replay with --order log")
                    last_time = rank[0]
                    if rank[1] == 0:
                        last_took = rank
                    for n, earlier in enumerate(before):
                        place(rank, n - len(before), earlier, False)
                    before, previous, step = [], rank, 0
                    place(rank, 0, position, rank[1] == 0)
                    pending_rank = await _next_rank(ranks, part)
                    await flush()
                    continue
                anchors_ahead = pending_rank is not None
                found = await identity_rank(row["source"], row["id"])
                if not anchors_ahead and found is None:
                    unread = 1
                    while (rest := await records.peek()) is not None and (
                            rest["topic"], rest["partition"]) == part:
                        await records.take()
                        unread += 1
                    summary.unread += unread
                    break
                if found is None:
                    summary.skipped.append(f"{part[0]}/{part[1]}@{offset}")
                if previous is None and anchors_ahead:
                    before.append(position)
                    continue
                anchor = previous if previous is not None else found
                assert anchor is not None
                previous, step = anchor, step + 1
                place(anchor, step, position, False)
                await flush()
        await flush(force=True)
        async with audit.transaction():
            await audit.execute(f"DELETE FROM {SCHEMA}.plan WHERE service = $1", service)
            await audit.execute(
                f"""INSERT INTO {SCHEMA}.plan
                    SELECT service, row_number() OVER o, dense_rank() OVER (ORDER BY at),
                           bool_and(taken_new) OVER (PARTITION BY at),
                           topic, "partition", "offset"
                    FROM {SCHEMA}.placed WHERE service = $1
                    WINDOW o AS (ORDER BY at, kind, seq, wtopic {C}, wpartition, woffset, step,
                                 topic {C}, "partition", "offset")""", service)
            await audit.execute(f"DELETE FROM {SCHEMA}.placed WHERE service = $1", service)
            summary.records = int(await audit.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.plan WHERE service = $1", service))
            summary.batches = int(await audit.fetchval(
                f"SELECT coalesce(max(batch), 0) FROM {SCHEMA}.plan WHERE service = $1",
                service))
            if not exact:
                summary.notes.append(
                    f"the live {service} inbox has no seq column: within one live "
                    "transaction, records are replayed by topic, partition and offset")
            await save_summary(audit, summary)
        return summary
    finally:
        await live.close()
        await reader.close()
        await lookup.close()
        await audit.close()


# ---- a plan in groups of persons -----------------------------------------------------------

#: Services whose state is per person (the record's ``data.person_id``, else its Kafka
#: key), so that persons can be rebuilt in separate processes sharing the service's schema,
#: each in the plan's order; and what else their state shares across persons, which must
#: not fall into two groups: the settlement service claims each (hospital, settlement id)
#: for one person (`services.settlement.store.claim_settlement_ids`: the first claim wins,
#: so two groups would race for it). The inbox's (source, id) is checked for every service.
PER_PERSON = {"settlement": ("settlement.submitted", "hospital", "settlement_id")}


def group_of(key: bytes | None, value: bytes | None, groups: int) -> tuple[int, dict[str, Any]]:
    """The group of a record (by its person) and its event's data (empty when it has none)."""
    try:
        document = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        document = None
    data = document.get("data") if isinstance(document, dict) else None
    data = data if isinstance(data, dict) else {}
    person = data.get("person_id")
    subject = (person if isinstance(person, str) and person else
               (key or b"").decode("utf-8", "replace"))
    kind = document.get("type") if isinstance(document, dict) else None
    return zlib.crc32(subject.encode()) % groups, {"type": kind, **data}


async def saved_groups(audit_url: str, service: str) -> list[PlanSummary]:
    """The groups an earlier run of this audit split the service's plan into (none: it was
    not split); a resumed audit goes on with them whatever it is told now."""
    conn = await asyncpg.connect(audit_url)
    try:
        rows = await conn.fetch(
            f"""SELECT summary::text FROM {SCHEMA}.plans WHERE service LIKE $1
                ORDER BY length(service), service""", f"{service}/%")
        return [PlanSummary(**orjson.loads(r["summary"])) for r in rows]
    finally:
        await conn.close()


async def split_plan(audit_url: str, service: str, groups: int) -> list[PlanSummary] | None:
    """The service's plan split into `groups` plans of persons (``<service>/<n>``), each in
    the plan's order and with its live transactions (a live transaction of several groups
    is replayed as one transaction in each). None when the service's state is not per
    person, when a shared claim or an event id would fall into two groups (the live order
    decided between them), or when the service's rebuild already began unsplit (a resumed
    audit goes on as it began)."""
    if service not in PER_PERSON or groups < 2:
        return None
    kind, *shared = PER_PERSON[service]
    names = [f"{service}/{n}" for n in range(groups)]
    conn = await asyncpg.connect(audit_url)
    reader = await asyncpg.connect(audit_url)
    try:
        began = await conn.fetchrow(
            f"SELECT ord, commits, done FROM {SCHEMA}.checkpoints WHERE service = $1",
            service)
        # commits made inside a split (poison) batch leave ord at 0: they began it too
        if began is not None and (began["ord"] or began["commits"] or began["done"]):
            return None
        await conn.execute(f"DELETE FROM {SCHEMA}.grouped WHERE service = $1", service)
        rows: list[tuple[Any, ...]] = []
        async for row in _cursor(reader, f"""
                SELECT p.ord, r.key, r.value, r.source, r.id FROM {SCHEMA}.plan p
                JOIN {SCHEMA}.records r USING (topic, "partition", "offset")
                WHERE p.service = $1 ORDER BY p.ord""", service):
            group, data = group_of(row["key"], row["value"], groups)
            claim = [data.get(f) for f in shared] if data.get("type") == kind else []
            claim = claim if all(isinstance(c, str) for c in claim) else []
            rows.append((service, row["ord"], group, row["source"], row["id"],
                         *(claim or [None] * len(shared))))
            if len(rows) >= PAGE:
                await conn.copy_records_to_table("grouped", schema_name=SCHEMA, records=rows)
                rows.clear()
        if rows:
            await conn.copy_records_to_table("grouped", schema_name=SCHEMA, records=rows)
        async with conn.transaction():
            shared_twice = await conn.fetchval(f"""
                SELECT EXISTS (SELECT 1 FROM {SCHEMA}.grouped WHERE service = $1
                               AND hospital IS NOT NULL GROUP BY hospital, settlement_id
                               HAVING count(DISTINCT g) > 1)
                    OR EXISTS (SELECT 1 FROM {SCHEMA}.grouped WHERE service = $1
                               AND id IS NOT NULL GROUP BY source, id
                               HAVING count(DISTINCT g) > 1)""", service)
            if shared_twice:
                await conn.execute(f"DELETE FROM {SCHEMA}.grouped WHERE service = $1",
                                   service)
                return None
            parent = await saved_summary(conn, service)
            summaries = []
            for n, name in enumerate(names):
                await conn.execute(f"DELETE FROM {SCHEMA}.plan WHERE service = $1", name)
                await conn.execute(f"""
                    INSERT INTO {SCHEMA}.plan
                    SELECT $2, row_number() OVER (ORDER BY p.ord), p.batch, p.plain, p.topic,
                           p."partition", p."offset"
                    FROM {SCHEMA}.plan p JOIN {SCHEMA}.grouped g USING (service, ord)
                    WHERE p.service = $1 AND g.g = $3""", service, name, n)
                counts = await conn.fetchrow(
                    f"""SELECT count(*) AS records, count(DISTINCT batch) AS batches
                        FROM {SCHEMA}.plan WHERE service = $1""", name)
                summary = PlanSummary(name, int(counts["records"]), int(counts["batches"]))
                if parent is not None:
                    summary.notes = list(parent.notes)
                await save_summary(conn, summary)
                summaries.append(summary)
            await conn.execute(f"DELETE FROM {SCHEMA}.grouped WHERE service = $1", service)
            return summaries
    finally:
        await reader.close()
        await conn.close()


# ---- reading a plan back as transactions ---------------------------------------------------


async def transactions(conn: asyncpg.Connection, service: str, after: int,
                       merge_limit: int = replay.MERGE_LIMIT
                       ) -> AsyncIterator[tuple[list[Record], int]]:
    """The plan's transactions after plan row `after`, as `replay.Plan.transactions` makes
    them (consecutive plain live transactions merged up to `merge_limit` records, a day never
    joining the ones before it), each with its last plan row."""
    current: list[Record] = []
    current_last = after
    open_ = False
    batch: list[Record] = []
    batch_id: int | None = None
    batch_plain = True
    batch_last = after
    cursor = after

    def close_batch() -> tuple[list[Record], bool, int]:
        return batch, batch_plain, batch_last

    async def pages() -> AsyncIterator[asyncpg.Record]:
        nonlocal cursor
        while True:
            rows = await conn.fetch(
                f"""SELECT p.ord, p.batch, p.plain, r.* FROM {SCHEMA}.plan p
                    JOIN {SCHEMA}.records r USING (topic, "partition", "offset")
                    WHERE p.service = $1 AND p.ord > $2 ORDER BY p.ord LIMIT $3""",
                service, cursor, PAGE)
            if not rows:
                return
            for row in rows:
                yield row
            cursor = rows[-1]["ord"]

    def merge(done: tuple[list[Record], bool, int]) -> tuple[list[Record], int] | None:
        """Add a whole live transaction; the transaction it closed, if any."""
        nonlocal current, current_last, open_
        records, plain, last = done
        if (open_ and plain and len(current) + len(records) <= merge_limit
                and not any(r.topic == topics.CLEARING_SCHEDULE for r in records)):
            current = current + records
            current_last = last
            return None
        closed = (current, current_last) if current else None
        current, current_last, open_ = list(records), last, plain
        return closed

    async for row in pages():
        if batch_id is not None and row["batch"] != batch_id:
            closed = merge(close_batch())
            if closed:
                yield closed
            batch = []
        batch_id, batch_plain, batch_last = row["batch"], row["plain"], row["ord"]
        batch.append(record_of(row))
    if batch:
        closed = merge(close_batch())
        if closed:
            yield closed
    if current:
        yield current, current_last


# ---- checkpoints ----------------------------------------------------------------------------


@dataclass
class Checkpoint:
    ord: int = 0
    processed: int = 0
    duplicates: int = 0
    rejected: int = 0
    commits: int = 0
    done: bool = False


async def checkpoint(conn: asyncpg.Connection, service: str) -> Checkpoint:
    await conn.execute(f"INSERT INTO {SCHEMA}.checkpoints (service) VALUES ($1) "
                       "ON CONFLICT DO NOTHING", service)
    row = await conn.fetchrow(f"SELECT * FROM {SCHEMA}.checkpoints WHERE service = $1",
                              service)
    return Checkpoint(row["ord"], row["processed"], row["duplicates"], row["rejected"],
                      row["commits"], row["done"])


class Checkpointer:
    """The hook `BatchProcessor` calls inside each transaction it commits: the plan row the
    transaction ends at and the counters, committed with the transaction's effects."""

    def __init__(self, service: str):
        self.service = service
        #: The last plan row of the transaction being replayed.
        self.ord = 0

    async def __call__(self, conn: asyncpg.Connection, processed: int, duplicates: int,
                       rejected: int, complete: bool) -> None:
        await conn.execute(
            f"""UPDATE {SCHEMA}.checkpoints SET
                    ord = CASE WHEN $6 THEN $2 ELSE ord END, processed = processed + $3,
                    duplicates = duplicates + $4, rejected = rejected + $5,
                    commits = commits + 1
                WHERE service = $1""",
            self.service, self.ord, processed, duplicates, rejected, complete)


async def mark_done(conn: asyncpg.Connection, service: str) -> None:
    await conn.execute(f"UPDATE {SCHEMA}.checkpoints SET done = true WHERE service = $1",
                       service)


class Stopped(Exception):
    """The replay stopped after the transactions it was told to replay (``--stop-after``),
    as an interruption would; the audit database keeps its checkpoints."""


def now() -> float:
    return time.perf_counter()
