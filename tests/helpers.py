"""Plain Kafka helpers for tests: publish bytes and read topics back, as an outside party would."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from services.supervisor import (
    STOP_TIMEOUT,
    Deployment,
    Supervisor,
    stop_processes,
)
from shared import inbound
from shared.messaging import clients as kafka_clients

#: Topic namespaces of tests: ``t<unix seconds, 8 hex>-<6 hex>.`` (the form before the
#: time stamp, ``t<10 hex>.``, is matched too, so old leftovers are recognised).
TEST_PREFIX = re.compile(r"^t(?:(?P<stamp>[0-9a-f]{8})-[0-9a-f]{6}|[0-9a-f]{10})\.")

#: The namespaces this test session made, removed from the broker when it ends.
SESSION_PREFIXES: set[str] = set()


def _stamp() -> tuple[str, str]:
    """The time stamp and random part of a test's names: ``<unix seconds, 8 hex>``, ``<6 hex>``."""
    return f"{int(time.time()):08x}", uuid.uuid4().hex[:6]


def _stale(pattern: re.Pattern[str], name: str, now: float, max_age: float) -> bool:
    """Whether `name` is one of `pattern`'s test names made more than ``max_age`` seconds
    ago, or one of its undated older form (no ``stamp`` group matched)."""
    match = pattern.match(name)
    if match is None:
        return False
    stamp = match.group("stamp")
    return stamp is None or now - int(stamp, 16) > max_age


def new_prefix() -> str:
    """A topic namespace of its own for one test (its topics are deleted after the session)."""
    prefix = "t{}-{}.".format(*_stamp())
    SESSION_PREFIXES.add(prefix)
    return prefix


def stale_test_topic(name: str, now: float, max_age: float) -> bool:
    """A topic of a test namespace made more than ``max_age`` seconds ago (or undated)."""
    return _stale(TEST_PREFIX, name, now, max_age)


#: Databases of tests: ``test_<unix seconds, 8 hex>_<6 hex>``; any other ``test_…`` name is
#: of the form before the time stamp and counts as undated.
TEST_DATABASE = re.compile(r"^test_(?:(?P<stamp>[0-9a-f]{8})_[0-9a-f]{6}$)?")


def new_database_name() -> str:
    """A database name of its own for one test (the test drops it; a session that did not
    end cleanly leaves it to the next session's start, which drops it after six hours)."""
    return "test_{}_{}".format(*_stamp())


def stale_test_database(name: str, now: float, max_age: float) -> bool:
    """A test's database made more than ``max_age`` seconds ago (or undated)."""
    return _stale(TEST_DATABASE, name, now, max_age)


async def create_topics(bootstrap: str, prefix: str, group_prefix: str = "clearinghouse") -> None:
    """A test namespace's topics and ACLs (the services run as their own principals)."""
    from infra.participants import prepare_namespace

    await prepare_namespace(bootstrap, prefix, group_prefix)


async def produce(bootstrap: str, topic: str, messages: Iterable[tuple[str | None, bytes]],
                  principal: str | None = None, *, sign: bool = True) -> None:
    """Publish values as their senders would: each signed by the participant its ``source``
    names (shared.inbound), unless `sign` is false (an attacker's unsigned record); as
    `principal` (default: the operator) to the broker."""
    producer = kafka_clients.producer(bootstrap, principal=principal, enable_idempotence=True,
                                linger_ms=5, max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key.encode() if key else None,
                                       headers=signed(value) if sign else [])
                   for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Read:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int

    def json(self) -> Any:
        return orjson.loads(self.value)


