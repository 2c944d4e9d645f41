"""`clearinghouse audit replay`: rebuild everything from the log and compare with the live system.

The live installation (topic prefix and database) comes from ``--prefix`` and
``--database-url``, else from ``<cache>/last-demo.json`` (the last demo run), else from
``CLEARINGHOUSE_TOPIC_PREFIX`` and ``DATABASE_URL``. The replay runs in a fresh database
``audit_<timestamp>`` on the same server, never the live one. stdout carries the report
(the same for the same log and live state); timings go to stderr and the ``run`` field.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from cli.presentation import console, print_json, table
from services.registry import SERVICES
from shared import topics
from shared.config import Settings, load_settings
from shared.db import AUDITOR, RolesError, drop_database, redact_url, role_url
from shared.db.roles import with_credentials
from shared.logging import configure_logging
from shared.running import Interrupted, run_cancellable
from tools.audit import compare, explain, replay, signatures, stream

#: Differences listed in full in the JSON report (all are counted).
MAX_LISTED = 2000


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = sub.add_parser("audit", help="replay the log into a fresh database and compare")
    actions = audit.add_subparsers(dest="action", required=True)
    parser = actions.add_parser("replay", help=__doc__.splitlines()[0], description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", help="topic prefix of the live installation")
    parser.add_argument("--database-url", help="the live database (only read)")
    parser.add_argument("--order", choices=("inbox", "log"), default="inbox",
                        help="interleave a service's input partitions as the live service "
                             "consumed them (inbox, default) or by Kafka timestamp (log)")
    parser.add_argument("--merge-limit", type=int, default=replay.MERGE_LIMIT, metavar="N",
                        help="merge consecutive live transactions in which every record took "
                             "effect into replay transactions of up to N records (default "
                             f"{replay.MERGE_LIMIT}; 1 replays every live transaction as it was)")
    parser.add_argument("--processes", choices=("auto", "always", "never"), default="auto",
                        help="rebuild each service in a process of its own: from "
                             f"{replay.OWN_PROCESS_FROM} records (auto), always or never")
    parser.add_argument("--groups", type=int, default=0, metavar="N",
                        help="rebuild a service whose state is per person (settlement) in N "
                             "groups of persons, a process each, when no shared claim falls "
                             "into two groups (default: the cores, at most "
                             f"{MAX_GROUPS}; 1: one process)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the audit database afterwards (default: drop it); an "
                             "interrupted audit kept so goes on with --resume")
    parser.add_argument("--resume", metavar="AUDIT_DATABASE",
                        help="go on with an interrupted audit kept with --keep (its staged "
                             "log, plans and checkpoints) from its last replayed transaction")
    parser.add_argument("--stop-after", type=int, metavar="N",
                        help="stop each service's rebuild after N transactions, as an "
                             "interruption would, keeping the audit database (to try "
                             "--resume)")
    parser.add_argument("--in-memory", action="store_true",
                        help="read the whole log into memory first, as before the streaming "
                             "replay (no checkpoints)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_replay)
    verify = actions.add_parser(
        "verify-signatures", help="verify the participants' signature of every submission",
        description=signatures.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("--prefix", help="topic prefix of the live installation")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(run=_verify_signatures)
    explain.register(sub)


def _verify_signatures(args: argparse.Namespace) -> int:
    """Exit 0 when every accepted submission verifies, 1 when one does not, 2 on errors."""
    from shared import participant_keys

    bootstrap, prefix, _ = resolve_target(args.prefix, None, load_settings())
    try:
        report = asyncio.run(signatures.verify_log(bootstrap, prefix))
    except (OSError, participant_keys.KeyFileError) as exc:
        Console(stderr=True).print(f"audit verify-signatures failed: {exc}")
        return 2
    if args.json:
        print_json(report.as_json())
        return 0 if report.ok else 1
    where = f"{prefix or '(no prefix)'} on {bootstrap}, keys {participant_keys.registry_file()}"
    out = console()
    rows = [[t, n, report.verified[t]] for t, n in sorted(report.records.items())]
    out.print(table(f"signatures of the submissions of {where}",
                    ["topic", "records", "verified"], rows, numeric=("records", "verified")))
    if report.failures:
        out.print(table("not verified", ["reason code", "status", "records"], [
            [code, status, n] for (code, status), n in sorted(report.failures.items())],
            numeric=("records",)))
    if report.undecodable:
        out.print(f"{report.undecodable} records are not contract events (refused by "
                      "the contract before any signature check)")
    for failure in report.accepted_failures[:20]:
        out.print(f"ACCEPTED BUT NOT VERIFIED {failure['position']} {failure['source']} "
                      f"{failure['id']}: {failure['reason_code']}: {failure['reason']}")
    out.print("every accepted submission verifies" if report.ok else
                  f"{len(report.accepted_failures)} accepted submissions do not verify")
    return 0 if report.ok else 1


# ---- where the live system is ---------------------------------------------------------------


def resolve_target(prefix: str | None, database_url: str | None,
                   settings: Settings) -> tuple[str, str, str]:
    """(bootstrap, prefix, live database URL): options, else the last demo, else env."""
    from infra.local import resolve_cache_dir

    demo: dict[str, Any] = {}
    path = resolve_cache_dir() / "last-demo.json"
    if path.exists():
        try:
            demo = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            demo = {}
    bootstrap = (demo.get("kafka_bootstrap_servers") or demo.get("kafka_bootstrap")
                 or settings.kafka_bootstrap_servers)
    demo_prefix = demo.get("prefix", demo.get("topic_prefix"))
    chosen_prefix = prefix if prefix is not None else (
        demo_prefix if demo_prefix is not None else settings.topic_prefix)
    url = _unredacted(database_url or demo.get("database_url"), settings.database_url)
    if demo.get("participant_keys") and prefix is None and demo_prefix is not None:
        # The last demo's services verified against keys of its own (like its broker and
        # database, the demo's record wins): replay and verify against the same.
        os.environ["CLEARINGHOUSE_PARTICIPANT_KEYS"] = str(demo["participant_keys"])
    return str(bootstrap), str(chosen_prefix or ""), str(url)


def _unredacted(given: str | None, configured: str) -> str:
    """`given` (``--database-url``, else the last demo's) with its password: a URL whose
    password is redacted (``***``, as ``last-demo.json`` keeps it) or left out takes the
    password of ``DATABASE_URL`` when it names the same user, so no password need be put
    on a command line or in a file."""
    if not given:
        return configured
    parts = urlsplit(given)
    mine = urlsplit(configured)
    if parts.password not in ("***", None) or not parts.username:
        return given
    if mine.username != parts.username or not mine.password:
        return given if parts.password is None else with_credentials(
            given, unquote(parts.username), None)
    return with_credentials(given, unquote(parts.username), unquote(mine.password))


def audit_database_url(live_url: str, name: str) -> str:
    parts = urlsplit(live_url)
    if parts.path.strip("/") == name or not name.startswith("audit_"):
        raise ValueError(f"refusing to replay into {name}: the audit needs a fresh database")
    return urlunsplit(parts._replace(path="/" + name))


async def _create_database(live_url: str, name: str) -> None:
    admin = await asyncpg.connect(live_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        # A throwaway database: a commit need not wait for its WAL to reach the disk (a
        # crash loses the audit, never changes what a transaction does or sees).
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        await admin.execute(f'ALTER DATABASE "{name}" SET jit = off')  # short queries only
    finally:
        await admin.close()


async def _drop_database(live_url: str, name: str) -> bool:
    """Drop the audit database; False (and it stays) when the server keeps refusing."""
    admin = await asyncpg.connect(live_url)
    try:
        await drop_database(admin, name)
        return True
    except asyncpg.PostgresError:
        return False
    finally:
        await admin.close()


# ---- the audit ------------------------------------------------------------------------------


#: At most this many groups of persons of one service (`stream.split_plan`); the default is
#: the number of cores, up to this.
MAX_GROUPS = 4


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} events/s" if task.speed else "", style="cyan")


async def run_audit(*, prefix: str | None = None, database_url: str | None = None,
                    order: str = "inbox", keep: bool = False,
                    progress: Progress | None = None, merge_limit: int = replay.MERGE_LIMIT,
                    processes: str = "auto", in_memory: bool = False, groups: int = 0,
                    resume: str | None = None, stop_after: int | None = None
                    ) -> dict[str, Any]:
    """Replay, compare and return the report (``run`` holds what differs between runs).

    By default the log is staged in the audit database and replayed from there in bounded
    memory (`stream`), with a checkpoint per transaction: `resume` names the audit database of
    an interrupted audit (kept with ``--keep``) to go on with, `stop_after` stops each
    service's rebuild after that many transactions as an interruption would (the database is
    kept). `in_memory`: the log read whole into memory, as before."""
    settings = load_settings()
    bootstrap, prefix, live_url = resolve_target(prefix, database_url, settings)
    # The handlers see the audited installation's broker and namespace (the clearing
    # service asks whether its clearing.schedule holds a day), not this shell's.
    # The clearing rebuild reads the live answers to that question (`replay.LiveChoices`)
    # from the live database.
    settings = dataclasses.replace(settings, kafka_bootstrap_servers=bootstrap,
                                   topic_prefix=prefix, database_url=live_url)
    started = time.perf_counter()
    reading = progress.add_task("reading the log", total=None) if progress else None

    def on_read(done: int, total: int) -> None:
        if progress is not None and reading is not None:
            progress.update(reading, completed=done, total=total)

    if resume is not None:
        name = resume
        audit_url = audit_database_url(live_url, name)
        keep = True  # a resumed audit is dropped only once it has finished (below)
    else:
        name = datetime.now(UTC).strftime("audit_%Y%m%d_%H%M%S_%f")
        audit_url = audit_database_url(live_url, name)
    finished = False
    if in_memory:
        log: Any = await replay.read_log(bootstrap, prefix, replay.topics_to_read(), on_read)
        read_seconds = time.perf_counter() - started
        plans, notes = await _plans(log, live_url, order)
        plan_seconds = time.perf_counter() - started - read_seconds
        await _create_database(live_url, name)
    else:
        if resume is None:
            await _create_database(live_url, name)
        if keep and resume is None:
            Console(stderr=True, highlight=False).print(
                f"audit database {name} (kept; an interrupted audit goes on with "
                f"--resume {name})")
        log = None
    try:
        if not in_memory:
            staged = await asyncpg.connect(audit_url)
            try:
                if resume is not None and await staged.fetchval(
                        "SELECT to_regclass($1)", f"{stream.SCHEMA}.state") is None:
                    raise ValueError(f"{name} is not a streaming audit database (no "
                                     f"{stream.SCHEMA} schema): nothing to resume")
                await stream.prepare(staged)
                recorded = await stream.get_state(staged, "audit")
                if recorded is None and resume is not None:
                    raise ValueError(f"{name} is not a streaming audit database (it records "
                                     "no streaming audit): nothing to resume")
                if recorded is None:
                    await stream.set_state(staged, "audit", {
                        "prefix": prefix, "order": order, "merge_limit": merge_limit})
                elif resume is not None:
                    if recorded["prefix"] != prefix:
                        raise ValueError(f"{name} audits the topics '{recorded['prefix']}*', "
                                         f"not '{prefix}*'")
                    order, merge_limit = recorded["order"], recorded["merge_limit"]
                log_records = await stream.stage_log(staged, bootstrap, prefix,
                                                     replay.topics_to_read(), on_read)
                read_seconds = time.perf_counter() - started
                plans, notes = await _staged_plans(staged, audit_url, live_url, order,
                                                   log_records)
                plan_seconds = time.perf_counter() - started - read_seconds
            finally:
                await staged.close()
        tasks = {s: progress.add_task(f"replaying {s}", total=plans[s].records)
                 for s in SERVICES} if progress else {}

        def on_batch(service: str, n: int) -> None:
            if progress is not None:  # `service`, or one of its groups (`service/n`)
                progress.advance(tasks[service.partition("/")[0]], n)

        timings: dict[str, float] = {}
        #: Groups asked for are made whatever the plan's size; by default only for a plan
        #: large enough to pay for the processes.
        asked_groups, groups = groups > 0, groups or min(os.cpu_count() or 1, MAX_GROUPS)
        #: Said on stderr and in `run` (stdout stays the same for the same log and state).
        group_notes: list[str] = []
        # The live side of the comparison (read-only, independent of the replay) is read
        # while the services are rebuilt; each service's tables are compared as soon as it
        # is rebuilt.
        live_side = asyncio.create_task(_live_side(live_url, digests=in_memory))

        async def rebuild(service: str) -> tuple[replay.RebuildResult, compare.Comparison, Any]:
            began = time.perf_counter()
            loop = asyncio.get_running_loop()
            parts = await _groups(service)
            rebuilt = [loop.create_future() for _ in parts]
            wholes = [asyncio.create_task(replay.rebuild_anywhere(
                service, audit_url, settings, part, on_batch, done,
                processes="always" if len(parts) > 1 else processes, merge_limit=merge_limit,
                stop_after=stop_after)) for part, done in zip(parts, rebuilt, strict=True)]
            try:
                for done, whole in zip(rebuilt, wholes, strict=True):
                    await asyncio.wait({done, whole}, return_when=asyncio.FIRST_COMPLETED)
                    if not done.done():
                        await whole  # it failed: raises
                timings[service] = time.perf_counter() - began
                part = await _compare_service(
                    service, live_url, audit_url,
                    (await live_side)[0][service] if in_memory else None)
                return replay.combined([await whole for whole in wholes]), *part
            finally:
                for whole in wholes:
                    await _cancel(whole)

        async def _groups(service: str) -> list[Any]:
            """The service's plan, or its groups of persons, each rebuilt in a process of its
            own (`stream.split_plan`), when its state allows and there are cores for it."""
            plan = plans[service]
            if in_memory:
                return [plan]
            parts = await stream.saved_groups(audit_url, service)  # a resumed audit's
            if not parts and (processes == "never" or groups < 2 or (
                    not asked_groups and plan.records < 2 * replay.OWN_PROCESS_FROM)):
                return [plan]
            parts = parts or await stream.split_plan(audit_url, service, groups)
            if not parts:
                return [plan]
            group_notes.append(f"{service} was rebuilt in {len(parts)} groups of persons, "
                               "a process each")
            return parts

        try:
            replay_started = time.perf_counter()
            outcomes = await asyncio.gather(*(rebuild(s) for s in SERVICES),
                                            return_exceptions=True)
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            # A service told to stop stops alone: the others go on to their own stop.
            for outcome in sorted(failed, key=lambda o: isinstance(o, stream.Stopped)):
                raise outcome
            done: dict[str, tuple[replay.RebuildResult, compare.Comparison, Any]] = dict(
                zip(SERVICES, outcomes, strict=True))  # type: ignore[arg-type]
            replay_seconds = max(timings.values())
            compare_seconds = time.perf_counter() - replay_started - replay_seconds
            processors = {s: done[s][0] for s in SERVICES}
            report = await _compare(_published(log, audit_url), [done[s][1] for s in SERVICES],
                                    [e for s in SERVICES for e in done[s][2]],
                                    (await live_side)[1], processors["clearing"].chains,
                                    await _moved(live_url, audit_url),
                                    None if in_memory else audit_url)
            if log is not None:
                log_records = len(log)
            finished = True
        finally:
            await _cancel(live_side)
    except stream.Stopped as stopped:
        keep = True
        raise stream.Stopped(f"{stopped}; the audit database {name} is kept: go on with "
                             f"`clearinghouse audit replay --resume {name}`") from None
    finally:
        if not keep or (resume is not None and finished and not stop_after):
            keep = not await _drop_database(live_url, name)
    records = sum(p.records for p in plans.values())
    report = {
        "match": report.pop("match"), "prefix": prefix, "live_database": redact_url(live_url),
        "order": order,
        "replayed": {s: {"records": plans[s].records, "transactions": _batches(plans[s]),
                         "taken": processors[s].processed,
                         "duplicates": processors[s].duplicates,
                         "rejected": processors[s].rejected, "unread_by_live": plans[s].unread,
                         "skipped_by_live": plans[s].skipped} for s in SERVICES},
        **report, "notes": notes + report.pop("notes"),
        "run": {"audit_database": name, "kept": keep, "log_records": log_records,
                "streaming": not in_memory, "resumed": resume is not None,
                "groups": group_notes,
                "read_seconds": round(read_seconds, 3),
                "plan_seconds": round(plan_seconds, 3),
                "replay_seconds": round(replay_seconds, 3),
                "compare_seconds": round(compare_seconds, 3),
                "seconds": round(time.perf_counter() - started, 3),
                "events_per_second": round(records / replay_seconds) if replay_seconds else None,
                "per_service": {s: {"seconds": round(timings[s], 3),
                                    "transactions": processors[s].commits,
                                    "cpu_seconds": processors[s].cpu_seconds,
                                    "events_per_second": round(plans[s].records / timings[s])
                                    if timings[s] else None} for s in SERVICES}},
    }
    return report


def _batches(plan: Any) -> int:
    return len(plan.batches) if isinstance(plan, replay.Plan) else int(plan.batches)


async def _staged_plans(staged: asyncpg.Connection, audit_url: str, live_url: str, order: str,
                        log_records: int) -> tuple[dict[str, Any], list[str]]:
    """Each service's plan made in the audit database (`stream`), or the one made before an
    interruption; the notes `_plans` gives."""
    from services.registry import spec_of

    plans: dict[str, Any] = {}
    notes: list[str] = []
    if not log_records:
        notes.append("no topic of this prefix holds any record: is the prefix right?")
    for service in SERVICES:
        consumes = spec_of(service).consumes
        summary = await stream.saved_summary(staged, service)
        if summary is None:
            taken = await _live_inbox(live_url, service)
            if order != "inbox":
                summary = await stream.plan_log_order(staged, service, consumes)
            elif taken is None:
                summary = stream.PlanSummary(service)
                await stream.save_summary(staged, summary)
            else:
                summary = await stream.plan_inbox_order(audit_url, live_url, service,
                                                        consumes, *taken)
        plans[service] = summary
        if order == "inbox" and not summary.records and await _live_inbox(
                live_url, service) is None:
            notes.append(f"the live database has no {service} schema: nothing of "
                         f"{service} was replayed")
        notes += summary.notes
        if summary.unread:
            notes.append(f"{summary.unread} record(s) of {service}'s inputs were not "
                         "yet read by the live service and were not replayed")
        if summary.skipped:
            notes.append(f"the live {service} service passed over {len(summary.skipped)}"
                         f" record(s) without taking or refusing them: "
                         f"{', '.join(summary.skipped[:10])}")
    return plans, notes


async def _live_inbox(live_url: str, service: str) -> tuple[bool, bool] | None:
    """Whether the live service's inbox and rejected tables have ``seq`` (None: the live
    database has no schema of this service)."""
    conn = await _read_only(live_url)
    try:
        if await conn.fetchval("SELECT to_regclass($1)", f"{service}.inbox") is None:
            return None
        columns = {(r["table_name"], r["column_name"]) for r in await conn.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = $1 AND column_name = 'seq'""", service)}
        return ("inbox", "seq") in columns, ("rejected", "seq") in columns
    finally:
        await conn.close()


