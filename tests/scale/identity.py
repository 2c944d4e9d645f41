"""One seeded month through the services, and what must not depend on how many brokers and
instances ran it: the digest of every result on ``clearing.results`` and the ledger rows."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import orjson

from shared import topics
from tests.faults.harness import (
    SERVICES,
    Installation,
    Timings,
    env_int,
    log_step,
    run_and_check,
)
from tests.faults.workload import Workload, generate

#: A small month: enough for every kind of result (reports, statements, instructions,
#: difference notices) on every route, small enough for three runs in a few minutes.
SETTLEMENTS = env_int("CLEARINGHOUSE_SCALE_SETTLEMENTS", 3000)
INSTANCES = env_int("CLEARINGHOUSE_SCALE_INSTANCES", 3)
SEED = 20261001

#: The ledger's columns that do not depend on the order records arrived in. ``sequence``
#: and ``link`` (the hash chain) number each agency's postings in arrival order, which
#: differs between any two runs reading several partitions; each run's chain is verified
#: intact and gap-free by `run_and_check`.
LEDGER_COLUMNS = ("agency", "entry_id", "line", "kind", "account", "counterpart", "side",
                  "amount::text", "business_time", "cycle", "origin_cycle", "cause_source",
                  "cause_id", "settlement_id")


def workload() -> Workload:
    return generate(SETTLEMENTS, seed=SEED, filing_share=1.0)


@dataclass
class Outcome:
    digest: str
    results: dict[str, bytes]
    ledger: list[tuple[object, ...]]
    timeline: list[str] = field(default_factory=list)

    @property
    def ledger_digest(self) -> str:
        return hashlib.sha256(repr(self.ledger).encode()).hexdigest()


#: What a statement's ``chain_head`` is replaced by in the comparison (`comparable`).
OWN_CHAIN = "<this run's own ledger chain>"


def comparable(value: bytes) -> bytes:
    """A result as compared between runs: its bytes, except a statement's ``chain_head``.

    The head of an agency's hash chain covers its postings in the order they were made, and
    that order follows the order the partitions of ``settlement.events`` happened to be read
    in, which differs between any two runs, also two of one instance on one broker (the
    same set of postings, the same balances, the same ``chain_sequence``). So the head is
    not compared but checked against the run's own ledger (`check_chain_heads`); every
    other byte of every result is compared."""
    event = orjson.loads(value)
    if event["type"] != "clearing.statement_issued" or not event["data"].get("chain_head"):
        return value
    event["data"]["chain_head"] = OWN_CHAIN
    return orjson.dumps(event)


def results_digest(values: dict[str, bytes]) -> str:
    """sha256 over every distinct result (`comparable`), ordered by its ``source``/``id``."""
    digest = hashlib.sha256()
    for key in sorted(values):
        digest.update(key.encode() + b"\0" + comparable(values[key]) + b"\n")
    return digest.hexdigest()


async def check_chain_heads(inst: Installation, values: dict[str, bytes]) -> int:
    """Every statement's ``chain_head`` is the link of its agency's posting number
    ``chain_sequence`` in this run's ledger. Returns how many were checked."""
    conn = await inst.connect("clearing")
    checked = 0
    try:
        for key, value in sorted(values.items()):
            data = orjson.loads(value)["data"]
            if not data.get("chain_head"):
                continue
            link = await conn.fetchval("SELECT link FROM postings WHERE agency = $1 AND "
                                       "sequence = $2", data["agency"], data["chain_sequence"])
            assert link == data["chain_head"], (
                f"{key}: chain_head {data['chain_head']} is not the ledger's link {link} at "
                f"posting {data['chain_sequence']}")
            checked += 1
    finally:
        await conn.close()
    return checked


async def read_results(inst: Installation) -> dict[str, bytes]:
    """Every distinct result on the namespace's ``clearing.results``; a result published
    twice (the relay's at-least-once) must be the same bytes both times."""
    reader = await inst.reader(topics.CLEARING_RESULTS).start()
    try:
        await reader.catch_up(timeout=60)
    finally:
        await reader.stop()
    values: dict[str, bytes] = {}
    for record in reader.records:
        event = orjson.loads(record.value)
        key = f"{event['source']} {event['id']}"
        assert values.setdefault(key, record.value) == record.value, (
            f"result {key} published twice with different bytes")
    return values


async def read_ledger(inst: Installation) -> list[tuple[object, ...]]:
    conn = await inst.connect("clearing")
    try:
        rows = await conn.fetch(f"SELECT {', '.join(LEDGER_COLUMNS)} FROM postings "
                                f"ORDER BY agency, entry_id, line")
    finally:
        await conn.close()
    return [tuple(row) for row in rows]


def _logged(inst: Installation, instance: str, text: str) -> bool:
    path = inst.logs / f"{instance}.log"
    return path.exists() and text in path.read_text(errors="replace")


