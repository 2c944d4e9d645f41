"""A clearing database from before the shared sequencer upgrades: the cut's rows kept in
``input_positions``, ``pending_days`` and ``deferred`` move to the sequencer's tables, and the
sequencer reads them back as it wrote them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.clearing.app import SPEC as CLEARING
from shared.db import apply_migrations, create_pool, migrations
from shared.messaging.sequencer import Sequencer

pytestmark = pytest.mark.infra


class _NoRules:
    def decode(self, topic: str, value: bytes | None):  # type: ignore[no-untyped-def]
        from shared.events import decode
        return decode(topic, value)

    def watermarks(self, event):  # type: ignore[no-untyped-def]
        return event.data.watermarks

    async def decidable(self, event) -> bool:  # type: ignore[no-untyped-def]
        return False

    async def apply(self, event, record) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError("nothing is applied while loading")


DAY = (b'{"specversion":"1.0","id":"day:2026-10-02","source":"operator/calendar",'
       b'"type":"calendar.day_started","time":"2026-10-02T00:00:00+08:00",'
       b'"datacontenttype":"application/json","data":{"date":"2026-10-02",'
       b'"watermarks":{"settlement.events":{"0":5}}}}')


async def test_an_old_clearing_database_keeps_its_cut(fresh_database: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    old_backbone, old_clearing = tmp_path / "backbone", tmp_path / "clearing"
    old_backbone.mkdir()
    old_clearing.mkdir()
    for name in ("001_messaging.sql", "002_consumption_order.sql"):
        shutil.copy(migrations.BACKBONE / name, old_backbone)
    for name in ("001_clearing.sql", "002_item_positions.sql"):
        shutil.copy(CLEARING.migrations / name, old_clearing)

    pool = await create_pool(fresh_database, "clearing", max_size=2)
    try:
        monkeypatch.setattr(migrations, "BACKBONE", old_backbone)
        await apply_migrations(pool, old_clearing)
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO input_positions VALUES ('settlement.events', 0, 4),"
                               " ('clearing.submissions', 1, 9)")
            await conn.execute('INSERT INTO pending_days (topic, "partition", "offset", value)'
                               " VALUES ('clearing.schedule', 0, 3, $1)", DAY)
            await conn.execute("INSERT INTO deferred VALUES ('settlement.events', 0, 3, 'x')")
        monkeypatch.undo()

        applied = await apply_migrations(pool, CLEARING.migrations)
        # the sequencer's migrations, then any the clearing added since
        assert applied[:3] == ["003_sequencer.sql", "004_sequencer_unmarked.sql",
                               "003_sequencer_tables.sql"]
        async with pool.acquire() as conn:
            old = await conn.fetchval(
                """SELECT count(*) FROM pg_tables WHERE schemaname = 'clearing'
                   AND tablename IN ('input_positions', 'pending_days', 'deferred')""")
            assert old == 0
            sequencer = await Sequencer.load(conn, _NoRules(), started=True)
        assert sequencer.positions == {("settlement.events", 0): 4,
                                       ("clearing.submissions", 1): 9}
        assert [(r.topic, r.partition, r.offset, r.value) for r in sequencer.waiting] == [
            ("clearing.schedule", 0, 3, DAY)]
        assert sequencer.held == {("settlement.events", 0)}
    finally:
        await pool.close()


async def test_a_new_database_has_only_the_sequencer_tables(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, "clearing", max_size=2)
    try:
        await apply_migrations(pool, CLEARING.migrations)
        async with pool.acquire() as conn:
            tables = {r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'clearing'")}
        assert {"sequencer_positions", "sequencer_markers", "sequencer_deferred"} <= tables
        assert not tables & {"input_positions", "pending_days", "deferred"}
    finally:
        await pool.close()
