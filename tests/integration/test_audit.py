"""The audit over real Kafka and PostgreSQL: a month of clearing run by the three services as
processes, then `clearinghouse audit replay` rebuilds everything from the log into a fresh
database and must find it identical; a posting altered afterwards must be named."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from services.clearing import scheduler
from services.clearing.fund_reference import load_fund_policy
from shared import topics
from shared.config import REPO_ROOT
from shared.messaging.records import Record
from tests.helpers import (
    enrol,
    envelope,
    not_enrolment,
    own_database,
    processes_with_env,
    produce,
    read_topic,
    running_services,
)
from tools.audit import replay

pytestmark = pytest.mark.infra

CHANGCHUN, JILIN, JIAOHE = "220100", "220200", "220281"
IN_CHANGCHUN, IN_JILIN, IN_JIAOHE = "H220102001", "H220202001", "H220281001"
LAST_DAY = date(2026, 11, 20)


@dataclass(frozen=True)
class Month:
    """A finished month of clearing: its topic namespace and its (live) database."""

    bootstrap: str
    prefix: str
    database_url: str


def outpatient(settlement_id: str, hospital: str, person: str, agency: str, at: str,
               amount: str, **extra: Any) -> tuple[str, bytes]:
    return person, envelope("settlement.submitted", {
        "settlement_id": settlement_id, "hospital": hospital, "person_id": person,
        "insured_agency": agency, "insurance_type": "employee", "visit_type": "outpatient",
        "visit_date": at[:10], "settled_at": at, "emergency": False, "referral": False,
        "items": [{"code": "EXAM", "name": "检查", "category": "A", "amount": amount}],
        **extra,
    }, id=f"{hospital}-{settlement_id}", source=f"hospital/{hospital}", time=at)


def _money_as_number() -> tuple[str, bytes]:
    person, value = outpatient("S6", IN_JILIN, "PC1", CHANGCHUN, "2026-10-10T10:00:00+08:00",
                               "1.00")
    document = orjson.loads(value)
    document["data"]["items"][0]["amount"] = 12.5
    return person, orjson.dumps(document)


def refund(refund_id: str, settlement_id: str, hospital: str, person: str,
           at: str) -> tuple[str, bytes]:
    return person, envelope("settlement.refund_requested", {
        "refund_id": refund_id, "settlement_id": settlement_id, "hospital": hospital,
        "person_id": person, "reason": "wrong items", "refunded_at": at,
    }, id=f"{hospital}-{refund_id}", source=f"hospital/{hospital}", time=at)


def submission(agency: str, type_: str, data: dict[str, Any], id: str,
               at: str) -> tuple[str, bytes]:
    return agency, envelope(type_, {"agency": agency, **data}, id=id,
                            source=f"agency/{agency}", time=at)


async def _results(bootstrap: str, prefix: str, kind: str, count: int) -> list[dict[str, Any]]:
    records = await read_topic(
        bootstrap, prefix + topics.CLEARING_RESULTS, timeout=90,
        until=lambda rs: sum(1 for r in rs if r.json()["type"] == kind) >= count)
    return [r.json()["data"] for r in records if r.json()["type"] == kind]


async def _settled(bootstrap: str, prefix: str, count: int) -> None:
    await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS, timeout=90,
                     until=lambda rs: len(rs) >= count)


async def build_month(bootstrap: str, database_url: str, logs: Path) -> Month:
    """Filing, settlements, a refund, a re-settlement across cycles, the calendar through the
    20th, confirmations and remittances; returns once every service is idle and stopped."""
    async with running_services(bootstrap, database_url, logs,
                                "filing", "settlement", "clearing") as services:
        await _run_month(bootstrap, services.prefix, database_url)
    return Month(bootstrap, services.prefix, database_url)


async def _run_month(bootstrap: str, prefix: str, database_url: str) -> None:
    await enrol(bootstrap, prefix, [("PJ1", JILIN, "employee"), ("PJ2", JILIN, "employee"),
                                    ("PC1", CHANGCHUN, "employee"),
                                    ("PC2", CHANGCHUN, "employee"),
                                    ("PH1", JIAOHE, "employee")], database_url)
    await produce(bootstrap, prefix + topics.FILING_COMMANDS, [("PJ1", envelope(
        "filing.requested", {
            "filing_id": "F-PJ1", "person_id": "PJ1", "insured_agency": JILIN,
            "insurance_type": "employee", "category": "relocated_retiree",
            "destination": CHANGCHUN, "valid_from": "2026-10-01",
            "materials": ["credential", "relocation_proof"], "commitment": False,
            "channel": "online"},
        id="F-PJ1", source=f"agency/{JILIN}", time="2026-09-30T10:00:00+08:00"))])
    await read_topic(bootstrap, prefix + topics.FILING_EVENTS,
                     until=lambda r: len(not_enrolment(r)) >= 1)
    await asyncio.sleep(1.0)  # the settlement service folds the filing first
    s2 = outpatient("S2", IN_CHANGCHUN, "PJ2", JILIN, "2026-10-09T10:00:00+08:00", "1500.00")
    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [
        outpatient("S1", IN_CHANGCHUN, "PJ1", JILIN, "2026-10-03T10:00:00+08:00", "3000.00"),
        s2, s2,  # delivered twice
        outpatient("S3", IN_JILIN, "PC1", CHANGCHUN, "2026-10-09T11:00:00+08:00", "800.00"),
        outpatient("S4", IN_JIAOHE, "PC2", CHANGCHUN, "2026-10-12T09:00:00+08:00", "600.00"),
        outpatient("S5", IN_CHANGCHUN, "PH1", JIAOHE, "2026-10-20T15:00:00+08:00", "1000.00"),
        refund("R3", "S3", IN_JILIN, "PC1", "2026-10-15T09:00:00+08:00"),
        _money_as_number(),  # breaks the contract: rejected, answered with its error event
    ])
    await _settled(bootstrap, prefix, 7)
    # The clearing takes them all before any day is on the log: S5 (20 October), which a day
    # could still change, is applied as it is read, and kept so (sequencer_unmarked).
    await _cleared_before_any_day(database_url, 7)
    await scheduler.advance(bootstrap, date(2026, 11, 2), prefix=prefix,
                            start=date(2026, 10, 1))
    statements = {s["agency"]: s for s in await _results(
        bootstrap, prefix, "clearing.statement_issued", 3)}
    # S1 is refunded after October's statements and settled again: carried into November.
    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [
        refund("R1", "S1", IN_CHANGCHUN, "PJ1", "2026-11-05T09:00:00+08:00"),
        outpatient("S1R", IN_CHANGCHUN, "PJ1", JILIN, "2026-11-05T10:00:00+08:00", "2500.00",
                   resettles="S1"),
    ])
    await _settled(bootstrap, prefix, 9)
    reports = await _results(bootstrap, prefix, "clearing.daily_report", 1)
    first = reports[0]
    await produce(bootstrap, prefix + topics.CLEARING_SUBMISSIONS, [
        submission(first["agency"], "clearing.daily_report_confirmed",
                   {"date": first["date"], "checksum": first["checksum"]},
                   "confirm-daily-1", "2026-11-03T08:00:00+08:00"),
        *(submission(agency, "clearing.statement_confirmed",
                     {"cycle": "2026-10", "checksum": s["checksum"]},
                     f"confirm-{agency}", "2026-11-03T09:00:00+08:00")
          for agency, s in sorted(statements.items()))])
    await scheduler.advance(bootstrap, date(2026, 11, 10), prefix=prefix)
    instructions = await _results(bootstrap, prefix, "clearing.net_transfer_instruction", 2)
    payers = [i for i in instructions if i["payee"] == "hub"]
    await produce(bootstrap, prefix + topics.CLEARING_SUBMISSIONS, [
        submission(i["payer"], "clearing.remittance_reported",
                   {"instruction_id": i["instruction_id"], "amount": i["amount"],
                    "paid_at": "2026-11-14T15:00:00+08:00"},
                   f"remit-{i['payer']}", "2026-11-14T15:00:00+08:00") for i in payers])
    await scheduler.advance(bootstrap, LAST_DAY, prefix=prefix)
    closed = await _results(bootstrap, prefix, "clearing.cycle_closed", 3)
    assert {c["agency"] for c in closed} == {CHANGCHUN, JILIN, JIAOHE}
    await _idle(database_url)


async def _cleared_before_any_day(database_url: str, count: int, timeout: float = 60
                                  ) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while await conn.fetchval("SELECT count(*) FROM clearing.inbox WHERE topic = $1",
                                  topics.SETTLEMENT_EVENTS) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the clearing did not take the settlements")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def _idle(database_url: str, timeout: float = 60) -> None:
    """Wait until every service has taken the last day and published everything."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        last: list[int] = []
        while True:
            counts = [await conn.fetchval(f"SELECT count(*) FROM {s}.inbox") for s in
                      ("filing", "settlement", "clearing")]
            pending = sum([await conn.fetchval(f"SELECT count(*) FROM {s}.outbox") for s in
                           ("filing", "settlement", "clearing")])
            days = [await conn.fetchval(
                f"SELECT count(*) FROM {s}.inbox WHERE id = $1", f"day:{LAST_DAY}")
                for s in ("filing", "clearing")]
            if counts == last and not pending and all(days):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"services not idle: inbox {counts}, outbox {pending}")
            last = counts
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def own_month(infra: Any, logs: Path) -> AsyncIterator[Month]:
    """The month of `build_month` in a database of its own, dropped when the block ends."""
    async with own_database(infra.database_url) as database_url:
        yield await build_month(infra.kafka_bootstrap, database_url, logs)


