"""Running the services under faults and comparing what they produced with `workload.Expected`.

Every check returns a list of problems, each naming the case and the differing amounts
(``expected … got …``), so that one failure says what differs without a debugger.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.clearing import scheduler
from shared import topics
from shared.messaging import clients as kafka_clients
from tests.faults import crash
from tests.faults.workload import HUB, Expected, Message, Workload, enrolment, money
from tests.helpers import (
    ENROLMENT_TYPES,
    Services,
    create_topics,
    new_prefix,
    signed,
    wait_enrolled,
)

SERVICES = ("filing", "settlement", "clearing")


def log_step(text: str) -> None:
    """Progress on the terminal (visible with ``pytest -s``) and in the junit stdout."""
    print(f"[faults {time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---- reading topics ------------------------------------------------------------------------


@dataclass
class TopicReader:
    """Reads one topic from its start and keeps everything read; survives broker restarts."""

    bootstrap: str
    topic: str
    records: list[Any] = field(default_factory=list)
    _consumer: AIOKafkaConsumer | None = None
    _next: dict[int, int] = field(default_factory=dict)
    _last_progress: float = 0.0

    async def start(self) -> TopicReader:
        self._consumer = kafka_clients.consumer(bootstrap=self.bootstrap,
            enable_auto_commit=False, group_id=None,
            auto_offset_reset="earliest", fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024, request_timeout_ms=15000)
        await self._consumer.start()
        deadline = time.monotonic() + 30
        partitions = self._consumer.partitions_for_topic(self.topic)
        while not partitions:
            assert time.monotonic() < deadline, f"topic {self.topic} has no partitions"
            await self._consumer._client.force_metadata_update()  # noqa: SLF001
            partitions = self._consumer.partitions_for_topic(self.topic)
            if not partitions:
                await asyncio.sleep(0.5)
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        for tp in assigned:  # go on after what was read already (a restarted reader)
            if tp.partition in self._next:
                self._consumer.seek(tp, self._next[tp.partition])
            else:
                await self._consumer.seek_to_beginning(tp)
        self._last_progress = time.monotonic()
        return self

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self) -> int:
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=300, max_records=20000)
        n = 0
        for records in batch.values():
            self.records.extend(records)
            for record in records:
                self._next[record.partition] = record.offset + 1
            n += len(records)
        if n:
            self._last_progress = time.monotonic()
        elif time.monotonic() - self._last_progress > 20:
            # A consumer assigned right after the topic was created can stay stuck on a
            # partition without a leader yet: start over from where it was.
            await self._consumer.stop()
            await self.start()
        return n

    async def catch_up(self, timeout: float = 30) -> None:
        """Read up to the end of every partition as it is now."""
        assert self._consumer is not None
        assignment = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(assignment)
        deadline = time.monotonic() + timeout
        while any(self._next.get(tp.partition, 0) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.topic}: could not read up to {ends} in {timeout} s")
            await self.poll()

    async def until(self, condition: Callable[[list[Any]], bool | str], *, timeout: float,
                    what: str, on_tick: Callable[[], Awaitable[None]] | None = None) -> None:
        """Poll until `condition(records)` is True. A string result is the current shortfall,
        quoted in the failure message when the time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            state = condition(self.records)
            if state is True:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not reached within {timeout:.0f} s on "
                                     f"{self.topic} ({len(self.records)} records read); "
                                     f"missing: {state}")
            try:
                await self.poll()
            except Exception as exc:  # the broker is down for a moment: keep waiting
                log_step(f"reader {self.topic}: {exc!r}")
                await asyncio.sleep(1)
            if on_tick is not None:
                await on_tick()

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.records]