def _published(log: Any, audit_url: str) -> Callable[[str], Awaitable[list[Any]]]:
    """What the live system published on a topic: from the log in memory, or from the staged
    log (the comparison reads one topic at a time)."""
    async def of(topic: str) -> list[Any]:
        if log is not None:
            return list(log.records(topic))
        conn = await asyncpg.connect(audit_url)
        try:
            return await stream.staged_records(conn, topic)
        finally:
            await conn.close()

    return of


async def _cancel(task: asyncio.Future[Any]) -> None:
    """Cancel a task not finished yet (a sibling failed) and wait for it to end."""
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _plans(log: replay.Log, live_url: str, order: str
                 ) -> tuple[dict[str, replay.Plan], list[str]]:
    from services.registry import spec_of

    plans: dict[str, replay.Plan] = {}
    notes: list[str] = []
    if not len(log):
        notes.append("no topic of this prefix holds any record: is the prefix right?")
    for service in SERVICES:
        partitions = log.of(spec_of(service).consumes)
        taken = await replay.live_consumption(live_url, service)
        live_plan = None
        if taken.present:
            try:
                live_plan = replay.inbox_plan(service, partitions, taken)
            except ValueError:
                if order == "inbox":
                    raise
        if order == "inbox":
            plans[service] = live_plan or replay.Plan(service)
            if live_plan is None:
                notes.append(f"the live database has no {service} schema: nothing of "
                             f"{service} was replayed")
        else:
            plans[service] = replay.log_plan(service, partitions)
            if live_plan is not None and service == "settlement":
                moved = replay.reordered_keys(plans[service], live_plan, (
                    topics.FILING_EVENTS, topics.SETTLEMENT_SUBMISSIONS))
                if moved:
                    notes.append(
                        f"{len(moved)} person(s) had their filing events and submissions "
                        "replayed in another relative order than the live settlement service "
                        f"consumed them ({', '.join(moved[:10])}): their settlement "
                        "decisions may differ for that reason alone; --order inbox replays "
                        "the live order")
        notes += plans[service].notes
        if plans[service].unread:
            notes.append(f"{plans[service].unread} record(s) of {service}'s inputs were not "
                         "yet read by the live service and were not replayed")
        if plans[service].skipped:
            notes.append(f"the live {service} service passed over {len(plans[service].skipped)}"
                         f" record(s) without taking or refusing them: "
                         f"{', '.join(plans[service].skipped[:10])}")
    return plans, notes


