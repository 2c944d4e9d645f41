"""Records read before any marker, while the service's probe of the broker said no marker was
on the log, are applied at once and kept in ``sequencer_unmarked``; a replay of the log
(`tools.audit.replay.LiveChoices`) applies the same records at once and holds the others,
so that it applies everything in the live order.

Without the kept answers a replay could only ask the broker, which by then holds the days:
it held such records until the first day and applied them in position order, so two
ledgers' postings came in another order than live (their hash links and the statements'
``chain_head`` differed) whenever the live service had asked before the first day was
published. The last test shows that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from services.clearing.app import SPEC as CLEARING
from shared.db import apply_migrations, create_pool
from shared.db.roles import service_database_url
from shared.messaging.records import Incoming, Record
from shared.messaging.sequencer import Sequencer
from tests.helpers import own_database
from tools.audit.replay import LiveChoices

pytestmark = pytest.mark.infra

SETTLEMENTS = "settlement.events"
DAY = Record("clearing.schedule", 0, 0, None, orjson.dumps(
    {"watermarks": {SETTLEMENTS: {"0": 2, "1": 2}}}))
#: As the live service read them: the two partitions interleaved.
READ = [Record(SETTLEMENTS, p, o, None, orjson.dumps({"n": f"{p}@{o}"}))
        for p, o in ((0, 0), (1, 0), (1, 1), (0, 1))]


class Rules:
    """Nothing is decidable by the rules before a day; what is applied is written down."""

    def __init__(self) -> None:
        self.applied: list[str] = []

    def decode(self, topic: str, value: bytes | None) -> Any:
        return orjson.loads(value or b"{}")

    def watermarks(self, event: Any) -> Any:
        return event.get("watermarks")

    async def decidable(self, event: Any) -> bool:
        return False

    async def apply(self, event: Any, record: Record | None) -> None:
        self.applied.append("day" if record is None else event["n"])


class Probe:
    """The live broker probe: no marker on the log for the first `until` records asked."""

    def __init__(self, until: int):
        self.until, self.asked = until, 0

    async def __call__(self, record: Record) -> bool:
        self.asked += 1
        return self.asked > self.until


async def _run(url: str, markers_on_log: Any, batches: Sequence[Sequence[Record]]
               ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Each batch one transaction of the sequencer; what was applied, in order, and the
    records kept as applied because no marker was on the log."""
    rules = Rules()
    # as the service: its own role makes its tables (the auditor may read them)
    pool = await create_pool(service_database_url(url, "clearing"), "clearing", max_size=2)
    try:
        await apply_migrations(pool, CLEARING.migrations)
        for batch in batches:
            async with pool.acquire() as conn, conn.transaction():
                sequencer = await Sequencer.load(conn, rules, started=False,
                                                 markers_on_log=markers_on_log)
                for record in batch:
                    await sequencer.take(Incoming(record, rules.decode(record.topic,
                                                                       record.value)))
                await sequencer.drain()
                await sequencer.finish()
                # as `BatchProcessor` has the clearing handler observe every record read
                if await Sequencer.observe(conn, batch, {SETTLEMENTS}):
                    sequencer = await Sequencer.load(conn, rules, started=False,
                                                     markers_on_log=markers_on_log)
                    await sequencer.drain()
                    await sequencer.finish()
        async with pool.acquire() as conn:
            kept = [tuple(r) for r in await conn.fetch(
                'SELECT topic, "partition", "offset" FROM sequencer_unmarked ORDER BY 1, 2, 3')]
        return rules.applied, kept
    finally:
        await pool.close()


@pytest.mark.parametrize("until", [4, 2, 0])
async def test_a_replay_applies_what_live_applied_before_any_day(infra, until: int) -> None:
    batches = [READ[:3], READ[3:], [DAY]]
    async with own_database(infra.database_url) as live_url, \
            own_database(infra.database_url) as replay_url:
        live, live_kept = await _run(live_url, Probe(until), batches)
        assert len(live_kept) == until
        assert live[-1] == "day" and sorted(live[:-1]) == ["0@0", "0@1", "1@0", "1@1"]
        choices = await LiveChoices.open(live_url, "clearing")
        assert choices is not None
        try:
            # the replay merges the live transactions into one, as the audit may
            replayed, replay_kept = await _run(replay_url, choices, [READ + [DAY]])
        finally:
            await choices.close()
        assert replayed == live
        assert replay_kept == live_kept


async def test_asking_the_broker_at_replay_time_reorders(infra) -> None:
    """What the replay did before the live answers were kept: by then the broker holds the
    day, so the records wait for it and come in position order, not in the live order."""
    async with own_database(infra.database_url) as live_url, \
            own_database(infra.database_url) as replay_url:
        live, _ = await _run(live_url, Probe(4), [READ, [DAY]])
        replayed, _ = await _run(replay_url, Probe(0), [READ, [DAY]])
        assert live == ["0@0", "1@0", "1@1", "0@1", "day"]
        assert replayed == ["0@0", "0@1", "1@0", "1@1", "day"]