def distinct_events(records: Iterable[Any]) -> tuple[list[dict[str, Any]], int]:
    """Events by distinct CloudEvents id (the contract's idempotency key), first copy kept,
    and the number of redelivered copies (allowed: at-least-once delivery)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    copies = 0
    for record in records:
        event = orjson.loads(record.value)
        key = (event["source"], event["id"])
        if key in seen:
            copies += 1
            if seen[key] != event:
                raise AssertionError(f"event {key} published twice with different content:\n"
                                     f"{seen[key]}\n{event}")
            continue
        seen[key] = event
    return list(seen.values()), copies


# ---- producing -------------------------------------------------------------------------------


async def produce(bootstrap: str, prefix: str, messages: Iterable[Message], *,
                  twice: bool = False) -> None:
    producer = kafka_clients.producer(bootstrap, enable_idempotence=True,
                                linger_ms=5, max_request_size=16 * 1024 * 1024,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = []
        for topic, key, value in messages:
            headers = signed(value)
            for _ in range(2 if twice else 1):
                futures.append(await producer.send(prefix + topic, value,
                                                   key=key.encode() if key else None,
                                                   headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# ---- a running installation ------------------------------------------------------------------


def reference_without_funds(where: Path) -> Path:
    """A copy of the reference data without reference/revolving-fund.toml."""
    from shared.reference import DEFAULT_DIRECTORY

    copy = where / "reference-without-funds"
    if not copy.exists():
        shutil.copytree(DEFAULT_DIRECTORY, copy, ignore=shutil.ignore_patterns(
            "revolving-fund.toml"))
    return copy


class Installation:
    """The three services on a topic namespace and database of their own, and the controls a
    fault test needs: kill -9, restart, and the log of what happened."""

    def __init__(self, bootstrap: str, database_url: str, logs: Path, prefix: str | None = None):
        self.bootstrap = bootstrap
        self.database_url = database_url
        self.prefix = prefix or new_prefix()
        self.logs = logs
        self.services = Services(bootstrap, database_url, self.prefix, logs)
        # The expectations are worked out for settlements, refunds and the clearing between
        # agencies; the revolving funds (reference data) are left out of this installation
        # (their determinism is the business of test_properties and test_audit).
        self.services.supervisor.env["CLEARINGHOUSE_REFERENCE_DIR"] = str(
            reference_without_funds(logs))
        self.kills: Counter[str] = Counter()
        self.starts: Counter[str] = Counter()
        self.timeline: list[str] = []
        self.t0 = time.monotonic()

    def note(self, text: str) -> None:
        line = f"{time.monotonic() - self.t0:7.1f}s {text}"
        self.timeline.append(line)
        log_step(line)

    async def create_topics(self) -> None:
        await create_topics(self.bootstrap, self.prefix)

    def start(self, *names: str, **env: str) -> None:
        self.services.start(*names, **env)
        self.starts.update(names)

    def stop(self) -> None:
        for name in list(self.services.processes):
            self.services.stop(name)

    def start_count(self, name: str) -> int:
        return sum(1 for line in self.services.log_text(name).splitlines()
                   if "started successfully" in line)

    async def wait_started(self, *names: str, timeout: float = 60) -> None:
        """Wait until each service's FastStream app reports its subscribers started (the
        latest start of each, counted in its log)."""
        deadline = time.monotonic() + timeout
        for name in names or tuple(self.services.processes):
            while self.start_count(name) < self.starts[name]:
                process = self.services.processes.get(name)
                if process is not None and process.poll() is not None:
                    raise AssertionError(f"{name} exited with {process.returncode} while "
                                         f"starting; log tail:\n"
                                         f"{self.services.log_text(name)[-3000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} did not start within {timeout:.0f} s")
                await asyncio.sleep(0.2)

    def kill(self, name: str) -> None:
        """kill -9: no shutdown hook runs, no offset is committed, the outbox stays as is."""
        process = self.services.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        self.kills[name] += 1
        self.note(f"kill -9 {name} (pid {process.pid}, #{self.kills[name]})")

    def restart(self, name: str, *, crash_after_commits: int | None = None) -> None:
        self.services.start(name, crash_after_commits=crash_after_commits)
        self.starts[name] += 1
        self.note(f"started {name} (pid {self.services.processes[name].pid})"
                  + (f" to crash after {crash_after_commits} commits"
                     if crash_after_commits else ""))

    def exited(self) -> dict[str, int]:
        """Services that ended on their own, with their exit codes."""
        return {n: p.returncode for n, p in self.services.processes.items()
                if p.poll() is not None}

    def reader(self, topic: str) -> TopicReader:
        return TopicReader(self.bootstrap, self.prefix + topic)

    async def advance(self, to: date, start: date | None = None) -> list[date]:
        return await scheduler.advance(self.bootstrap, to, prefix=self.prefix, start=start)

    async def wait_published(self, timeout: float = 60) -> None:
        """Until every service's outbox is empty: all it decided is on its topics."""
        deadline = time.monotonic() + timeout
        for schema in SERVICES:
            conn = await self.connect(schema)
            try:
                while True:
                    try:
                        left = await conn.fetchval("SELECT count(*) FROM outbox")
                    except asyncpg.UndefinedTableError:
                        left = 0
                    if not left:
                        break
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{schema}: {left} events still in the outbox")
                    await asyncio.sleep(0.2)
            finally:
                await conn.close()

    async def connect(self, schema: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.database_url, server_settings={"search_path": schema})


