"""The demo's orchestration: a fresh namespace and database, the three services as child
processes, the province's events published as hospitals and agencies would, the clearing
calendar advanced day by day, and the results read back from Kafka and the ledger.

This is the orchestrator, not domain code: it may read the wall clock (to name the
namespace and time the run). Every business time comes from the generated events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import time as wallclock
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import TopicPartition

from services.clearing import queries, scheduler
from services.clearing.domain.ledger import Posting
from services.clearing.domain.periods import (
    DISTRIBUTION_DAY,
    INSTRUCTIONS_DAY,
    REMITTANCE_DUE_DAY,
    STATEMENTS_DAY,
    cycle_of,
    milestone,
)
from services.registry import SERVICES
from services.supervisor import Deployment, Supervisor
from shared import inbound, participant_keys, topics
from shared.business_time import SHANGHAI, business_date
from shared.db import drop_database, prepare_database, redact_url
from shared.events import Envelope, Rejection, decode
from shared.events.clearing import DailyReport, NetTransferInstruction, StatementIssued
from shared.events.settlement import SettlementCompleted, SettlementRefunded
from shared.messaging import clients as kafka_clients
from shared.money import format_money
from shared.reference import ReferenceData, load_reference
from tools.demo.province import Message, Province, event_id, make_message

#: What each service reads (its consumer group must reach the end of these to be idle).
INPUTS = {"filing": (topics.FILING_COMMANDS, topics.CLEARING_SCHEDULE),
          "settlement": (topics.SETTLEMENT_SUBMISSIONS, topics.FILING_EVENTS,
                         topics.REIMBURSEMENT_CLAIMS),
          "clearing": (topics.SETTLEMENT_EVENTS, topics.CLEARING_SUBMISSIONS,
                       topics.CLEARING_SCHEDULE)}
OUTPUTS = (topics.FILING_EVENTS, topics.SETTLEMENT_EVENTS, topics.CLEARING_RESULTS,
           topics.REIMBURSEMENT_EVENTS)
FILING_ANSWERS = ("filing.registered", "filing.rejected", "benefit.status_changed",
                  "person.enrolled")


def late_remittance_day(cycle: str) -> date:
    """The day after the remittances fall due (the 15th, or the next working day): the
    demo's late payer (the largest net payer) remits then, after its revolving fund has
    advanced the remittance at the start of that day (docs/clearing.md)."""
    return milestone(cycle, REMITTANCE_DUE_DAY) + timedelta(days=1)

#: From the start of this day of the month a care agency stops direct settlement for one
#: person (supervision, docs/filing.md).
SUPERVISION_DAY = 16
#: On this day of the next month the supervised person's insuring agency claims manual
#: reimbursement for every settlement the stop refused (docs/settlement.md).
REIMBURSEMENT_DAY = 4


class DemoError(RuntimeError):
    """The demo cannot go on; the message says what happened and where to look."""


@dataclass(frozen=True)
class Namespace:
    """Where one demo run lives: its topics, its database, its logs."""

    stamp: str
    topic_prefix: str
    database: str
    database_url: str
    kafka_bootstrap_servers: str
    logs: Path
    started_at: str

    @classmethod
    def fresh(cls, bootstrap: str, server_url: str, cache: Path, now: datetime) -> Namespace:
        stamp = now.strftime("%Y%m%d%H%M%S")
        parts = urlsplit(server_url)
        url = urlunsplit(parts._replace(path=f"/demo_{stamp}"))
        return cls(stamp, f"demo.{stamp}.", f"demo_{stamp}", url, bootstrap,
                   cache / "demo" / stamp, now.astimezone().isoformat(timespec="seconds"))

    @property
    def group_prefix(self) -> str:
        """Consumer groups of this run's services, apart from every other run's."""
        return f"demo.{self.stamp}"

    @property
    def participant_keys(self) -> Path:
        """This run's registry of participants' public keys (its private keys beside it)."""
        return self.logs / "secrets" / "participant-keys.toml"

    @property
    def participant_secrets(self) -> Path:
        return self.logs / "secrets" / "keys"

    def record(self, path: Path, **extra: Any) -> None:
        """Write `<cache>/last-demo.json` so an auditor finds the run (audit replay reads it)."""
        document = {"stamp": self.stamp, "prefix": self.topic_prefix,
                    "topic_prefix": self.topic_prefix,
                    "database": self.database,
                    # redacted: the audit takes the password from its own DATABASE_URL
                    "database_url": redact_url(self.database_url),
                    "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
                    "logs": str(self.logs), "started_at": self.started_at,
                    "participant_keys": str(self.participant_keys),
                    "participant_secrets": str(self.participant_secrets), **extra}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


@dataclass
class Outcome:
    """What the run produced, for the report."""

    namespace: Namespace
    province: Province
    events: dict[str, list[Envelope[Any]]]
    postings: list[Posting]
    published: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    #: The person a care agency stopped direct settlement for (None: no case in the month).
    supervision: SupervisionCase | None = None

    def of(self, topic: str, *types: str) -> list[Any]:
        """Payloads of `topic` of the given types, in arrival order."""
        return [e.data for e in self.events[topic] if e.type in types]


class Steps:
    """Progress of the run; the silent default (``--json``) reports nothing."""

    def start(self, name: str, total: int) -> None: ...

    def advance(self, name: str, amount: int = 1, description: str | None = None) -> None: ...


async def prune(bootstrap: str, server_url: str, cache: Path, keep: int,
                family: str = "demo") -> list[str]:
    """Remove all but the newest ``keep`` earlier runs of ``family``: their topics
    (``<family>.<stamp>.*``), databases (``<family>_<stamp>``) and logs
    (``<cache>/<family>/<stamp>``). Every demo run makes a namespace of its own, and a broker
    holding thousands of partitions is slow to start. Returns the stamps removed."""
    from infra.kafka import delete_topics

    topic_run = re.compile(rf"^{re.escape(family)}\.(\d{{14}})\.")
    database_run = re.compile(rf"^{re.escape(family)}_(\d{{14}})$")
    conn = await asyncpg.connect(server_url)
    try:
        databases = [r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")]
        stamps = {m.group(1) for m in map(database_run.match, databases) if m}
        admin = kafka_clients.admin(bootstrap, request_timeout_ms=60000)
        await admin.start()
        try:
            stamps |= {m.group(1) for m in map(topic_run.match, await admin.list_topics()) if m}
        finally:
            await admin.close()
        old = sorted(stamps, reverse=True)[max(keep, 0):]
        await delete_topics(bootstrap, lambda n: bool((m := topic_run.match(n))
                                                      and m.group(1) in old))
        for stamp in old:
            if f"{family}_{stamp}" in databases:
                await drop_database(conn, f"{family}_{stamp}")
            shutil.rmtree(cache / family / stamp, ignore_errors=True)
        return sorted(old)
    finally:
        await conn.close()


async def create_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.DuplicateDatabaseError as exc:
        raise DemoError(f"database {name} already exists: another demo started in the same "
                        "second; run the demo again") from exc
    finally:
        await conn.close()
    await prepare_database(server_url, name)  # the services' roles and schemas


# ---- the services -----------------------------------------------------------------------


class ServiceProcesses:
    """The three services as child processes (`services.supervisor`), logging to files,
    stopped on every exit; a killed demo takes them with it."""

    def __init__(self, deployment: Deployment, logs: Path):
        self.logs = logs
        # a session of their own: Ctrl-C reaches the demo, which stops them
        self.supervisor = Supervisor(deployment, logs, new_session=True)

    def start(self) -> None:
        for name in SERVICES:
            self.supervisor.start(name)

    def check(self) -> None:
        for name, code in self.supervisor.exited().items():
            log = self.supervisor.log_path(name)
            tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
            raise DemoError(f"the {name} service exited with status {code}; "
                            f"see {log}:\n  " + "\n  ".join(tail))

    def stop(self) -> None:
        self.supervisor.stop()


# ---- Kafka: publishing, following the outputs, consumer lag ------------------------------


class Follower:
    """Reads the services' outputs from the start, as agencies and auditors would: a plain
    consumer of filing.events, settlement.events and clearing.results."""

    def __init__(self, bootstrap: str, prefix: str, services: ServiceProcesses):
        self.prefix, self.services = prefix, services
        self.events: dict[str, list[Envelope[Any]]] = {t: [] for t in OUTPUTS}
        self.count = 0
        #: Records a service published that break the contract (a bug to report).
        self.broken: list[str] = []
        self._changed = asyncio.Event()
        # it reads every output, as the auditor may
        self._consumer = kafka_clients.consumer(
            bootstrap=bootstrap, principal=kafka_clients.AUDITOR, group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        partitions = [TopicPartition(spec.name, p) for spec in topics.all_topics(self.prefix)
                      if spec.name[len(self.prefix):] in OUTPUTS for p in range(spec.partitions)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._follow(), name="demo-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _follow(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for partition, records in batch.items():
                topic = partition.topic[len(self.prefix):]
                for record in records:
                    try:
                        self.events[topic].append(decode(topic, record.value))
                    except Rejection as exc:
                        self.broken.append(f"{topic} partition {record.partition} offset "
                                           f"{record.offset} breaks the contract: {exc}")
                self.count += len(records)
            if batch:
                self._changed.set()

    def of(self, topic: str, *types: str) -> list[Any]:
        return [e.data for e in self.events[topic] if e.type in types]

    async def wait(self, done: Callable[[], bool], what: str, *, stall: float = 90.0,
                   required: bool = True) -> bool:
        """Until `done()`; give up after `stall` seconds in which nothing new arrived."""
        loop = asyncio.get_running_loop()
        seen, deadline = self.count, loop.time() + stall
        while not done():
            self.services.check()
            if self._task is not None and self._task.done():
                self._task.result()
            if self.count != seen:
                seen, deadline = self.count, loop.time() + stall
            elif loop.time() > deadline:
                if required:
                    raise DemoError(f"waited {stall:.0f} s for {what} and nothing more came; "
                                    f"the service logs are in {self.services.logs}")
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.5)
        return True


class Publisher:
    """What the outside parties send, each as itself: one idempotent producer per
    participant (``hospital/H…`` logs in as ``hospital-H…``, ``agency/…`` as
    ``agency-…``), so the broker's ACLs apply to the demo exactly as to real parties."""

    def __init__(self, bootstrap: str, prefix: str,
                 signer: participant_keys.Signer | None = None):
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.sent: Counter[str] = Counter()
        #: Each record is signed by the participant its source names (shared.inbound).
        self._signer = signer
        self._producers: dict[str, Any] = {}

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for producer in self._producers.values():
            await producer.stop()

    async def _producer(self, source: str) -> Any:
        principal = kafka_clients.principal_of_source(source)
        producer = self._producers.get(principal)
        if producer is None:
            producer = kafka_clients.producer(self.bootstrap, principal=principal,
                                              enable_idempotence=True, linger_ms=5,
                                              max_request_size=16 * 1024 * 1024)
            await producer.start()
            self._producers[principal] = producer
        return producer

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish in the order given, for every key: one participant's sends are pipelined
        (one idempotent producer keeps its order per partition); a send of a key whose last
        send was another participant's waits until that one is acknowledged (two producers
        keep no order between them). Keys that are not shared are never waited for."""
        if not messages:
            return
        futures: list[Any] = []
        last: dict[tuple[str, str], tuple[str, Any]] = {}
        for m in messages:
            previous = last.get((m.topic, m.key))
            if previous is not None and previous[0] != m.source:
                await previous[1]
            producer = await self._producer(m.source)
            future = await producer.send(
                self.prefix + m.topic, m.value, key=m.key.encode(),
                headers=inbound.signature_headers(m.value, source=m.source,
                                                  signer=self._signer))
            last[(m.topic, m.key)] = (m.source, future)
            futures.append(future)
        await asyncio.gather(*futures)
        self.sent.update(m.type for m in messages)


async def caught_up(bootstrap: str, group: str, names: Iterable[str]) -> bool:
    """Whether consumer group `group` has committed the end of every partition of `names`."""
    admin = kafka_clients.admin(bootstrap)
    consumer = kafka_clients.consumer(bootstrap=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [TopicPartition(t, p) for t in names
                      for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = await consumer.end_offsets(partitions)
        return all(end == 0 or (tp in committed and committed[tp].offset >= end)
                   for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


# ---- the agencies' side of clearing -----------------------------------------------------


class Agencies:
    """Agencies confirm the daily reports and statements they receive and remit what the
    instructions tell them, before the 15th."""

    def __init__(self, province: Province):
        self.serials = Counter(m.source for m in province.filing_commands)
        self.confirmed: set[tuple[str, date]] = set()

    def _message(self, agency: str, type_: str, at: datetime, data: dict[str, Any]) -> Message:
        source = f"agency/{agency}"
        self.serials[source] += 1
        return make_message(topics.CLEARING_SUBMISSIONS, type_, source, agency, at,
                            event_id(source, self.serials[source]), data)

    def confirm_reports(self, reports: Iterable[DailyReport], day: date) -> list[Message]:
        fresh = sorted({(r.agency, r.date): r for r in reports
                        if (r.agency, r.date) not in self.confirmed}.items())
        self.confirmed.update(key for key, _ in fresh)
        return [self._message(r.agency, "clearing.daily_report_confirmed",
                              _at(day, 10, n), {"agency": r.agency, "date": r.date.isoformat(),
                                                "checksum": r.checksum})
                for n, (_, r) in enumerate(fresh)]

    def confirm_statements(self, statements: Iterable[StatementIssued], day: date
                           ) -> list[Message]:
        return [self._message(s.agency, "clearing.statement_confirmed", _at(day, 9, n),
                              {"agency": s.agency, "cycle": s.cycle, "checksum": s.checksum})
                for n, s in enumerate(sorted(statements, key=lambda s: s.agency))]

    def remit(self, instructions: Iterable[NetTransferInstruction], day: date,
              first_day: date, late_day: date | None = None) -> list[Message]:
        """Payer number i pays on `first_day` + i % 4, at 14:00, in full; with `late_day`,
        the largest payer (`late_payer`) pays on that day instead."""
        payers = sorted((i for i in instructions if i.payee == "hub"), key=lambda i: i.payer)
        late = late_payer(payers) if late_day else None
        return [self._message(i.payer, "clearing.remittance_reported", _at(day, 14, 0), {
                    "instruction_id": i.instruction_id, "amount": format_money(i.amount),
                    "paid_at": _at(day, 14, 0).isoformat(), "agency": i.payer})
                for n, i in enumerate(payers)
                if (late_day if i.payer == late else first_day + timedelta(days=n % 4)) == day]

    def top_up(self, agency: str, amount: Decimal, day: date) -> list[Message]:
        """A top-up (调增) of the agency's revolving fund, at 11:00."""
        return [self._message(agency, "clearing.revolving_fund_topped_up", _at(day, 11, 0), {
            "agency": agency, "top_up_id": f"TU-{day.isoformat()}-{agency}",
            "amount": format_money(amount), "paid_at": _at(day, 11, 0).isoformat()})]

    def claim(self, refused: Message, day: date) -> Message:
        """The insuring agency's claim for a bill the person paid in full: the refused
        settlement's own bill, at fault (the stop was for the person's violation)."""
        data = json.loads(refused.value)["data"]
        agency = data["insured_agency"]
        source = f"agency/{agency}"
        self.serials[source] += 1
        claim = {k: data[k] for k in ("person_id", "insured_agency", "insurance_type",
                                      "hospital", "visit_type", "disease_code", "admitted_on",
                                      "discharged_on", "visit_date", "emergency", "referral",
                                      "items") if k in data}
        return make_message(
            topics.REIMBURSEMENT_CLAIMS, "reimbursement.claimed", source, data["person_id"],
            _at(day, 9, 30), event_id(source, self.serials[source]),
            {"claim_id": f"MR-{data['hospital']}-{data['settlement_id']}", **claim,
             "paid_at": data["settled_at"], "case": "direct_settlement_failed",
             "at_fault": True, "failed_settlement_id": data["settlement_id"]})

    def supervise(self, agency: str, person: str, day: date) -> list[Message]:
        """The care agency stops direct settlement for the person from the start of `day`."""
        source = f"agency/{agency}"
        self.serials[source] += 1
        return [make_message(topics.FILING_COMMANDS, "filing.supervision_imposed", source,
                             person, _at(day, 0, 0), event_id(source, self.serials[source]), {
                                 "person_id": person, "care_agency": agency,
                                 "effective": _at(day, 0, 0).isoformat(),
                                 "reason": "挂床住院 bed occupied without treatment",
                                 "case_id": f"SV-{day.isoformat()}-{person}"})]


