"""The streaming audit's own safeguards (`tools.audit.stream`, `tools.audit.cli`): a second
rebuilt copy of an event is a difference, a rebuild that began inside a split batch is not
split on resume, and ``--resume`` refuses a database that holds no streaming audit."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import orjson
import pytest

from shared import topics
from shared.db import drop_database
from tests.helpers import new_database_name, own_database
from tools.audit import cli, compare, stream

pytestmark = pytest.mark.infra

TOPIC = topics.FILING_EVENTS


async def test_a_second_rebuilt_copy_of_an_event_differs_when_compared_streaming(infra) -> None:
    value = orjson.dumps({"id": "e1", "type": "filing.accepted"})
    async with own_database(infra.database_url) as url:
        conn = await asyncpg.connect(url)
        try:
            await stream.prepare(conn)
            await conn.execute(f"""INSERT INTO {stream.SCHEMA}.records VALUES
                                   ($1, 0, 0, 'P1', $2, '[]', 0, 'filing', 'e1', 'e1')""",
                               TOPIC, value)
            for schema in ("one", "two"):
                await conn.execute(f"""CREATE SCHEMA {schema};
                    CREATE TABLE {schema}.outbox (seq bigserial PRIMARY KEY, topic text,
                                                  key bytea, value bytea NOT NULL)""")
            await conn.execute("INSERT INTO one.outbox (topic, key, value) VALUES "
                               "($1, 'P1', $2)", TOPIC, value)
        finally:
            await conn.close()
        result = compare.Comparison()
        await stream.compare_events(url, TOPIC, ["one", "two"], result)
        assert not result.differences and result.topics[0].match
        # the same event rebuilt again, by the same service or another one
        for schema in ("one", "two"):
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(f"INSERT INTO {schema}.outbox (topic, key, value) VALUES "
                                   "($1, 'P1', $2)", TOPIC, value)
            finally:
                await conn.close()
            result = compare.Comparison()
            await stream.compare_events(url, TOPIC, ["one", "two"], result)
            assert [(d.key, d.field) for d in result.differences] == [
                ({"id": "e1"}, "rebuilt twice")] * (1 if schema == "one" else 2)
            assert not result.topics[0].match
            assert (result.topics[0].published, result.topics[0].rebuilt) == (1, 1)


async def test_a_rebuild_that_committed_inside_a_split_batch_is_not_split(infra) -> None:
    async with own_database(infra.database_url) as url:
        conn = await asyncpg.connect(url)
        try:
            await stream.prepare(conn)
            await stream.save_summary(conn, stream.PlanSummary("settlement", 2, 1))
            # commits of a poison batch's halves: the plan row stays 0 until it is whole
            await conn.execute(f"INSERT INTO {stream.SCHEMA}.checkpoints (service, commits) "
                               "VALUES ('settlement', 1)")
        finally:
            await conn.close()
        assert await stream.split_plan(url, "settlement", 2) is None
        assert await stream.saved_groups(url, "settlement") == []


@pytest.mark.parametrize("staged", [False, True])
async def test_resume_refuses_a_database_that_holds_no_streaming_audit(
        infra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staged: bool) -> None:
    async def no_staging(*_: object, **__: object) -> int:
        raise AssertionError("the log was staged into a database named to resume")

    monkeypatch.setenv("CLEARINGHOUSE_CACHE", str(tmp_path))  # no last demo
    monkeypatch.setattr(stream, "stage_log", no_staging)
    name = "audit_" + new_database_name()
    async with own_database(infra.database_url) as live_url:
        admin = await asyncpg.connect(live_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                audit = await asyncpg.connect(cli.audit_database_url(live_url, name))
                try:
                    if staged:
                        await stream.prepare(audit)  # schema made, no audit recorded
                    with pytest.raises(ValueError, match="is not a streaming audit database"):
                        await cli.run_audit(prefix="nothing.", database_url=live_url,
                                            resume=name)
                    if not staged:  # nothing was written into it
                        assert await audit.fetchval("SELECT to_regnamespace($1)",
                                                    stream.SCHEMA) is None
                finally:
                    await audit.close()
            finally:
                await drop_database(admin, name)
        finally:
            await admin.close()