async def chaos(inst: Installation, stop: asyncio.Event, rng: random.Random, *,
                rounds: int, gap: tuple[float, float], down: tuple[float, float],
                names: tuple[str, ...] = SERVICES,
                crash_after_commits: dict[str, int] | None = None) -> None:
    """Kill each service in turn at random moments, `rounds` times over, and restart it.
    A restart named in `crash_after_commits` runs under the crash injection (crash.py), so
    that the process dies by itself right after a commit and before offsets and outbox
    move on (the narrowest window); it is then started again normally."""
    planned = crash_after_commits or {}
    for round_ in range(rounds):
        for name in names:
            if stop.is_set():
                return
            try:
                await asyncio.wait_for(stop.wait(), rng.uniform(*gap))
                return
            except TimeoutError:
                pass
            inst.kill(name)
            await asyncio.sleep(rng.uniform(*down))
            if round_ == 0 and name in planned:
                inst.restart(name, crash_after_commits=planned[name])
                process = inst.services.processes[name]
                deadline = time.monotonic() + 15
                while process.poll() is None and time.monotonic() < deadline \
                        and not stop.is_set():
                    await asyncio.sleep(0.2)
                if process.poll() is None:
                    inst.kill(name)  # nothing left to commit: end it the hard way
                else:
                    inst.services.processes.pop(name)
                    inst.note(f"{name} died by itself after {planned[name]} commits "
                              f"(exit {process.returncode})")
                    if process.returncode != crash.EXIT_CODE:
                        raise AssertionError(f"{name} exited {process.returncode}, not 86, "
                                             f"with the crash injection; see its log")
            inst.restart(name)


# ---- comparing with the expected outcome ----------------------------------------------------


def _differs(case: str, expected: Any, got: Any) -> str:
    return f"{case}: expected {expected}, got {got}"