async def active_clearing(inst: Installation) -> str | None:
    """The clearing instance that holds the leadership lock now (by its process id, from
    PostgreSQL: shared/messaging/leadership.ACTIVE_QUERY), None while none does."""
    from shared.messaging.leadership import ACTIVE_QUERY

    conn = await asyncpg.connect(inst.database_url)
    try:
        pids = {row[0] for row in await conn.fetch(ACTIVE_QUERY, "clearing")}
    finally:
        await conn.close()
    holders = [i for i, p in inst.services.processes.items()
               if p.pid in pids and p.poll() is None]
    assert len(holders) <= 1, f"several clearing instances hold the leadership: {holders}"
    return holders[0] if holders else None


async def wait_active_clearing(inst: Installation, *, other_than: str | None = None,
                               timeout: float = 90) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        active = await active_clearing(inst)
        if active is not None and active != other_than:
            return active
        assert asyncio.get_running_loop().time() < deadline, "no clearing instance took over"
        await asyncio.sleep(0.3)


async def start_services(inst: Installation, instances: int, timeout: float = 120) -> None:
    """`instances` processes of each service; wait until every filing and settlement
    instance has started and one clearing instance is active (the others on standby)."""
    supervisor = inst.services.supervisor
    for name in SERVICES:
        supervisor.start(name, instances=instances)
        inst.starts[name] += instances
    expected = [i for n in ("filing", "settlement") for i in supervisor.instances(n)]
    deadline = asyncio.get_running_loop().time() + timeout
    while not (all(_logged(inst, i, "started successfully") for i in expected)
               and any(_logged(inst, i, "started successfully")
                       for i in supervisor.instances("clearing"))):
        assert not inst.exited(), f"instances ended while starting: {inst.exited()}"
        assert asyncio.get_running_loop().time() < deadline, "services did not start"
        await asyncio.sleep(0.3)
    inst.note(f"{instances} instance(s) of each service started; clearing active: "
              f"{await wait_active_clearing(inst)}")


@contextlib.contextmanager
def partitions(count: int | None) -> Iterator[None]:
    """The namespace's topics with `count` partitions (all contract topics), as
    ``infra up --brokers 3`` makes them; None: shared.topics' defaults."""
    names = ("CLEARINGHOUSE_PERSON_PARTITIONS", "CLEARINGHOUSE_AGENCY_PARTITIONS")
    saved = {n: os.environ.get(n) for n in names}
    if count is not None:
        os.environ.update({n: str(count) for n in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def run_month(bootstrap: str, database_url: str, logs: Path, *, instances: int,
                    topic_partitions: int | None = None,
                    faults: Callable[[Installation], Awaitable[None]] | None = None
                    ) -> Outcome:
    """The seeded month with `instances` of each service on `bootstrap`, checked against
    the hand-computed outcome (tests/faults/harness.run_and_check), then read back."""
    work = workload()
    inst = Installation(bootstrap, database_url, logs)
    timings = Timings()
    with partitions(topic_partitions):
        await inst.create_topics()
    try:
        await start_services(inst, instances)
        await run_and_check(inst, work, timings=timings, waves=20,
                            seconds=max(8.0, SETTLEMENTS / 300),
                            while_ingesting=faults(inst) if faults else None,
                            answer_timeout=300, results_timeout=180)
        assert inst.exited() == {}, f"instances ended on their own: {inst.exited()}"
        values = await read_results(inst)
        ledger = await read_ledger(inst)
        heads = await check_chain_heads(inst, values)
    finally:
        inst.stop()
        log_step(f"timings: {timings.marks}")
    outcome = Outcome(results_digest(values), values, ledger, inst.timeline)
    # what was compared, for a failure's reader: one result a line, in digest order
    (logs / "results.jsonl").write_bytes(b"\n".join(values[k] for k in sorted(values)))
    log_step(f"{instances} instance(s) on {bootstrap}: {len(values)} results, digest "
             f"{outcome.digest[:16]}, {len(ledger)} ledger rows {outcome.ledger_digest[:16]}, "
             f"{heads} statements' chain heads checked against the ledger")
    return outcome


def differences(expected: Outcome, got: Outcome, limit: int = 5) -> list[str]:
    """What differs between two runs, result by result and row by row (at most `limit`)."""
    problems = []
    for key in sorted(set(expected.results) | set(got.results)):
        mine, theirs = expected.results.get(key), got.results.get(key)
        if mine is None or theirs is None or comparable(mine) != comparable(theirs):
            problems.append(f"result {key}: {expected.results.get(key)!r:.300} vs "
                            f"{got.results.get(key)!r:.300}")
    missing = sorted(set(expected.ledger) - set(got.ledger))
    extra = sorted(set(got.ledger) - set(expected.ledger))
    problems += [f"ledger row missing: {row}" for row in missing[:limit]]
    problems += [f"ledger row extra: {row}" for row in extra[:limit]]
    if len(expected.ledger) != len(got.ledger):
        problems.append(f"ledger rows: {len(expected.ledger)} vs {len(got.ledger)}")
    return problems[:limit * 3]


def kill_pid(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