def late_payer(payers: Iterable[NetTransferInstruction]) -> str | None:
    """The demo's late payer: the agency paying the hub most (ties: the lowest code)."""
    into_hub = [i for i in payers if i.payee == "hub"]
    return min(into_hub, key=lambda i: (-i.amount, i.payer)).payer if into_hub else None


@dataclass(frozen=True)
class SupervisionCase:
    """Who the demo's supervision stops, where and from when."""

    person: str
    care_agency: str
    day: date


def supervision_case(province: Province, reference: ReferenceData) -> SupervisionCase | None:
    """The first person (by day, then id) settling at another pool's hospital from the
    `SUPERVISION_DAY` on, none of whose settlements is refunded or settled again."""
    first = date.fromisoformat(f"{province.month}-01")
    start = first.replace(day=SUPERVISION_DAY)
    corrected = set()
    candidates = []
    for message in province.submissions:
        data = json.loads(message.value)["data"]
        if message.type != "settlement.submitted" or data.get("resettles"):
            corrected.add(message.key)
            continue
        hospital = reference.hospital(data["hospital"])
        care = reference.pool_covering(hospital.county) if hospital else None
        if message.day >= start and care is not None and care.code != data["insured_agency"]:
            candidates.append((message.day, message.key, care.code))
    chosen = [c for c in sorted(candidates) if c[1] not in corrected]
    return SupervisionCase(chosen[0][1], chosen[0][2], start) if chosen else None


