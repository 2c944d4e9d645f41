"""2. Infrastructure faults: the Kafka broker and the PostgreSQL server are stopped and started
again while the services are busy. The services must retry with backoff, say so in their logs,
stay up (no exit, no crash loop), and the month must come out exactly as computed by hand.

These tests never touch the shared broker and server: they start a throw-away broker and
server of their own (infra.kafka / infra.postgres) on free ports from a cache folder of their
own, and stop them at the end. The broker's jars come from the shared cache when it has them
(read only), otherwise Maven resolves them into the throw-away cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from infra import kafka, postgres
from infra.local import resolve_cache_dir, run_sync
from shared.db.roles import roles_file
from tests.faults.harness import (
    SERVICES,
    Installation,
    Timings,
    env_int,
    log_step,
    produce,
    run_and_check,
)
from tests.faults.workload import generate
from tests.helpers import own_database

SETTLEMENTS = env_int("CLEARINGHOUSE_FAULT_INFRA_SETTLEMENTS", 6_000)
OUTAGE_SECONDS = env_int("CLEARINGHOUSE_FAULT_OUTAGE_SECONDS", 10)
#: Warnings and errors a service may log per second of outage. Retrying with backoff (the
#: services' own loops double their pause up to 10 s) logs a few dozen lines in a 20 s outage;
#: a client reconnecting every 100 ms without backoff logs thousands, which buries the one
#: line that says what is wrong.
MAX_WARNINGS_PER_OUTAGE_SECOND = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OwnInfra:
    cache: Path
    kafka_port: int
    controller_port: int
    pg_port: int
    tls_port: int
    bootstrap: str = ""
    database_url: str = ""

    def start_kafka(self) -> None:
        """Start the broker (authentication on, as everywhere) and make the logins and the
        production namespace's ACLs of its installation (idempotent on a restart)."""
        from infra import participants

        server = kafka.start(self.cache, self.kafka_port, self.controller_port, self.tls_port)
        run_sync(kafka.wait_ready(server.bootstrap, timeout=90, cache=self.cache, pid=server.pid))
        run_sync(participants.sync(server.bootstrap, cache=self.cache))
        self.bootstrap = server.bootstrap

    def stop_kafka(self) -> None:
        kafka.stop(self.cache)

    def start_postgres(self) -> None:
        self.database_url = postgres.start(self.cache, self.pg_port).url

    def stop_postgres(self) -> None:
        postgres.stop(self.cache)

    @property
    def env(self) -> dict[str, str]:
        """For the services: this server's database roles file (shared.db.roles)."""
        return {"CLEARINGHOUSE_PG_ROLES_FILE": str(roles_file(self.cache))}


@pytest.fixture(scope="module")
def own_infra() -> Iterator[OwnInfra]:
    """A throw-away broker and database server, stopped and deleted afterwards."""
    cache = Path(tempfile.mkdtemp(prefix="clearinghouse-faults-", dir="/tmp"))
    shared_libs = resolve_cache_dir() / "kafka-libs"
    if any(shared_libs.glob(".resolved-*")):
        (cache / "kafka-libs").symlink_to(shared_libs, target_is_directory=True)
    own = OwnInfra(cache, _free_port(), _free_port(), _free_port(), _free_port())
    started = time.monotonic()
    # this process's clients and the services it starts log in to the broker of this cache
    from infra.secrets import credentials_path

    previous = os.environ.get("CLEARINGHOUSE_KAFKA_CREDENTIALS")
    os.environ["CLEARINGHOUSE_KAFKA_CREDENTIALS"] = str(credentials_path(cache))
    try:
        own.start_postgres()
        own.start_kafka()
        log_step(f"own Kafka {own.bootstrap} and PostgreSQL :{own.pg_port} ready in "
                 f"{time.monotonic() - started:.1f} s (cache {cache})")
        yield own
    finally:
        with contextlib.suppress(Exception):
            own.stop_kafka()
        with contextlib.suppress(Exception):
            own.stop_postgres()
        shutil.rmtree(cache, ignore_errors=True)
        if previous is None:
            os.environ.pop("CLEARINGHOUSE_KAFKA_CREDENTIALS", None)
        else:
            os.environ["CLEARINGHOUSE_KAFKA_CREDENTIALS"] = previous


def _log_lines(path: Path, since: float, until: float) -> list[dict]:
    """The service's JSON log lines stamped within [since, until] (epoch seconds)."""
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            entry = orjson.loads(raw)
            stamp = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
            continue
        # structlog stamps UTC ("…Z"); the standard library's lines carry local time
        # without an offset, which `timestamp()` reads as local time.
        if since <= stamp.timestamp() <= until:
            lines.append(entry)
    return lines


def _check_logs(inst: Installation, outages: dict[str, tuple[float, float]]) -> list[str]:
    """Each service said clearly that something was down, and did not spin."""
    problems = []
    for name in SERVICES:
        path = inst.logs / f"{name}.log"
        for what, (since, until) in outages.items():
            lines = _log_lines(path, since, until + 5)
            loud = [e for e in lines if e.get("level") in ("warning", "error", "critical")]
            if not loud:
                problems.append(f"{name}: no warning or error in its log while {what} was down")
            seconds = max(1.0, until - since)
            if len(loud) > MAX_WARNINGS_PER_OUTAGE_SECOND * seconds:
                events: dict[str, int] = {}
                for e in loud:
                    events[e.get("event", "")[:70]] = events.get(e.get("event", "")[:70], 0) + 1
                top = sorted(events.items(), key=lambda kv: -kv[1])[:4]
                problems.append(
                    f"{name}: {len(loud)} warnings/errors in {seconds:.0f} s of {what} outage "
                    f"(more than {MAX_WARNINGS_PER_OUTAGE_SECOND}/s: retrying without backoff); "
                    f"most frequent: {top}")
            log_step(f"{name} while {what} was down: {len(lines)} lines, {len(loud)} "
                     f"warnings/errors, e.g. {[e.get('event', '')[:100] for e in loud[:3]]}")
    return problems