def check_settlement_events(events: list[dict[str, Any]], expected: Expected) -> list[str]:
    """Every settlement completed and every refund refunded exactly once, with the
    hand-computed amounts; nothing else."""
    problems: list[str] = []
    completed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    refunded: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rejected: dict[str, list[str]] = defaultdict(list)
    for event in events:
        data = event["data"]
        if event["type"] == "settlement.completed":
            completed[data["settlement_id"]].append(data)
        elif event["type"] == "settlement.refunded":
            refunded[data["refund_id"]].append(data)
        elif event["type"] == "settlement.rejected" and data["settlement_id"] in expected.rejected:
            rejected[data["settlement_id"]].append(",".join(r["code"] for r in data["reasons"]))
        else:
            problems.append(f"unexpected {event['type']}: {data}")
    for settlement_id, code in sorted(expected.rejected.items()):
        if rejected.get(settlement_id) != [code]:
            problems.append(f"settlement {settlement_id} sent before its refund: expected one "
                            f"settlement.rejected {code}, got {rejected.get(settlement_id)}")
    for kind, got, want in (("settlement", completed, expected.completed),
                            ("refund", refunded, expected.refunded)):
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        if missing:
            problems.append(f"{len(missing)} {kind}(s) never answered, e.g. {missing[:5]}")
        if extra:
            problems.append(f"{len(extra)} unknown {kind}(s) answered, e.g. {extra[:5]}")
        for ident, copies in sorted(got.items()):
            if len(copies) > 1:
                problems.append(f"{kind} {ident} taken {len(copies)} times (distinct event ids)")
            if ident in want:
                amounts = {k: copies[0].get(k) for k in want[ident]}
                if amounts != want[ident]:
                    problems.append(_differs(f"{kind} {ident} amounts", want[ident], amounts))
    return problems


def results_by_type(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        out[event["type"]].append(event["data"])
    return out


def _line_view(line: dict[str, Any]) -> dict[str, Any]:
    return {k: line[k] for k in ("receivable", "receivable_count", "payable", "payable_count")}


def _check_issued(what: str, got: dict[Any, list[dict[str, Any]]],
                  want: dict[Any, dict[str, Any]],
                  view: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]], *,
                  differs: Callable[[str, dict[str, Any], dict[str, Any]], str] = _differs,
                  issued: str = "issued") -> list[str]:
    """Each expected document (`want`, by key) issued once (`got`, every copy by key) and
    its `view` (of the first copy, given the expected one) equal to the expected; none
    unexpected. `what` names a document (``daily report``) in the problems."""
    problems: list[str] = []
    for key in sorted(set(want) | set(got)):
        name = f"{what} {key}"
        if key not in got:
            problems.append(f"{name}: missing, expected {want[key]}")
            continue
        if key not in want:
            problems.append(f"{name}: not expected, got {got[key][0]}")
            continue
        if len(got[key]) > 1:
            problems.append(f"{name}: {issued} {len(got[key])} times")
        seen = view(got[key][0], want[key])
        if seen != want[key]:
            problems.append(differs(name, want[key], seen))
    return problems


def _copies(documents: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any],
            cycle: str | None = None) -> dict[Any, list[dict[str, Any]]]:
    """Every copy of each document by its `key` (only those of `cycle`, when given)."""
    out: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for document in documents:
        if cycle is None or document["cycle"] == cycle:
            out[key(document)].append(document)
    return out