def _at(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute % 60), SHANGHAI)


def cross_items(events: Iterable[Envelope[Any]]) -> list[SettlementCompleted | SettlementRefunded]:
    """Completed and refunded settlements between two agencies: what clearing carries."""
    return [e.data for e in events
            if isinstance(e.data, SettlementCompleted | SettlementRefunded)
            and e.data.insured_agency != e.data.care_agency]


def _item_date(item: SettlementCompleted | SettlementRefunded) -> date:
    at = item.refunded_at if isinstance(item, SettlementRefunded) else item.settled_at
    return business_date(at)


# ---- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seed: int
    persons: int
    settlements: int
    month: str
    #: Start the local Kafka and PostgreSQL (`infra up`); else use the configured ones.
    local_infra: bool = True
    #: Earlier runs kept (topics, database, logs); older ones are removed at the start.
    keep: int = 2


def infrastructure(local: bool) -> tuple[str, str]:
    """The broker and the database server: started locally, or from the environment."""
    if local:
        from infra import InfraError
        from infra.local import up

        try:
            addresses = up()
        except InfraError as exc:
            raise DemoError(f"could not start the local Kafka and PostgreSQL: {exc}") from exc
        return addresses.kafka_bootstrap, addresses.database_url
    from shared.config import load_settings

    settings = load_settings()
    return settings.kafka_bootstrap_servers, settings.database_url