def clearinghouse(month: Month, *argv: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, against the month's namespace and database."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": month.bootstrap,
           "DATABASE_URL": month.database_url, "CLEARINGHOUSE_TOPIC_PREFIX": month.prefix,
           "CLEARINGHOUSE_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "cli", *argv], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
async def month(infra, tmp_path_factory) -> AsyncIterator[Month]:
    async with own_month(infra, tmp_path_factory.mktemp("audit-logs")) as month:
        yield month


def _replay(month: Month, cache: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    done = clearinghouse(month, "audit", "replay", "--prefix", month.prefix, "--database-url",
                         month.database_url, "--json", "--quiet", *extra, cache=cache)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, orjson.loads(done.stdout), done.stderr


def test_only_plain_live_transactions_are_merged() -> None:
    """`Plan.transactions`: consecutive live transactions in which every record took effect
    merge (up to the limit); one with a duplicate or a refused record, and one holding a
    day, start a transaction of their own; a plan in log order is replayed as planned."""
    def records(topic: str, *offsets: int) -> list[Record]:
        return [Record(topic, 0, o, b"k", b"{}") for o in offsets]

    ev, day = topics.SETTLEMENT_EVENTS, topics.CLEARING_SCHEDULE
    batches = [records(ev, 0, 1), records(ev, 2), records(ev, 3, 4), records(day, 0),
               records(ev, 5), records(ev, 6), records(ev, 7, 8, 9), records(ev, 10)]
    plain = [True, True, False, True, True, True, True, True]
    plan = replay.Plan("clearing", [list(b) for b in batches], plain=plain)
    offsets = [[(r.topic, r.offset) for r in b] for b in plan.transactions(limit=4)]
    assert offsets == [
        [(ev, 0), (ev, 1), (ev, 2)],        # two plain transactions merged
        [(ev, 3), (ev, 4)],                 # a duplicate or refusal in it: as it was
        [(day, 0), (ev, 5), (ev, 6)],       # a day starts a transaction; plain ones join it
        [(ev, 7), (ev, 8), (ev, 9), (ev, 10)],  # the limit (4) was reached
    ]
    assert plan.batches == batches  # the live transactions are kept (and reported)
    assert [len(b) for b in plan.transactions(limit=1)] == [len(b) for b in batches]
    logged = replay.Plan("clearing", [list(b) for b in batches])
    assert logged.transactions() == batches


def test_inbox_plan_marks_transactions_with_duplicates_and_refusals() -> None:
    """Only transactions whose every record has its own inbox row are plain."""
    from datetime import UTC, datetime

    t1, t2, t3 = (datetime(2026, 10, 1, 0, 0, n, tzinfo=UTC) for n in (1, 2, 3))

    def event(offset: int, id_: str) -> Record:
        return Record(topics.SETTLEMENT_EVENTS, 0, offset, b"k",
                      orjson.dumps({"source": "service/settlement", "id": id_}))

    log = [event(0, "a"), event(1, "b"), event(2, "b"), event(3, "c"), event(4, "d")]
    taken = replay.Consumption(
        ranks={(topics.SETTLEMENT_EVENTS, 0, 0): (t1, 0, (1,)),
               (topics.SETTLEMENT_EVENTS, 0, 1): (t2, 0, (2,)),
               (topics.SETTLEMENT_EVENTS, 0, 3): (t3, 0, (3,)),
               (topics.SETTLEMENT_EVENTS, 0, 4): (t3, 1, (4,))},  # refused
        ids={("service/settlement", "a"): (t1, 0, (1,)),
             ("service/settlement", "b"): (t2, 0, (2,)),
             ("service/settlement", "c"): (t3, 0, (3,))}, present=True)
    plan = replay.inbox_plan("clearing", {(topics.SETTLEMENT_EVENTS, 0): log}, taken)
    assert [[r.offset for r in b] for b in plan.batches] == [[0], [1, 2], [3, 4]]
    assert plan.plain == [True, False, False]  # offset 2 a duplicate, offset 4 refused
    assert [[r.offset for r in b] for b in plan.transactions()] == [[0], [1, 2], [3, 4]]


def test_inbox_plan_accepts_a_refused_record_before_a_taken_one_in_a_transaction() -> None:
    """A live transaction records its refused records after the events it took, whatever
    their offsets: that is not a partition read out of order (the audit used to stop)."""
    from datetime import UTC, datetime

    t1, t2 = (datetime(2026, 10, 1, 0, 0, n, tzinfo=UTC) for n in (1, 2))
    log = [Record(topics.SETTLEMENT_SUBMISSIONS, 0, o, b"k", b"{}") for o in range(4)]
    part = (topics.SETTLEMENT_SUBMISSIONS, 0)
    taken = replay.Consumption(ranks={
        (*part, 0): (t1, 1, (1,)),  # refused, recorded after offset 1
        (*part, 1): (t1, 0, (2,)),
        (*part, 2): (t2, 0, (3,)),
        (*part, 3): (t2, 0, (4,))}, present=True)
    plan = replay.inbox_plan("settlement", {part: log}, taken)
    assert [sorted(r.offset for r in b) for b in plan.batches] == [[0, 1], [2, 3]]
    assert plan.plain == [False, True]
    out_of_order = replay.Consumption(ranks={
        (*part, 0): (t2, 0, (1,)), (*part, 1): (t1, 0, (2,))}, present=True)
    with pytest.raises(ValueError, match="does not follow the order"):
        replay.inbox_plan("settlement", {part: log[:2]}, out_of_order)


async def test_replay_in_processes_and_unmerged_gives_the_same_report(month, tmp_path
                                                                      ) -> None:
    """Each service rebuilt in a process of its own, and the live transactions replayed one
    by one (no merging), give exactly the report of the default replay."""
    code, report, _ = _replay(month, tmp_path)
    assert code == 0, orjson.dumps(report["differences"][:20]).decode()
    variants = [_replay(month, tmp_path, "--processes", "always"),
                _replay(month, tmp_path, "--merge-limit", "1", "--processes", "never")]
    for variant_code, variant, stderr in variants:
        assert variant_code == 0, (stderr, orjson.dumps(variant["differences"][:20]).decode())
        assert {k: v for k, v in variant.items() if k != "run"} == {
            k: v for k, v in report.items() if k != "run"}
    merged, unmerged = report["run"]["per_service"], variants[1][1]["run"]["per_service"]
    assert [unmerged[s]["transactions"] for s in ("filing", "settlement", "clearing")] == [
        report["replayed"][s]["transactions"] for s in ("filing", "settlement", "clearing")]
    assert all(merged[s]["transactions"] <= unmerged[s]["transactions"] for s in merged)


async def test_settlement_rebuilt_in_groups_of_persons_gives_the_same_report(month, tmp_path
                                                                            ) -> None:
    """The settlement service's persons rebuilt in two processes sharing its schema give
    exactly the report of one process; one stopped after a transaction of each group goes on
    from the groups' checkpoints to the same report."""
    code, report, _ = _replay(month, tmp_path, "--groups", "1")
    assert code == 0, orjson.dumps(report["differences"][:20]).decode()
    assert report["run"]["groups"] == []
    code, grouped, stderr = _replay(month, tmp_path, "--groups", "2")
    assert code == 0, (stderr, orjson.dumps(grouped["differences"][:20]).decode())
    assert grouped["run"]["groups"] == [
        "settlement was rebuilt in 2 groups of persons, a process each"]
    assert {k: v for k, v in grouped.items() if k != "run"} == {
        k: v for k, v in report.items() if k != "run"}
    per_service = grouped["run"]["per_service"]["settlement"]
    assert per_service["transactions"] >= report["run"]["per_service"]["settlement"][
        "transactions"]

    stopped = clearinghouse(month, "audit", "replay", "--prefix", month.prefix,
                            "--database-url", month.database_url, "--json", "--quiet",
                            "--keep", "--groups", "2", "--merge-limit", "1", "--stop-after",
                            "1", cache=tmp_path)
    assert stopped.returncode == 130, stopped.stderr
    name = stopped.stderr.split("--resume ")[-1].split("`")[0].split()[0].strip(")`")
    # told one group now, it goes on with the two it began with
    resumed = clearinghouse(month, "audit", "replay", "--prefix", month.prefix,
                            "--database-url", month.database_url, "--json", "--quiet",
                            "--groups", "1", "--resume", name, cache=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    again = orjson.loads(resumed.stdout)
    assert again["run"]["resumed"] and again["run"]["groups"] == grouped["run"]["groups"]
    assert {k: v for k, v in again.items() if k != "run"} == {
        k: v for k, v in report.items() if k != "run"}


async def test_the_streaming_replay_plans_as_the_in_memory_one_and_resumes(month, infra,
                                                                          tmp_path) -> None:
    """The replay staged in the audit database (the default) gives exactly the report of the
    log read whole into memory; one stopped after a few transactions of each service keeps
    its audit database, and goes on from its checkpoints (--resume) to the same report."""
    code, streamed, _ = _replay(month, tmp_path)
    assert code == 0, orjson.dumps(streamed["differences"][:20]).decode()
    assert streamed["run"]["streaming"] and not streamed["run"]["resumed"]
    code, in_memory, _ = _replay(month, tmp_path, "--in-memory")
    assert code == 0 and not in_memory["run"]["streaming"]
    assert {k: v for k, v in in_memory.items() if k != "run"} == {
        k: v for k, v in streamed.items() if k != "run"}
    by_log = [_replay(month, tmp_path, "--order", "log", *extra)
              for extra in ((), ("--in-memory",))]  # the log-order plan made in SQL too
    assert by_log[0][1]["order"] == "log" and by_log[0][1]["run"]["streaming"]
    assert {k: v for k, v in by_log[0][1].items() if k not in ("run", "notes")} == {
        k: v for k, v in by_log[1][1].items() if k not in ("run", "notes")}

    done = clearinghouse(month, "audit", "replay", "--prefix", month.prefix, "--database-url",
                         month.database_url, "--json", "--quiet", "--keep", "--merge-limit",
                         "1", "--stop-after", "3", cache=tmp_path)
    assert done.returncode == 130, done.stderr
    assert "--resume audit_" in done.stderr, done.stderr
    name = done.stderr.split("--resume ")[-1].split("`")[0].split()[0].strip(")`")
    audit_url = f"{infra.database_url.rpartition('/')[0]}/{name}"
    conn = await asyncpg.connect(audit_url)
    try:  # stopped part-way: each service's checkpoint is its third transaction's end
        stopped = {r["service"]: r for r in await conn.fetch(
            "SELECT * FROM audit_log.checkpoints")}
        planned = {r["service"]: r["n"] for r in await conn.fetch(
            "SELECT service, count(*) AS n FROM audit_log.plan GROUP BY service")}
    finally:
        await conn.close()
    assert set(stopped) == {"filing", "settlement", "clearing"}
    assert all(stopped[s]["commits"] == 3 and not stopped[s]["done"] for s in stopped)
    assert all(0 < stopped[s]["ord"] < planned[s] for s in stopped)
    code, resumed, stderr = _replay(month, tmp_path, "--resume", name)
    assert code == 0, (stderr, orjson.dumps(resumed["differences"][:20]).decode())
    assert resumed["run"]["resumed"] and resumed["run"]["audit_database"] == name
    assert {k: v for k, v in resumed.items() if k != "run"} == {
        k: v for k, v in streamed.items() if k != "run"}
    admin = await asyncpg.connect(infra.database_url)
    try:  # a resumed audit that finished drops its database
        assert not await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1",
                                        name)
    finally:
        await admin.close()


async def test_replay_rebuilds_everything_and_names_a_tampered_posting(month, tmp_path) -> None:
    code, report, stderr = _replay(month, tmp_path)
    assert code == 0, orjson.dumps(report["differences"][:20]).decode()
    assert report["match"] and report["differences"] == []
    assert "events/s" in stderr
    replayed = report["replayed"]
    assert replayed["settlement"]["duplicates"] == 1 and replayed["settlement"]["rejected"] == 1
    assert all(r["records"] > 0 and r["unread_by_live"] == 0 for r in replayed.values())
    tables = {t["table"]: t for t in report["tables"]}
    for name in ("filing.persons", "settlement.persons", "settlement.filing_views",
                 "clearing.clearing_state", "clearing.items", "clearing.postings",
                 "clearing.results", "clearing.daily_reports"):
        assert tables[name]["match"] and tables[name]["live_rows"] > 0, tables[name]
    # S5 (20 October) was settled before any day was published and a day could still change
    # it: the live clearing applied it as it read it, and the replay did the same
    unmarked = tables["clearing.sequencer_unmarked"]
    assert unmarked["match"] and unmarked["live_rows"] >= 1, unmarked
    events = {e["topic"]: e for e in report["events"]}
    assert events[topics.CLEARING_RESULTS]["published"] == events[
        topics.CLEARING_RESULTS]["rebuilt"] > 10
    assert events[topics.SETTLEMENT_EVENTS]["match"] and events[topics.FILING_EVENTS]["match"]
    assert events[topics.rejected(topics.SETTLEMENT_SUBMISSIONS)]["published"] == 1
    assert report["postings"]["match"] and report["postings"]["at_another_sequence"] == 0
    # three agencies and the hub, and the revolving fund of every agency that keeps one
    # (reference/revolving-fund.toml), replayed to the same fen
    funds = load_fund_policy()
    assert funds is not None
    assert report["chains"]["live"]["broken"] == [] and report["chains"]["live"]["ledgers"] == (
        4 + len(funds.funds))

    # Twice: the same report, apart from the run's own figures.
    code, again, _ = _replay(month, tmp_path)
    assert code == 0
    assert {k: v for k, v in again.items() if k != "run"} == {
        k: v for k, v in report.items() if k != "run"}
    text = [clearinghouse(month, "audit", "replay", "--quiet", cache=tmp_path)
            for _ in range(2)]
    assert [t.returncode for t in text] == [0, 0], text[0].stderr
    assert text[0].stdout == text[1].stdout and "MATCH" in text[0].stdout

    # One posting's amount altered in the live database.
    conn = await asyncpg.connect(month.database_url)
    try:
        posting = await conn.fetchrow(
            """SELECT agency, sequence, entry_id, line, amount FROM clearing.postings
               WHERE kind = 'settlement' AND agency = $1 ORDER BY sequence LIMIT 1""", JILIN)
        await conn.execute(
            """UPDATE clearing.postings SET amount = amount + 1.00
               WHERE agency = $1 AND sequence = $2""", JILIN, posting["sequence"])
    finally:
        await conn.close()
    code, tampered, _ = _replay(month, tmp_path)
    assert code == 1 and not tampered["match"]
    key = {"agency": JILIN, "entry_id": posting["entry_id"], "line": posting["line"]}
    assert [d for d in tampered["differences"] if d["area"] == "table"] == [{
        "area": "table", "where": "clearing.postings", "key": key, "kind": "differs",
        "field": "amount", "live": str(posting["amount"] + Decimal("1.00")),
        "replay": str(posting["amount"])}]
    assert tampered["chains"]["live"]["broken"] == [
        {"agency": JILIN, "sequence": posting["sequence"], "entry_id": posting["entry_id"],
         "line": posting["line"]}]
    assert tampered["chains"]["replay"]["broken"] == []
    assert {e["topic"]: e["match"] for e in tampered["events"]} == {
        e["topic"]: True for e in tampered["events"]}
    text = clearinghouse(month, "audit", "replay", "--quiet", cache=tmp_path)
    assert text.returncode == 1
    assert "MISMATCH" in text.stdout
    assert f"{JILIN} at sequence {posting['sequence']}" in text.stdout


async def test_an_audit_stopped_with_sigterm_drops_its_database_and_stops_its_processes(
        month, infra, tmp_path) -> None:
    import signal
    import time

    marker = f"CLEARINGHOUSE_TEST_AUDIT_RUN={tmp_path.name}"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": month.bootstrap,
           "DATABASE_URL": month.database_url, "CLEARINGHOUSE_TOPIC_PREFIX": month.prefix,
           "CLEARINGHOUSE_CACHE": str(tmp_path), marker.split("=")[0]: marker.split("=")[1]}
    admin = await asyncpg.connect(infra.database_url)
    try:
        before = {r["datname"] for r in await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'audit\\_%'")}
        audit = subprocess.Popen(
            [sys.executable, "-m", "cli", "audit", "replay", "--prefix", month.prefix,
             "--database-url", month.database_url, "--quiet", "--processes", "always"],
            env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        made: set[str] = set()
        deadline = time.monotonic() + 120
        try:
            while not made and time.monotonic() < deadline and audit.poll() is None:
                await asyncio.sleep(0.02)
                made = {r["datname"] for r in await admin.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'audit\\_%'")} - before
            assert made, "the audit made no database (or ended first)"
            await asyncio.sleep(0.5)  # into the rebuild
            audit.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.to_thread(audit.communicate, timeout=90)
        finally:
            if audit.poll() is None:
                audit.kill()
        assert audit.returncode == 130, stderr
        assert "interrupted" in stderr and "Traceback" not in stderr, stderr
        assert not await admin.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = ANY($1::text[])", list(made))
        assert processes_with_env(marker) == []  # no rebuild process outlived it
    finally:
        await admin.close()
