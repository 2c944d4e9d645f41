"""Test namespaces are recognised and dated, so leftovers can be removed; the broker wait
goes on while the broker's log shows progress, and stops when it does not."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from infra import InfraError, kafka
from tests.helpers import (
    SESSION_PREFIXES,
    TEST_PREFIX,
    new_database_name,
    new_prefix,
    stale_test_database,
    stale_test_topic,
)


def test_new_prefixes_are_dated_recorded_and_recognised() -> None:
    prefix = new_prefix()
    assert prefix in SESSION_PREFIXES
    assert TEST_PREFIX.match(prefix + "settlement.events")
    assert not stale_test_topic(prefix + "settlement.events", time.time(), 3600)
    assert stale_test_topic(prefix + "settlement.events", time.time() + 7200, 3600)


def test_undated_old_test_topics_are_stale_and_others_are_left_alone() -> None:
    now = time.time()
    assert stale_test_topic("t0123456789.clearing.results", now, 3600)
    for name in ("settlement.events", "demo.20261125221525.clearing.results",
                 "bench_0123456789.filing.events", "tabc.filing.events", "infra.probe"):
        assert not stale_test_topic(name, now, 3600), name


def test_test_databases_are_dated_and_only_theirs_are_stale() -> None:
    name = new_database_name()
    now = time.time()
    assert not stale_test_database(name, now, 3600)
    assert stale_test_database(name, now + 7200, 3600)
    for undated in ("test_0123456789ab", "test_batches_0123456789", "test_drop_0123456789"):
        assert stale_test_database(undated, now, 3600), undated
    for other in ("clearinghouse", "postgres", "template1", "demo_20261126010302",
                  "audit_20261126_012200_180008", "bench_0123456789", "testdb"):
        assert not stale_test_database(other, now, 3600), other


def test_wait_ready_waits_while_the_log_grows_then_gives_up(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "kafka.log"
    log.parent.mkdir()
    log.write_text("starting\n")

    async def scenario() -> float:
        async def busy_broker() -> None:  # loads partitions for 3 s, logging each
            for i in range(12):
                await asyncio.sleep(0.25)
                with log.open("a") as out:
                    out.write(f"loaded partition {i}\n")

        writer = asyncio.create_task(busy_broker())
        started = time.monotonic()
        with pytest.raises(InfraError, match="without progress") as raised:
            await kafka.wait_ready("127.0.0.1:9", timeout=1.5, cache=tmp_path)
        await writer
        assert "loaded partition 11" in str(raised.value)
        return time.monotonic() - started

    # Without progress the wait would end after 1.5 s; the log grew for 3 s.
    assert asyncio.run(scenario()) >= 3.0