async def prepare(options: Options, cache: Path) -> Namespace:
    """A fresh namespace: topics, a database, and `<cache>/last-demo.json` naming them."""
    from infra.participants import prepare_namespace

    bootstrap, server_url = infrastructure(options.local_infra)
    await prune(bootstrap, server_url, cache, options.keep)
    namespace = Namespace.fresh(bootstrap, server_url, cache, datetime.now())
    hint = ("set KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL, or run without --no-infra"
            if not options.local_infra else "see `clearinghouse infra status`")
    try:
        await prepare_namespace(bootstrap, namespace.topic_prefix, namespace.group_prefix)
    except Exception as exc:
        raise DemoError(f"cannot create topics on Kafka at {bootstrap}: {exc}; {hint}") from exc
    try:
        await create_database(server_url, namespace.database)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DemoError(f"cannot create database {namespace.database} on "
                        f"{urlsplit(server_url).netloc.rpartition('@')[2]}: {exc}; {hint}"
                        ) from exc
    namespace.record(cache / "last-demo.json", status="running", seed=options.seed,
                     month=options.month, persons=options.persons,
                     settlements=options.settlements)
    return namespace


async def run(options: Options, namespace: Namespace, province: Province, steps: Steps
              ) -> Outcome:
    """Run the services on the namespace, publish the province, follow the calendar through
    the 20th of the next month, and collect what came out."""
    participant_keys.ensure_key_pairs(participant_keys.participants(),
                                      registry_path=namespace.participant_keys,
                                      directory=namespace.participant_secrets)
    signer = participant_keys.Signer(namespace.participant_keys, namespace.participant_secrets)
    deployment = Deployment(kafka_bootstrap_servers=namespace.kafka_bootstrap_servers,
                            database_url=namespace.database_url,
                            topic_prefix=namespace.topic_prefix,
                            group_prefix=namespace.group_prefix,
                            participant_keys=namespace.participant_keys)
    services = ServiceProcesses(deployment, namespace.logs)
    follower = Follower(namespace.kafka_bootstrap_servers, namespace.topic_prefix, services)
    try:
        services.start()
        await follower.start()
        async with Publisher(namespace.kafka_bootstrap_servers, namespace.topic_prefix,
                             signer) as sent:
            demo = _Demo(namespace, province, services, follower, sent, steps)
            await demo.run()
        postings = await _postings(namespace.database_url)
    finally:
        await follower.stop()
        services.stop()
    return Outcome(namespace=namespace, province=province, events=follower.events,
                   postings=postings, published=sent.sent,
                   problems=demo.problems + follower.broken, seconds=demo.seconds,
                   supervision=demo.supervision)


