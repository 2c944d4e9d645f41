"""What a bench run stands on: a database and topic namespace of its own, service processes,
a commit watch on the clearing ledger, and samples of the services' memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.supervisor import Deployment, Supervisor
from shared.db import drop_database, prepare_database
from shared.messaging import clients as kafka_clients
from shared.participant_keys import Signer
from shared.signatures import SIGNED_TOPICS

#: Installed in the bench's own database: each commit of the clearing service that takes
#: events in (its inbox rows) is announced, at commit, with the number of rows per input
#: and the transaction id, so "the last ledger posting committed" is observed exactly and
#: each event's commit time can be found afterwards through its inbox row's xmin.
WATCH_SQL = """
CREATE OR REPLACE FUNCTION clearing.bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE settled bigint; days bigint;
BEGIN
  SELECT count(*) FILTER (WHERE topic = 'settlement.events'),
         count(*) FILTER (WHERE topic = 'clearing.schedule') INTO settled, days FROM new_rows;
  PERFORM pg_notify('bench_ledger', settled::text || ' ' || days::text || ' '
                    || txid_current()::text || ' ' || clock_timestamp()::text);
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_notify ON clearing.inbox;
CREATE TRIGGER bench_notify AFTER INSERT ON clearing.inbox REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION clearing.bench_notify();
"""


#: What `clearinghouse serve NAME` runs (without the rest of the command line's modules).


def now() -> float:
    return time.monotonic()


@dataclass
class Environment:
    """One namespace (topic prefix) and one database on the local broker and server."""

    bootstrap: str
    admin_url: str
    reference_dir: Path
    logs: Path
    name: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:10]}")
    supervisor: Supervisor = field(init=False)
    #: Environment of the services started next (``CLEARINGHOUSE_SIGNATURES=off`` for the
    #: signatures' cost comparison).
    overrides: dict[str, str] = field(default_factory=dict)
    #: The registry of the generated participants' public keys, for the services.
    participant_keys: Path | None = None

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.deployment, self.logs,
                                     log_name=lambda service: f"{self.name}-{service}.log",
                                     stop_timeout=20)

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """The running services, by name."""
        return self.supervisor.processes

    @property
    def prefix(self) -> str:
        return self.name + "."

    @property
    def database_url(self) -> str:
        return self.admin_url.rpartition("/")[0] + "/" + self.name

    @property
    def deployment(self) -> Deployment:
        return Deployment(kafka_bootstrap_servers=self.bootstrap, database_url=self.database_url,
                          topic_prefix=self.prefix, reference_dir=self.reference_dir,
                          group_prefix=self.name, participant_keys=self.participant_keys,
                          extra=dict(self.overrides))

    @property
    def env(self) -> dict[str, str]:
        """The deployment's variables, for commands other than the services (the audit)."""
        return self.deployment.variables()

    async def create(self) -> None:
        from infra.participants import prepare_namespace

        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()
        await prepare_database(self.admin_url, self.name)  # the services' roles and schemas
        await prepare_namespace(self.bootstrap, self.prefix, self.name,
                                reference_dir=self.reference_dir, users=True)
        self.logs.mkdir(parents=True, exist_ok=True)

    def start(self, *names: str, instances: int = 1, **extra_env: str) -> None:
        self.supervisor.deployment = self.deployment  # the keys and overrides set since
        for name in names:
            self.supervisor.start(name, instances=instances, **extra_env)

    def restart(self, name: str, **extra_env: str) -> None:
        """Stop one service (SIGTERM, it finishes its batch) and start it again."""
        self.supervisor.stop(name)
        self.supervisor.deployment = self.deployment
        self.supervisor.start(name, **extra_env)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"service {name} exited with status {process.returncode}; "
                                   f"see {self.logs / f'{self.name}-{name}.log'}")

    def stop(self) -> None:
        self.supervisor.stop()

    async def drop(self) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await drop_database(conn, self.name)
        finally:
            await conn.close()
        from infra.kafka import delete_topics

        with contextlib.suppress(Exception):  # best effort: a namespace left behind is harmless
            await delete_topics(self.bootstrap, lambda name: name.startswith(self.prefix))

    async def connect(self, schema: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.database_url, server_settings={"search_path": schema})

    async def wait_for_table(self, schema: str, table: str, timeout: float = 120) -> None:
        deadline = now() + timeout
        conn = await asyncpg.connect(self.database_url)
        try:
            while not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL",
                                          f"{schema}.{table}"):
                self.check_alive()
                if now() > deadline:
                    raise TimeoutError(f"{schema}.{table} did not appear in {timeout} s")
                await asyncio.sleep(0.2)
        finally:
            await conn.close()