async def read_topic(bootstrap: str, topic: str, *, until: Callable[[list[Read]], bool],
                     timeout: float = 60.0, principal: str | None = None) -> list[Read]:
    """Read `topic` from the start until `until(records)` holds; fail with what was read."""
    consumer = kafka_clients.consumer(topic, bootstrap=bootstrap, principal=principal,
                                      enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None,
                                fetch_max_bytes=64 * 1024 * 1024,
                                max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    records: list[Read] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not until(records):
            if asyncio.get_running_loop().time() > deadline:
                shown = [r.value[:200] for r in records[:5]]
                raise AssertionError(f"{topic}: condition not met in {timeout} s; read "
                                     f"{len(records)} records: {shown}")
            batch = await consumer.getmany(timeout_ms=200)
            for tp_records in batch.values():
                records.extend(Read(r.key, r.value, dict(r.headers or ()), r.partition, r.offset)
                               for r in tp_records)
        return records
    finally:
        await consumer.stop()


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs (exists and is not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_with_env(variable: str) -> list[int]:
    """Live processes whose environment holds `variable` (``NAME=value``): the children a
    command started, which inherit its environment."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if variable.encode() in environ and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _start(supervisor: Supervisor, module_or_name: str, crash_after_commits: int | None,
           **extra_env: str) -> subprocess.Popen[bytes]:
    """A service (``filing``…) or a module (``tests.…``), with `crash_after_commits` under the
    crash tests' fault injection (tests/faults/crash.py)."""
    from tests.faults.crash import launcher

    module = module_or_name if "." in module_or_name else None
    (instance,) = supervisor.start(
        module_or_name, module=module,
        wrapper=launcher(crash_after_commits) if crash_after_commits else (), **extra_env)
    return supervisor.processes[instance]


def service_process(module_or_name: str, env: dict[str, str], log: Path, *,
                    crash_after_commits: int | None = None) -> subprocess.Popen[bytes]:
    """Start a service (``filing``…) or a module (``tests.…``) as its own process."""
    supervisor = Supervisor(env=env, logs=log.parent, log_name=lambda _: log.name)
    return _start(supervisor, module_or_name, crash_after_commits)


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    (code,) = stop_processes([process], timeout)
    return code


class Services:
    """Service processes on one topic namespace and database, for an integration test."""

    def __init__(self, bootstrap: str, database_url: str, prefix: str, logs: Path):
        self.logs = logs
        self.supervisor = Supervisor(
            Deployment(kafka_bootstrap_servers=bootstrap, database_url=database_url,
                       topic_prefix=prefix),
            logs, log_name=lambda name: f"{name.rsplit('.', 1)[-1]}.log")
        #: The topic namespace the services run on.
        self.prefix = prefix
        #: The running processes by name (the supervisor's own record).
        self.processes = self.supervisor.processes

    @property
    def env(self) -> dict[str, str]:
        """The namespace's variables (a copy), for commands run beside the services (an
        import); ``supervisor.env`` holds what every service started next also gets."""
        return {**self.supervisor.deployment.variables(), **self.supervisor.env}

    def start(self, *names: str, crash_after_commits: int | None = None,
              **extra_env: str) -> None:
        for name in names:
            _start(self.supervisor, name, crash_after_commits, **extra_env)

    def stop(self, *names: str) -> None:
        self.supervisor.stop(*names)

    def log_text(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.asynccontextmanager
async def running_services(bootstrap: str, database_url: str, logs: Path, *names: str,
                           **extra_env: str) -> AsyncIterator[Services]:
    """The services `names` as processes on `database_url` and a topic namespace of their
    own (``Services.prefix``, its topics made first); stopped when the block ends."""
    prefix = new_prefix()
    await create_topics(bootstrap, prefix)
    services = Services(bootstrap, database_url, prefix, logs)
    try:
        services.start(*names, crash_after_commits=None, **extra_env)
        yield services
    finally:
        services.stop()


def envelope(type_: str, data: dict[str, Any], *, id: str, source: str,
             time: str = "2026-10-03T09:15:00+08:00") -> bytes:
    """A CloudEvents envelope as an outside party would write it (shared.inbound)."""
    return inbound.envelope(type_, data, id=id, source=source, time=time)


def signed(value: bytes) -> list[tuple[str, bytes]]:
    """The signature header of `value` by the participant its ``source`` names; none for a
    value that names no participant with a key (deliberately bad input)."""
    return inbound.signature_headers(value, required=False)


# ---- enrolment: every person a test settles or files for is enrolled first ----------------

#: The types the enrolment registry publishes on filing.events (besides filing.rejected).
ENROLMENT_TYPES = frozenset({"person.enrolled", "person.insurance_changed", "person.left",
                             "personal_account.balance_reported"})
#: Long before any date the tests use: enrolled persons are insured on every test date.
ENROLLED_SINCE = "2020-01-01"


def enrolment(person: str, insured_agency: str, insurance_type: str = "employee", *,
              effective: str = ENROLLED_SINCE, time: str = "2026-09-01T08:00:00+08:00",
              id: str | None = None) -> tuple[str, bytes]:
    """(key, value) of the insuring agency's ``person.enrolled`` on filing.commands."""
    return person, envelope("person.enrolled", {
        "person_id": person, "insured_agency": insured_agency, "insurance_type": insurance_type,
        "effective": effective}, id=id or f"ENR-{insured_agency}-{person}",
        source=f"agency/{insured_agency}", time=time)


def not_enrolment(records: Iterable[Read]) -> list[Read]:
    """The filing.events records other than the registry's answers to enrolments."""
    return [r for r in records if r.json().get("type") not in ENROLMENT_TYPES]


async def enrol(bootstrap: str, prefix: str, persons: Iterable[tuple[str, str, str]],
                database_url: str | None = None, timeout: float = 120.0) -> None:
    """Enrol (person, insured_agency, insurance_type) through the filing service; with
    `database_url`, also wait until the settlement service has folded every enrolment, so
    that settlements sent next see it (the two topics are read independently)."""
    persons = list(persons)
    from shared.topics import FILING_COMMANDS

    await produce(bootstrap, prefix + FILING_COMMANDS, [enrolment(*p) for p in persons])
    if database_url is not None:
        await wait_enrolled(database_url, {p[0] for p in persons}, timeout)


async def wait_enrolled(database_url: str, persons: Iterable[str], timeout: float = 120.0) -> None:
    """Wait until the settlement service's filing view holds an enrolment of every person."""
    import asyncpg

    want = sorted(set(persons))
    deadline = asyncio.get_running_loop().time() + timeout
    found = 0
    while True:
        try:
            conn = await asyncpg.connect(database_url)
            try:
                found = await conn.fetchval(
                    "SELECT count(*) FROM settlement.filing_views "
                    "WHERE person_id = ANY($1::text[]) AND view ? 'enrolment'", want)
            finally:
                await conn.close()
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            found = 0  # the settlement service has not made its tables yet
        if found >= len(want):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the settlement service folded the enrolment of {found} of "
                                 f"{len(want)} persons in {timeout} s")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def own_database(server_url: str, *, template: str | None = None) -> AsyncIterator[str]:
    """A database of its own on the server at `server_url` (with the services' roles and
    schemas), dropped when the block ends; yields its URL. With `template`, a copy of that
    database (on which no session may be open meanwhile)."""
    import asyncpg

    from shared.db import drop_database, prepare_database

    name = new_database_name()
    copy = f' TEMPLATE "{template}"' if template else ""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await admin.close()
    try:
        await prepare_database(server_url, name)
        yield f"{server_url.rpartition('/')[0]}/{name}"
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await drop_database(admin, name)
        finally:
            await admin.close()