async def _read_only(live_url: str) -> asyncpg.Connection:
    """The live database as the read-only auditor role (shared.db.roles)."""
    return await asyncpg.connect(role_url(live_url, AUDITOR), server_settings={
        "default_transaction_read_only": "on", "application_name": "clearinghouse-audit"})


async def _live_side(live_url: str, digests: bool = True
                     ) -> tuple[dict[str, dict[str, compare.Digests]], Any]:
    """The live database's row digests (per service; none when the tables are compared
    streaming) and its ledgers' hash chains."""
    live = await _read_only(live_url)
    try:
        await compare.prepare(live)
        found = {s: await compare.table_digests(live, s) for s in SERVICES} if digests else {}
        return found, await compare.ledger_chains(live)
    finally:
        await live.close()


async def _moved(live_url: str, audit_url: str) -> int:
    """Postings at another sequence in the rebuilt ledgers than in the live ones."""
    live = await _read_only(live_url)
    audit = await asyncpg.connect(audit_url)
    try:
        return await compare.moved_postings(live, audit)
    finally:
        await live.close()
        await audit.close()


async def _compare_service(service: str, live_url: str, audit_url: str,
                           live_digests: dict[str, compare.Digests] | None
                           ) -> tuple[compare.Comparison, list[compare.Rebuilt]]:
    """One service's state tables compared (set-based; `live_digests` None: both sides read
    in key order and merged, holding no table), and the events it rebuilt."""
    result = compare.Comparison()
    live = await _read_only(live_url)
    audit = await asyncpg.connect(audit_url)
    try:
        await compare.prepare(live)
        await compare.prepare(audit)
        if live_digests is None:
            await compare.compare_tables_streaming(service, live, audit, result)
        else:
            await compare.compare_table_digests(
                service, live_digests, await compare.table_digests(audit, service),
                live, audit, result)
        return result, await compare.read_outbox(audit, service,
                                                 rejected_only=live_digests is None)
    finally:
        await live.close()
        await audit.close()