def check_daily_reports(reports: list[dict[str, Any]], expected: Expected) -> list[str]:
    got = _copies(reports, lambda r: (r["agency"], r["date"]))

    def view(report: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
        return {"counterparts": {c["counterpart"]: _line_view(c) for c in report["counterparts"]},
                "settlement_count": report["settlement_count"], "checksum": report["checksum"]}

    return _check_issued("daily report", got, expected.daily_reports(), view)


def _field_differences(name: str, expected: dict[str, Any], got: dict[str, Any]) -> str:
    diff = {k: (expected[k], got[k]) for k in got if got[k] != expected[k]}
    return f"{name}: differs (expected, got): {diff}"


def check_statements(statements: list[dict[str, Any]], expected: Expected,
                     cycle: str) -> list[str]:
    got = _copies(statements, lambda s: s["agency"], cycle)

    def view(s: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
        return {"lines": {line["counterpart"]: _line_view(line) for line in s["lines"]},
                "receivable": s["receivable"], "payable": s["payable"],
                "adjustments": s["adjustments"], "net": s["net"], "checksum": s["checksum"]}

    problems = _check_issued(f"statement {cycle}", got, expected.statements(), view,
                             differs=_field_differences)
    nets = sum((Decimal(s[0]["net"]) for s in got.values()), Decimal(0))
    if nets != 0:
        problems.append(f"statements {cycle}: the nets add up to {nets}, not 0.00")
    return problems


def check_instructions(instructions: list[dict[str, Any]], expected: Expected,
                       cycle: str) -> list[str]:
    got = _copies(instructions, lambda i: i["instruction_id"], cycle)
    problems = _check_issued(
        "instruction", got, expected.instructions(cycle),
        lambda i, _: {k: i[k] for k in ("payer", "payee", "amount", "due_on")})
    into = sum((Decimal(i[0]["amount"]) for i in got.values() if i[0]["payee"] == HUB),
               Decimal(0))
    out = sum((Decimal(i[0]["amount"]) for i in got.values() if i[0]["payer"] == HUB),
              Decimal(0))
    if into != out:
        problems.append(f"instructions {cycle}: the hub takes in {into} but pays out {out}")
    return problems


def check_difference_notices(notices: list[dict[str, Any]], expected: Expected) -> list[str]:
    got = _copies(notices, lambda n: (n["agency"], n["settlement_id"]))
    return _check_issued("difference notice", got, expected.difference_notices(),
                         lambda notice, want: {k: notice.get(k) for k in want}, issued="sent")


async def check_ledgers(conn: asyncpg.Connection, expected: Expected, *,
                        cleared_into_hub: bool) -> list[str]:
    """The clearing schema's postings: one journal entry per obligation per ledger (none
    missing, none twice), balances equal to the expected ones, sequences without gaps, every
    entry balanced, and the hash chain intact."""
    from services.clearing.domain.chain import verify_chain
    from services.clearing.store import posting_of

    problems: list[str] = []
    rows = await conn.fetch("SELECT * FROM postings ORDER BY agency, sequence")
    entries: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        entries[(row["agency"], row["entry_id"])].append(row)
    got: Counter[tuple[str, str, str, str]] = Counter()
    for (agency, _), lines in entries.items():
        first = lines[0]
        if first["kind"] in ("settlement", "refund"):
            got[(agency, first["kind"], first["settlement_id"], money(first["amount"]))] += 1
        if sum(r["amount"] if r["side"] == "debit" else -r["amount"] for r in lines) != 0:
            problems.append(f"journal entry {first['entry_id']} of {agency} does not balance")
    want = expected.entries()
    for key in sorted(set(want) | set(got)):
        if want[key] != got[key]:
            problems.append(f"journal entries {key}: expected {want[key]}, got {got[key]}")
    balances: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        sign = 1 if row["side"] == "debit" else -1
        balances[(row["agency"], row["account"], row["counterpart"])] += sign * row["amount"]
    got_balances = {k: money(v) for k, v in sorted(balances.items()) if v != 0}
    want_balances = expected.balances(cleared_into_hub)
    for account in sorted(set(want_balances) | set(got_balances)):
        if want_balances.get(account) != got_balances.get(account):
            problems.append(f"ledger balance {account}: expected "
                            f"{want_balances.get(account, '0.00')}, "
                            f"got {got_balances.get(account, '0.00')}")
    by_agency: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_agency[row["agency"]].append(row)
    for agency, agency_rows in sorted(by_agency.items()):
        sequences = [r["sequence"] for r in agency_rows]
        if sequences != list(range(1, len(sequences) + 1)):
            problems.append(f"ledger {agency}: sequence numbers have gaps or repeats")
        broken = verify_chain([posting_of(r) for r in agency_rows])
        if broken is not None:
            problems.append(f"ledger {agency}: hash chain broken at posting {broken + 1}")
    return problems


def fail_on(problems: list[str], context: str = "") -> None:
    if problems:
        shown = "\n  ".join(problems[:40])
        more = f"\n  … and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise AssertionError(f"{context}{len(problems)} difference(s):\n  {shown}{more}")


# ---- the whole flow of one workload ---------------------------------------------------------


def settlement_shortfall(expected: Expected) -> Callable[[list[Any]], bool | str]:
    """A `TopicReader.until` condition: every expected settlement and refund answered."""
    want = {("settlement.completed", k) for k in expected.completed}
    want |= {("settlement.refunded", k) for k in expected.refunded}
    seen: set[tuple[str, str]] = set()
    position = [0]

    def condition(records: list[Any]) -> bool | str:
        for record in records[position[0]:]:
            event = orjson.loads(record.value)
            data = event["data"]
            key = data.get("refund_id") if event["type"].endswith("refunded") else \
                data.get("settlement_id")
            seen.add((event["type"], key))
        position[0] = len(records)
        missing = want - seen
        return True if not missing else f"{len(missing)} answers, e.g. {sorted(missing)[:3]}"

    return condition


def results_shortfall(types: dict[str, int]) -> Callable[[list[Any]], bool | str]:
    """Wait for at least n distinct results of each type."""

    def condition(records: list[Any]) -> bool | str:
        ids: dict[str, set[str]] = defaultdict(set)
        for record in records:
            event = orjson.loads(record.value)
            ids[event["type"]].add(event["id"])
        short = {t: f"{len(ids[t])}/{n}" for t, n in types.items() if len(ids[t]) < n}
        return True if not short else str(short)

    return condition


async def wait_filings(inst: Installation, work: Workload, timeout: float) -> list[str]:
    """Each filing registered exactly once (by distinct event)."""
    reader = await inst.reader(topics.FILING_EVENTS).start()
    try:
        want = {f.filing_id for f in work.filings}

        def condition(records: list[Any]) -> bool | str:
            got = {orjson.loads(r.value)["data"].get("filing_id") for r in records}
            missing = want - got
            return True if not missing else f"{len(missing)} filings"

        await reader.until(condition, timeout=timeout, what="filings registered")
        events, _ = distinct_events(reader.records)
    finally:
        await reader.stop()
    problems = []
    registered = Counter(e["data"]["filing_id"] for e in events
                         if e["type"] == "filing.registered")
    for filing_id in sorted(want):
        if registered[filing_id] != 1:
            problems.append(f"filing {filing_id}: registered {registered[filing_id]} times")
    # The registry's answers to the enrolments sent first are expected too.
    others = [e for e in events if e["type"] != "filing.registered"
              and e["type"] not in ENROLMENT_TYPES]
    if others:
        problems.append(f"unexpected filing events: {others[:3]}")
    return problems


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass
class Timings:
    marks: dict[str, float] = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.monotonic() - self.start, 1)
        log_step(f"{name} at {self.marks[name]} s")


async def produce_in_waves(inst: Installation, messages: list[Message], *, waves: int,
                           seconds: float) -> None:
    """Send the workload as `waves` bursts spread over `seconds`, so that faults injected
    meanwhile hit a system that is busy reading, deciding and publishing."""
    size = max(1, -(-len(messages) // waves))
    for n in range(0, len(messages), size):
        await produce(inst.bootstrap, inst.prefix, messages[n:n + size])
        await asyncio.sleep(seconds / waves)


async def enrol_persons(inst: Installation, persons: dict[str, tuple[str, str]],
                        timeout: float = 180) -> None:
    """Enrol person → (insured_agency, insurance_type) and wait until the settlement service
    has folded every enrolment: settlements sent next are decided against the registry."""
    await produce(inst.bootstrap, inst.prefix,
                  [enrolment(p, agency, insurance) for p, (agency, insurance) in persons.items()])
    await wait_enrolled(inst.database_url, persons, timeout)


async def run_and_check(inst: Installation, work: Workload, *, timings: Timings,
                        waves: int, seconds: float,
                        while_ingesting: Awaitable[None] | None = None,
                        after_day: Callable[[str], Awaitable[None]] | None = None,
                        answer_timeout: float = 300, results_timeout: float = 180,
                        send: Callable[[], Awaitable[None]] | None = None,
                        after_answers: Callable[[TopicReader], Awaitable[None]] | None = None,
                        ) -> None:
    """The whole month: send the workload (faults injected by `while_ingesting`), wait for
    every answer, run the calendar to the statements (2 Nov) and the instructions (10 Nov),
    with `after_day` called after each advance (more faults), then compare everything.
    `send` replaces the default sending in waves (a test that must not send while the
    broker is down sends, breaks and sends again itself)."""
    expected = work.expected()
    await enrol_persons(inst, work.persons)
    answers = await inst.reader(topics.SETTLEMENT_EVENTS).start()
    results = await inst.reader(topics.CLEARING_RESULTS).start()
    fault_task = asyncio.ensure_future(while_ingesting) if while_ingesting else None
    try:
        if send is not None:
            await send()
        else:
            await produce_in_waves(inst, work.messages, waves=waves, seconds=seconds)
        timings.mark("sent")

        async def faults_failed() -> None:
            if fault_task is not None and fault_task.done() and fault_task.exception():
                raise fault_task.exception()  # type: ignore[misc]

        await answers.until(settlement_shortfall(expected), timeout=answer_timeout,
                            what="every settlement and refund answered", on_tick=faults_failed)
        timings.mark("answered")
        if after_answers is not None:
            await after_answers(answers)
        if fault_task is not None:
            await fault_task
            timings.mark("faults done")
        await inst.advance(date(2026, 11, 2), start=date(2026, 10, 1))
        if after_day:
            await after_day("2026-11-02")
        await results.until(results_shortfall({
            "clearing.statement_issued": len(expected.statements()),
            "clearing.daily_report": len(expected.daily_reports())}),
            timeout=results_timeout, what="daily reports and statements of 2026-10")
        timings.mark("statements")
        await inst.advance(date(2026, 11, 10))
        if after_day:
            await after_day("2026-11-10")
        await results.until(results_shortfall({
            "clearing.net_transfer_instruction": len(expected.instructions())}),
            timeout=results_timeout, what="net-transfer instructions of 2026-10")
        timings.mark("instructions")
        await asyncio.sleep(2)  # a wrongly doubled effect would show by now
        await inst.wait_published()
        await answers.catch_up()
        await results.catch_up()
        events, answer_copies = distinct_events(answers.records)
        problems = check_settlement_events(events, expected)
        by_type = results_by_type(distinct_events(results.records)[0])
        problems += check_daily_reports(by_type["clearing.daily_report"], expected)
        problems += check_statements(by_type["clearing.statement_issued"], expected, "2026-10")
        problems += check_instructions(by_type["clearing.net_transfer_instruction"], expected,
                                       "2026-10")
        problems += check_difference_notices(by_type["clearing.difference_notice"], expected)
        unexpected = sorted(set(by_type) - {"clearing.daily_report", "clearing.statement_issued",
                                            "clearing.net_transfer_instruction",
                                            "clearing.difference_notice"})
        problems += [f"unexpected {t}: {by_type[t][:2]}" for t in unexpected]
        conn = await inst.connect("clearing")
        try:
            problems += await check_ledgers(conn, expected, cleared_into_hub=True)
        finally:
            await conn.close()
        if work.filings:
            problems += await wait_filings(inst, work, timeout=60)
        timings.mark("checked")
        log_step(f"{len(events)} distinct answers, {answer_copies} redelivered copies on "
                 f"settlement.events; kills {dict(inst.kills)}")
        fail_on(problems, f"{len(work.settlements)} settlements, {len(work.refunds)} refunds; "
                          f"faults: {dict(inst.kills)}\n")
    finally:
        if fault_task is not None and not fault_task.done():
            fault_task.cancel()
        await answers.stop()
        await results.stop()