class _Demo:
    """One run's steps; each waits for what the services answer before going on."""

    def __init__(self, namespace: Namespace, province: Province, services: ServiceProcesses,
                 follower: Follower, publisher: Publisher, steps: Steps):
        self.namespace, self.province = namespace, province
        self.services, self.follower, self.steps = services, follower, steps
        self.publisher = publisher
        self.agencies = Agencies(province)
        self.problems: list[str] = []
        self.seconds: dict[str, float] = {}
        self.first = date.fromisoformat(f"{province.month}-01")
        self.supervision = supervision_case(province, load_reference())
        self._answered: set[str] = set()
        self._scanned = 0

    async def run(self) -> None:
        for step in (self.filings, self.calendar, self.quiesce):
            clock = wallclock.monotonic()
            await step()
            self.seconds[step.__name__] = wallclock.monotonic() - clock

    async def _expect(self, done: Callable[[], bool], what: str, stall: float = 90.0) -> None:
        """Wait for `done`; when it does not come, note it and go on (the checks will fail)."""
        if not await self.follower.wait(done, what, stall=stall, required=False):
            self.problems.append(f"waited {stall:.0f} s in vain for {what}")

    async def filings(self) -> None:
        """Agencies (and hospitals, for emergencies) file; wait for every answer, and for
        the settlement service to have read them all into its filing query model."""
        commands = self.province.filing_commands
        self.steps.start("filings", len(commands))
        await self.publisher.publish(commands)
        done = 0

        def progress() -> bool:
            nonlocal done
            answered = len(self.follower.of(topics.FILING_EVENTS, *FILING_ANSWERS))
            self.steps.advance("filings", answered - done)
            done = answered
            return done >= len(commands)

        await self.follower.wait(progress, "the filing service to answer every filing")
        if not await self._caught_up("settlement", [topics.FILING_EVENTS]):
            raise DemoError("the settlement service did not read the filing events; see "
                            f"{self.services.logs}")

    async def calendar(self) -> None:
        """Day by day: start the day (its watermarks cut the log), let agencies answer what
        they received, publish the day's settlements and refunds, wait for their answers."""
        by_day: dict[date, list[Message]] = {}
        for message in self.province.submissions:
            by_day.setdefault(message.day, []).append(message)
        # The demo stops on the day the hub pays out: the month closes then.
        last = max([milestone(self.province.month, DISTRIBUTION_DAY), *by_day])
        days = [self.first + timedelta(days=n) for n in range((last - self.first).days + 1)]
        self.steps.start("days", len(days))
        self.steps.start("settlements", len(self.province.submissions))
        for day in days:
            await scheduler.advance(self.namespace.kafka_bootstrap_servers, day,
                                    prefix=self.namespace.topic_prefix, start=self.first)
            await self._agencies_on(day)
            await self._supervise_on(day)
            await self._hospitals_on(day, by_day.get(day, []))
            self.steps.advance("days", description=f"calendar {day}")
        await self._expect(self._closed, f"{self.province.month} to close for every agency")
        await self._expect(self._notices_arrived, "a difference notice for every re-settlement")

    async def quiesce(self) -> None:
        """Every service has read all its inputs and every result is on the topic."""
        for name, inputs in INPUTS.items():
            if not await self._caught_up(name, inputs):
                self.problems.append(f"the {name} service did not read all its inputs")
        conn = await asyncpg.connect(self.namespace.database_url)
        try:
            stored = await conn.fetchval("SELECT count(*) FROM clearing.results")
        finally:
            await conn.close()
        await self._expect(lambda: len(self.follower.events[topics.CLEARING_RESULTS]) >= stored,
                           "every clearing result to be published")

    async def _caught_up(self, service: str, inputs: Sequence[str], seconds: float = 120
                         ) -> bool:
        group = f"{self.namespace.group_prefix}.{service}"
        names = [self.namespace.topic_prefix + t for t in inputs]
        deadline = wallclock.monotonic() + seconds
        while not await caught_up(self.namespace.kafka_bootstrap_servers, group, names):
            self.services.check()
            if wallclock.monotonic() > deadline:
                return False
            await asyncio.sleep(0.3)
        return True

    async def _hospitals_on(self, day: date, todays: list[Message]) -> None:
        """The day's settlements, refunds and re-settlements, each answered before the next
        day starts (so that the next day's watermarks cut after them)."""
        await self.publisher.publish(todays)
        wanted = {_answer_key(m) for m in todays}
        await self._expect(lambda: wanted <= self._answers(),
                           f"answers to the submissions of {day}", stall=60)
        self.steps.advance("settlements", len(todays))

    # -- what the agencies do, by day --

    async def _agencies_on(self, day: date) -> None:
        cycle = self.province.month
        statements_day = milestone(cycle, STATEMENTS_DAY)
        instructions_day = milestone(cycle, INSTRUCTIONS_DAY)
        if day > self.first:
            yesterday = day - timedelta(days=1)
            expected = self._reported_agencies(yesterday)
            await self._expect(
                lambda: expected <= {r.agency for r in self._reports() if r.date == yesterday},
                f"the daily reports of {yesterday}", stall=30)
            await self.publisher.publish(self.agencies.confirm_reports(self._reports(), day))
        if day == statements_day:
            expected = self._cycle_agencies()
            await self._expect(lambda: expected <= {s.agency for s in self._statements()},
                               f"the statements of {cycle}")
        if day == statements_day + timedelta(days=1):
            await self.publisher.publish(self.agencies.confirm_statements(self._statements(),
                                                                          day))
        if day == instructions_day:
            owed = sum(s.net != 0 for s in self._statements())
            await self._expect(lambda: len(self._instructions()) >= owed,
                               f"the net-transfer instructions of {cycle}")
        if day == milestone(cycle, REIMBURSEMENT_DAY):
            await self._claim_reimbursements(day)
        late_day = late_remittance_day(cycle)
        if day == late_day:
            await self._top_up_late_payer(day)
        if instructions_day < day:
            await self.publisher.publish(self.agencies.remit(
                self._instructions(), day, instructions_day + timedelta(days=1), late_day))

    async def _top_up_late_payer(self, day: date) -> None:
        """The late payer's fund advanced its remittance; warned, it tops the fund up by
        the shortfall the warning names."""
        late = late_payer(self._instructions())
        if late is None:
            return
        await self._expect(lambda: any(d.agency == late for d in self.follower.of(
            topics.CLEARING_RESULTS, "clearing.revolving_fund_drawn")),
            f"the revolving fund of {late} to advance its remittance")
        warnings = [w for w in self.follower.of(topics.CLEARING_RESULTS,
                                                "clearing.revolving_fund_warning")
                    if w.agency == late]
        if warnings:
            await self.publisher.publish(self.agencies.top_up(late, warnings[-1].shortfall,
                                                              day))

    async def _claim_reimbursements(self, day: date) -> None:
        """The supervised person paid the refused bills in full; the insuring agency claims
        each back and waits for the answers."""
        case = self.supervision
        if case is None:
            return
        refused = {r.settlement_id for r in self.follower.of(topics.SETTLEMENT_EVENTS,
                                                              "settlement.rejected")
                   if r.person_id == case.person
                   and any(x.code == "person_under_supervision" for x in r.reasons)}
        bills = [m for m in self.province.submissions if m.type == "settlement.submitted"
                 and json.loads(m.value)["data"]["settlement_id"] in refused
                 and m.key == case.person]
        await self.publisher.publish([self.agencies.claim(m, day) for m in bills])
        await self._expect(lambda: len(self.follower.events[topics.REIMBURSEMENT_EVENTS])
                           >= len(bills), f"answers to {len(bills)} reimbursement claim(s)")

    async def _supervise_on(self, day: date) -> None:
        """The supervision case's care agency stops direct settlement for the person before
        the day's settlements; the settlement service must have read it first."""
        case = self.supervision
        if case is None or day != case.day:
            return
        await self.publisher.publish(self.agencies.supervise(case.care_agency, case.person,
                                                             day))
        await self._expect(lambda: bool(self.follower.of(
            topics.FILING_EVENTS, "filing.supervision_imposed")),
            f"the filing service to accept the supervision of {case.person}")
        if not await self._caught_up("settlement", [topics.FILING_EVENTS]):
            self.problems.append("the settlement service did not read the supervision")

    # -- reading the results --

    def _answers(self) -> set[str]:
        events = self.follower.events[topics.SETTLEMENT_EVENTS]
        for event in events[self._scanned:]:
            data = event.data
            refund = getattr(data, "refund_id", None)
            self._answered.add(f"refund:{refund}" if refund else
                               f"settlement:{data.settlement_id}")
        self._scanned = len(events)
        return self._answered

    def _reports(self) -> list[DailyReport]:
        return self.follower.of(topics.CLEARING_RESULTS, "clearing.daily_report")

    def _statements(self) -> list[StatementIssued]:
        return [s for s in self.follower.of(topics.CLEARING_RESULTS, "clearing.statement_issued")
                if s.cycle == self.province.month]

    def _instructions(self) -> list[NetTransferInstruction]:
        return [i for i in self.follower.of(topics.CLEARING_RESULTS,
                                            "clearing.net_transfer_instruction")
                if i.cycle == self.province.month]

    def _items(self) -> list[SettlementCompleted | SettlementRefunded]:
        return cross_items(self.follower.events[topics.SETTLEMENT_EVENTS])

    def _reported_agencies(self, day: date) -> set[str]:
        return {a for i in self._items() if _item_date(i) == day
                for a in (i.insured_agency, i.care_agency)}

    def _cycle_agencies(self) -> set[str]:
        return {a for i in self._items() if isinstance(i, SettlementCompleted)
                and cycle_of(i.settled_at) == self.province.month
                for a in (i.insured_agency, i.care_agency)}

    def _closed(self) -> bool:
        closed = {c.agency for c in self.follower.of(topics.CLEARING_RESULTS,
                                                     "clearing.cycle_closed")
                  if c.cycle == self.province.month}
        return {s.agency for s in self._statements()} <= closed

    def _notices_arrived(self) -> bool:
        resettled = [i for i in self._items()
                     if isinstance(i, SettlementCompleted) and i.resettles]
        notices = self.follower.of(topics.CLEARING_RESULTS, "clearing.difference_notice")
        return len(notices) >= 2 * len(resettled)


def _answer_key(message: Message) -> str:
    data = json.loads(message.value)["data"]
    return (f"refund:{data['refund_id']}" if message.type == "settlement.refund_requested"
            else f"settlement:{data['settlement_id']}")


async def _postings(database_url: str) -> list[Posting]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "clearing"})
    try:
        return await queries.postings(conn)
    finally:
        await conn.close()