async def _compare(published: Callable[[str], Awaitable[list[Any]]],
                   parts: list[compare.Comparison], rebuilt: list[compare.Rebuilt],
                   live_chain: Any, replay_chain: Any, moved: int,
                   audit_url: str | None = None) -> dict[str, Any]:
    result = compare.Comparison()
    for part in parts:
        result.tables += part.tables
        result.differences += part.differences
    by_topic: dict[str, list[compare.Rebuilt]] = defaultdict(list)
    for event in rebuilt:
        by_topic[event.topic].append(event)
    for topic in compare.compared_topics(compare.OUTPUT_TOPICS, by_topic):
        if audit_url is not None and topic in compare.OUTPUT_TOPICS:
            # the staged topic and the outboxes merged in id order (`rebuilt` holds only the
            # dead-letter copies then)
            await stream.compare_events(audit_url, topic, SERVICES, result)
            continue
        compare.compare_published(  # one topic at a time, as compare_published orders them
            by_topic.get(topic, []), {topic: await published(topic)},
            [topic] if topic in compare.OUTPUT_TOPICS else [], result, only=topic)
    result.differences += compare.chain_differences("live", live_chain[2])
    result.differences += compare.chain_differences("replay", replay_chain[2])
    differences = compare.sorted_differences(result.differences)
    postings = next((t for t in result.tables if t.table == "clearing.postings"), None)
    notes = []
    if moved:
        notes.append(f"{moved} posting(s) sit at another sequence in the rebuilt ledgers than "
                     "in the live ones (the replay interleaved the partitions of "
                     "settlement.events and clearing.submissions otherwise); postings are "
                     "compared without sequence and link, but the links follow the sequence, "
                     "so the ledger heads in clearing_state and the chain_head of statements "
                     "differ for that reason alone")
    return {
        "match": not differences,
        "tables": [{**asdict(t), "match": t.match} for t in result.tables],
        "events": [{**asdict(t), "match": t.match} for t in result.topics],
        "postings": {"live": live_chain[0], "replay": replay_chain[0],
                     "differing": postings.differing_rows if postings else 0,
                     "match": postings.match if postings else True,
                     "at_another_sequence": moved},
        "chains": {"live": {"ledgers": live_chain[1], "postings": live_chain[0],
                            "broken": [asdict(b) for b in live_chain[2]]},
                   "replay": {"ledgers": replay_chain[1], "postings": replay_chain[0],
                              "broken": [asdict(b) for b in replay_chain[2]]}},
        "differences_total": len(differences),
        "differences": [asdict(d) for d in differences[:MAX_LISTED]],
        "notes": notes,
    }


