"""1. Crashes: a month of settlements with refunds and re-settlements while each service is
killed with SIGKILL in turn at random moments, several times, and restarted; then every
answer, daily report, statement, instruction and ledger must equal the hand-computed result
exactly (tests/faults/workload.py), with no posting missing and none twice.

Size: ``CLEARINGHOUSE_FAULT_SETTLEMENTS`` (default in `DEFAULT_SETTLEMENTS`, see
docs/reliability.md for the measurement behind it); the seed of the kill schedule is
``CLEARINGHOUSE_FAULT_SEED`` (printed, so a failing schedule can be replayed).
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.faults.harness import (
    SERVICES,
    Installation,
    Timings,
    chaos,
    env_int,
    log_step,
    run_and_check,
)
from tests.faults.workload import generate

DEFAULT_SETTLEMENTS = 20_000
SETTLEMENTS = env_int("CLEARINGHOUSE_FAULT_SETTLEMENTS", DEFAULT_SETTLEMENTS)
ROUNDS = env_int("CLEARINGHOUSE_FAULT_KILL_ROUNDS", 3)


@pytest.mark.timeout(900)
async def test_kill_9_each_service_in_turn_loses_and_doubles_nothing(
        infra, fresh_database, tmp_path) -> None:
    seed = env_int("CLEARINGHOUSE_FAULT_SEED", int(time.time()) % 100_000)
    rng = random.Random(seed)
    log_step(f"crash test: {SETTLEMENTS} settlements, {ROUNDS} kill rounds, seed {seed}")
    work = generate(SETTLEMENTS, filing_share=1.0)
    inst = Installation(infra.kafka_bootstrap, fresh_database, tmp_path)
    timings = Timings()
    await inst.create_topics()
    inst.start(*SERVICES)
    # Spread the month over ~1 s per 700 settlements, so the kills land in a busy system.
    seconds = max(10.0, SETTLEMENTS / 700)
    schedule = chaos(inst, asyncio.Event(), rng, rounds=ROUNDS,
                     gap=(0.5, max(1.0, seconds / (ROUNDS * len(SERVICES)))), down=(0.0, 1.5),
                     crash_after_commits={"filing": 1, "settlement": 2, "clearing": 2})

    async def kill_clearing_while_it_acts(day: str) -> None:
        # The calendar's work (reports, statements, instructions) is one big transaction:
        # a crash inside it must not leave half a statement or a doubled clearing posting.
        await asyncio.sleep(rng.uniform(0.2, 2.0))
        inst.kill("clearing")
        inst.restart("clearing")

    try:
        await run_and_check(inst, work, timings=timings, waves=40, seconds=seconds,
                            while_ingesting=schedule, after_day=kill_clearing_while_it_acts,
                            answer_timeout=420, results_timeout=240)
        for name in SERVICES:
            assert inst.kills[name] >= ROUNDS, f"{name} was killed only {inst.kills[name]} times"
        assert inst.exited() == {}, f"services ended on their own: {inst.exited()}"
    finally:
        inst.stop()
        log_step("timeline:\n  " + "\n  ".join(inst.timeline))
        log_step(f"timings: {timings.marks}")