class LedgerWatch:
    """Listens to the clearing service's commits (see WATCH_SQL)."""

    def __init__(self) -> None:
        self.settled = 0
        self.days = 0
        self.last_commit = 0.0
        #: txid (mod 2**32, as in xmin) -> monotonic time the commit was announced
        self.commit_times: dict[int, float] = {}
        self._conn: asyncpg.Connection | None = None
        self._changed = asyncio.Event()

    async def start(self, env: Environment) -> None:
        await env.wait_for_table("clearing", "inbox")
        self._conn = await env.connect("clearing")
        await self._conn.execute(WATCH_SQL)
        await self._conn.add_listener("bench_ledger", self._on_notify)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        at = now()
        settled, days, txid, _ = payload.split(" ", 3)
        self.settled += int(settled)
        self.days += int(days)
        self.commit_times[int(txid) % 2**32] = at
        self.last_commit = at
        self._changed.set()

    async def wait(self, *, settled: int | None = None, days: int | None = None,
                   timeout: float, env: Environment | None = None) -> float:
        """Wait until the counts reach the targets; return the time of the commit that did."""
        deadline = now() + timeout
        while (settled is not None and self.settled < settled) or (
                days is not None and self.days < days):
            if env is not None:
                env.check_alive()
            if now() > deadline:
                raise TimeoutError(f"clearing committed {self.settled}/{settled} settlement "
                                   f"events and {self.days}/{days} days in {timeout:.0f} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=1.0)
        return self.last_commit

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()


def _infrastructure_pids() -> tuple[int | None, int | None]:
    """Process ids of the local Kafka broker and PostgreSQL server, where running."""
    try:
        from infra import kafka, postgres
        from infra.local import resolve_cache_dir

        cache = resolve_cache_dir()
        return ((kafka.running(cache) or (None,))[0], (postgres.running(cache) or (None,))[0])
    except Exception:  # noqa: BLE001 - an accounting extra, never a reason to fail the bench
        return None, None


def _children(parent: int) -> list[int]:
    """Process ids whose parent is `parent` (PostgreSQL's backends and workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


class MemorySampler:
    """Samples VmRSS of each service process; keeps the largest value seen."""

    def __init__(self, env: Environment, every: float = 0.25):
        self.env = env
        self.every = every
        self.peak_mb: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def rss_mb(pid: int, field_name: str = "VmRSS") -> float:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def sample(self) -> None:
        for name, process in self.env.processes.items():
            mb = self.rss_mb(process.pid)
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), mb)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.every)

    @staticmethod
    def cpu_seconds(pid: int) -> float:
        """User + system CPU time of a process so far."""
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each service, and of what shares the machine with them:
        the local Kafka broker and PostgreSQL server (`clearinghouse infra up`; the server's
        backends summed, they are its children) and the bench itself."""
        used = {name: self.cpu_seconds(p.pid) for name, p in self.env.processes.items()}
        kafka_pid, postgres_pid = _infrastructure_pids()
        if kafka_pid is not None:
            used["kafka"] = self.cpu_seconds(kafka_pid)
        if postgres_pid is not None:
            # Backends come and go: count each one's CPU since the start (or since it began).
            at_start = getattr(self, "_postgres_at_start", {})
            now = {pid: self.cpu_seconds(pid)
                   for pid in (postgres_pid, *_children(postgres_pid))}
            self._postgres_now = now
            used["postgres"] = sum(t - at_start.get(pid, 0.0) for pid, t in now.items())
        used["bench"] = self.cpu_seconds(os.getpid())
        return used

    @staticmethod
    def machine_busy() -> tuple[float, float]:
        """(busy, total) jiffies of all cores, from /proc/stat."""
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return 0.0, 0.0
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return float(sum(values) - idle), float(sum(values))

    def machine_utilisation(self) -> float:
        """Share of all cores busy (any process) since `start`."""
        busy, total = self.machine_busy()
        busy0, total0 = self.busy_at_start
        return round((busy - busy0) / (total - total0), 3) if total > total0 else 0.0

    def start(self) -> None:
        self.peak_mb = {}
        self.busy_at_start = self.machine_busy()
        self._postgres_at_start: dict[int, float] = {}
        self.cpu_at_start = self.cpu()
        # PostgreSQL is counted per backend from here on: its figure is already a difference.
        self._postgres_at_start = getattr(self, "_postgres_now", {})
        self.cpu_at_start["postgres"] = 0.0
        self._task = asyncio.create_task(self._run())

    def cpu_used(self) -> dict[str, float]:
        """CPU seconds each service (and Kafka, PostgreSQL, the bench) used since `start`.
        Kafka and PostgreSQL are the shared local servers: other users' tests count too."""
        return {name: round(t - self.cpu_at_start.get(name, 0.0), 2)
                for name, t in self.cpu().items()}

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()
        return dict(self.peak_mb)


def producer(bootstrap: str) -> AIOKafkaProducer:
    """A sender as a hospital's integration would be written: idempotent, batching."""
    return kafka_clients.producer(bootstrap, enable_idempotence=True, linger_ms=5,
                            max_batch_size=512 * 1024, max_request_size=16 * 1024 * 1024)


Headers = list[tuple[str, bytes]]


def participant_keys_for(province: Any, directory: Path) -> Signer:
    """Key pairs for the bench's generated participants, for this run: the registry goes
    to the services (`Environment.participant_keys`), the signer to the senders."""
    from shared import participant_keys

    registry, secrets = directory / "participant-keys.toml", directory / "keys"
    participant_keys.ensure_key_pairs(participant_keys.participants(province.directory),
                                      registry_path=registry, directory=secrets)
    return participant_keys.Signer(registry, secrets)


def signed(messages: Iterable[tuple[bytes, bytes]], signer: Signer | None
           ) -> list[tuple[bytes, bytes, Headers]]:
    """Each value with the signature of the participant its ``source`` names, as its sender
    publishes it (shared.inbound; none without a signer or when
    ``CLEARINGHOUSE_SIGNATURES=off``)."""
    from shared.inbound import signature_headers

    if signer is None:
        return [(key, value, []) for key, value in messages]
    return [(key, value, signature_headers(value, signer=signer)) for key, value in messages]


async def publish_all(bootstrap: str, topic: str,
                      messages: Iterable[tuple[bytes, bytes] | tuple[bytes, bytes, Headers]],
                      sender: AIOKafkaProducer | None = None, *,
                      signer: Signer | None = None) -> int:
    """Publish with gathered futures; return how many. Pairs (key, value) on a signed topic
    are signed here by `signer`; triples carry their headers (signed beforehand, outside a
    timed section)."""
    own = sender is None
    sender = sender or producer(bootstrap)
    if own:
        await sender.start()
    try:
        futures = []
        sign = topic.endswith(tuple(SIGNED_TOPICS))  # not the services' own events
        for message in messages:
            if len(message) == 2:
                key, value = message  # type: ignore[misc]
                headers = signed([(key, value)], signer)[0][2] if sign else []
            else:
                key, value, headers = message  # type: ignore[misc]
            futures.append(await sender.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        if own:
            await sender.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = kafka_clients.consumer(bootstrap=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            partitions = consumer.partitions_for_topic(topic) or set()
        return await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        await consumer.stop()


class TopicTail:
    """Reads a topic from its current end (or the start) in the background, noting the
    monotonic time each record was received."""

    def __init__(self, bootstrap: str, topic: str, *, from_start: bool = False):
        self.bootstrap = bootstrap
        self.topic = topic
        self.from_start = from_start
        self.records: list[tuple[float, bytes]] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._new = asyncio.Event()

    async def start(self) -> None:
        ends = await end_offsets(self.bootstrap, self.topic)
        self._consumer = kafka_clients.consumer(bootstrap=self.bootstrap,
            group_id=None, enable_auto_commit=False,
            fetch_max_wait_ms=20, fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024)
        await self._consumer.start()
        self._consumer.assign(list(ends))
        for tp, end in ends.items():
            self._consumer.seek(tp, 0 if self.from_start else end)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            at = now()
            for records in batch.values():
                self.records.extend((at, r.value) for r in records)
            if batch:
                self._new.set()

    async def wait_until(self, predicate: Any, timeout: float) -> None:
        deadline = now() + timeout
        while not predicate(self.records):
            if now() > deadline:
                raise TimeoutError(f"{self.topic}: condition not met in {timeout:.0f} s "
                                   f"({len(self.records)} records read)")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), timeout=0.5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