# ---- the command ----------------------------------------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    configure_logging("ERROR")  # records refused live are refused again: no news
    errors = Console(stderr=True, highlight=False)
    progress = None if args.quiet else Progress(
        TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), _Rate(),
        console=errors, transient=False)
    try:
        if progress is not None:
            with progress:
                report = run_cancellable(run_audit(prefix=args.prefix,
                                               database_url=args.database_url,
                                               order=args.order, keep=args.keep,
                                               progress=progress,
                                               merge_limit=args.merge_limit,
                                               processes=args.processes,
                                               groups=args.groups,
                                               in_memory=args.in_memory,
                                               resume=args.resume,
                                               stop_after=args.stop_after))
        else:
            report = run_cancellable(run_audit(prefix=args.prefix, database_url=args.database_url,
                                           order=args.order, keep=args.keep,
                                           merge_limit=args.merge_limit,
                                           processes=args.processes, groups=args.groups,
                                           in_memory=args.in_memory, resume=args.resume,
                                           stop_after=args.stop_after))
    except (OSError, asyncpg.PostgresError, ValueError, KafkaError, RolesError,
            replay.RebuildDied) as exc:
        errors.print(f"audit replay failed: {exc or type(exc).__name__}")
        return 2
    except stream.Stopped as stopped:
        errors.print(f"audit replay stopped: {stopped}")
        return 130
    except Interrupted:
        errors.print("audit replay interrupted; " + (
            "its audit database, if it had made one, is kept (--keep)" if args.keep
            else "its audit database, if it had made one, was dropped"))
        return 130
    run = report["run"]
    total = sum(s["records"] for s in report["replayed"].values())
    errors.print(f"replayed {total} records in {run['replay_seconds']:.2f} s "
                 f"({run['events_per_second'] or 0:,} events/s; " + ", ".join(
                     f"{s} {v['events_per_second'] or 0:,}/s"
                     for s, v in run["per_service"].items())
                 + f"); read {run['log_records']} log records in {run['read_seconds']:.2f} s; "
                 f"audit database {run['audit_database']} "
                 + ("dropped" if not run["kept"] else "kept" if args.keep
                    else "could not be dropped (still in use): drop it by hand"))
    for note in run.get("groups", []):
        errors.print(note)
    record_last_replay(report)
    if args.json:
        print_json(report)
    else:
        render(report)
    return 0 if report["match"] else 1