@pytest.mark.timeout(600)
async def test_broker_and_database_restarts_mid_run(own_infra: OwnInfra, tmp_path) -> None:
    own = own_infra
    work = generate(SETTLEMENTS, seed=7)
    inst = Installation(own.bootstrap, own.database_url, tmp_path)
    inst.services.supervisor.env.update(own.env)
    timings = Timings()
    await inst.create_topics()
    inst.start(*SERVICES)
    pids = {n: p.pid for n, p in inst.services.processes.items()}
    outages: dict[str, tuple[float, float]] = {}
    third = len(work.messages) // 3

    async def taken() -> int:
        conn = await inst.connect("settlement")
        try:
            # Submissions only: the enrolments folded before the burst do not count.
            return int(await conn.fetchval(
                "SELECT count(*) FROM inbox WHERE source LIKE 'hospital/%'"))
        finally:
            await conn.close()

    async def busy(at_least: int) -> None:
        """Until the settlement service has taken `at_least` events: it is mid-burst."""
        deadline = time.monotonic() + 60
        while await taken() < at_least:
            assert time.monotonic() < deadline, "the settlement service does not take events"
            await asyncio.sleep(0.1)

    async def send() -> None:
        await inst.wait_started(*SERVICES)
        await produce(inst.bootstrap, inst.prefix, work.messages[:third])
        await busy(third // 4)
        since = time.time()
        inst.note("stopping Kafka")
        await asyncio.to_thread(own.stop_kafka)
        await asyncio.sleep(OUTAGE_SECONDS)
        inst.note("starting Kafka")
        await asyncio.to_thread(own.start_kafka)
        outages["Kafka"] = (since, time.time())
        inst.note("Kafka is back")
        before = await taken()
        await produce(inst.bootstrap, inst.prefix, work.messages[third:2 * third])
        await busy(before + third // 4)
        since = time.time()
        inst.note("stopping PostgreSQL")
        await asyncio.to_thread(own.stop_postgres)
        await produce(inst.bootstrap, inst.prefix, work.messages[2 * third:])
        await asyncio.sleep(OUTAGE_SECONDS)
        inst.note("starting PostgreSQL")
        await asyncio.to_thread(own.start_postgres)
        outages["PostgreSQL"] = (since, time.time())
        inst.note("PostgreSQL is back")

    try:
        await run_and_check(inst, work, timings=timings, waves=1, seconds=0, send=send,
                            answer_timeout=240, results_timeout=180)
        assert inst.exited() == {}, f"services exited during the outages: {inst.exited()}"
        now = {n: p.pid for n, p in inst.services.processes.items()}
        assert now == pids, f"services were restarted: {pids} -> {now}"
        problems = _check_logs(inst, outages)
        assert not problems, "\n".join(problems)
    finally:
        inst.stop()
        log_step("timeline:\n  " + "\n  ".join(inst.timeline))
        log_step(f"timings: {timings.marks}")


@pytest.mark.timeout(300)
async def test_services_started_while_kafka_and_database_are_down_wait_for_them(
        own_infra: OwnInfra, tmp_path) -> None:
    """A service (re)started during an outage, as a supervisor or an operator would, must
    wait for the broker and the database with backoff instead of exiting (which, under a
    restarting supervisor, is a crash loop)."""
    own = own_infra
    # dropped once the servers are back (the `finally` restarts what is down)
    async with own_database(own.database_url) as database:
        work = generate(300, seed=11)
        inst = Installation(own.bootstrap, database, tmp_path)
        inst.services.supervisor.env.update(own.env)
        timings = Timings()
        await inst.create_topics()
        inst.note("stopping Kafka and PostgreSQL")
        await asyncio.to_thread(own.stop_kafka)
        await asyncio.to_thread(own.stop_postgres)
        since = time.time()
        inst.start(*SERVICES)
        try:
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            inst.note("starting PostgreSQL (Kafka stays down)")
            await asyncio.to_thread(own.start_postgres)
            await asyncio.sleep(OUTAGE_SECONDS)
            gone = inst.exited()
            inst.note("starting Kafka")
            await asyncio.to_thread(own.start_kafka)
            outages = {"Kafka": (since, time.time())}
            if gone:
                name = sorted(gone)[0]
                lines = inst.services.log_text(name).splitlines()
                tail = "\n".join(line[:300] for line in
                                 ([x for x in lines if "Error" in x][-1:] or lines[-3:]))
                raise AssertionError(
                    f"services exited while Kafka was down (exit codes {gone}) instead of waiting "
                    f"for it with backoff; {name}'s log ends with:\n{tail}")
            await run_and_check(inst, work, timings=timings, waves=2, seconds=1,
                                answer_timeout=120, results_timeout=120)
            problems = _check_logs(inst, outages)
            assert not problems, "\n".join(problems)
        finally:
            inst.stop()
            if kafka.running(own.cache) is None:
                await asyncio.to_thread(own.start_kafka)
            if postgres.running(own.cache) is None:
                await asyncio.to_thread(own.start_postgres)
            log_step("timeline:\n  " + "\n  ".join(inst.timeline))