def record_last_replay(report: dict[str, Any]) -> None:
    """Keep the report as ``<cache>/last-audit.json``: the portal's auditor's view shows the
    last replay's result. A cache that cannot be written only loses that view."""
    from infra.local import resolve_cache_dir

    path = resolve_cache_dir() / "last-audit.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        recorded = {"recorded_at": datetime.now(UTC).isoformat(timespec="seconds"), **report}
        path.write_text(json.dumps(recorded, ensure_ascii=False, indent=2, default=str)
                        + "\n", encoding="utf-8")
    except OSError:
        pass


def render(report: dict[str, Any]) -> None:
    """The report as tables; nothing in it changes between two runs over the same state."""
    out = console()
    out.print(f"audit replay of topics '{report['prefix']}*' against "
              f"{report['live_database']} (order: {report['order']})")
    out.print(table("Replayed", ["service", "records", "transactions", "taken", "duplicates",
                                 "rejected", "unread by live"],
                    [(s, r["records"], r["transactions"], r["taken"], r["duplicates"],
                      r["rejected"], r["unread_by_live"]) for s, r in report["replayed"].items()],
                    numeric=("records", "transactions", "taken", "duplicates", "rejected",
                             "unread by live")))
    out.print(table("State tables", ["table", "live rows", "replay rows", "live checksum",
                                     "replay checksum", "result"],
                    [(t["table"], t["live_rows"], t["replay_rows"], t["live_checksum"][:16],
                      t["replay_checksum"][:16], _verdict(t["match"]))
                     for t in report["tables"]], numeric=("live rows", "replay rows")))
    out.print(table("Published events", ["topic", "published", "rebuilt", "republished",
                                         "differing", "result"],
                    [(e["topic"], e["published"], e["rebuilt"], e["republished"],
                      e["differing"], _verdict(e["match"])) for e in report["events"]],
                    numeric=("published", "rebuilt", "republished", "differing")))
    p = report["postings"]
    out.print(f"postings: {p['live']} live, {p['replay']} rebuilt, compared by (agency, "
              f"entry_id, line) without sequence and link: "
              + ("match" if p["match"] else f"{p['differing']} differ"))
    for side in ("live", "replay"):
        c = report["chains"][side]
        broken = c["broken"]
        out.print(f"hash chains ({side}): {c['ledgers']} ledgers, " + (
            "all verify" if not broken else "first broken link: " + "; ".join(
                f"{b['agency']} at sequence {b['sequence']} (entry {b['entry_id']}, "
                f"line {b['line']})" for b in broken)))
    if report["differences"]:
        shown = report["differences"][:50]
        out.print(table(f"Differences ({len(shown)} of {report['differences_total']})",
                        ["where", "key", "kind", "field", "live", "replay"],
                        [(d["where"], " ".join(f"{k}={v}" for k, v in d["key"].items()),
                          d["kind"], d["field"], *_values(d)) for d in shown]))
    for note in report["notes"]:
        out.print(f"note: {note}")
    out.print("MATCH: the log rebuilds the live state and every published event exactly"
              if report["match"] else
              f"MISMATCH: {report['differences_total']} difference(s)")


def _values(difference: dict[str, Any]) -> tuple[str, str]:
    """Both sides of a difference; a whole missing row or event is only marked (the JSON
    report carries it in full)."""
    if difference["kind"] == "only_live":
        return "present", "missing"
    if difference["kind"] == "only_replay":
        return "missing", "present"
    if difference["kind"] == "broken":
        link = difference["live"] or difference["replay"]
        shown = f"breaks at sequence {link['sequence']} (line {link['line']})"
        return (shown, "") if difference["live"] else ("", shown)
    return _short(difference["live"]), _short(difference["replay"])


def _verdict(ok: bool) -> str:
    return "match" if ok else "DIFFERS"


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"

