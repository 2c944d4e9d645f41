"""3. Proof of identity: the same seeded month gives the same `clearing.results` (the digest
of every daily report, statement, instruction and notice, byte for byte) and the same ledger
rows with 1 instance of each service on 1 broker, with 3 instances of each on a replicated
three-broker cluster, and on that cluster with one broker and one instance of each service
killed (kill -9) mid-run and the instances restarted. Every run is also checked against the
hand-computed outcome (tests/faults/workload.py).

Size: ``CLEARINGHOUSE_SCALE_SETTLEMENTS`` (default 3000); instances
``CLEARINGHOUSE_SCALE_INSTANCES`` (default 3). Time: docs/operations.md ("The scale tests").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from infra import kafka
from infra.local import CLUSTER_PARTITIONS
from tests.faults.harness import Installation
from tests.helpers import own_database
from tests.scale.identity import (
    INSTANCES,
    Outcome,
    differences,
    kill_pid,
    run_month,
    wait_active_clearing,
)

#: The broker killed mid-run (any node but the one the cluster's bootstrap lists first
#: would do; the clients know all three).
KILLED_NODE = 2


async def _database(infra) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    async with own_database(infra.database_url) as url:
        yield url


@pytest.fixture(scope="module")
async def single(infra, tmp_path_factory) -> AsyncIterator[Outcome]:  # type: ignore[no-untyped-def]
    """The reference run: one instance of each service on the one shared broker, with
    shared.topics' default partitions."""
    async for url in _database(infra):
        yield await run_month(infra.kafka_bootstrap, url, tmp_path_factory.mktemp("single"),
                              instances=1)


def _same(single: Outcome, got: Outcome) -> None:
    problems = differences(single, got)
    assert not problems, "\n".join(problems)
    assert got.digest == single.digest
    assert got.ledger_digest == single.ledger_digest
    assert len(single.results) > 0 and len(single.ledger) > 0


@pytest.mark.timeout(600)
async def test_three_instances_on_three_brokers_give_the_same_results(
        single, cluster, fresh_database, tmp_path: Path) -> None:
    got = await run_month(cluster.bootstrap, fresh_database, tmp_path, instances=INSTANCES,
                          topic_partitions=CLUSTER_PARTITIONS)
    _same(single, got)


@pytest.mark.timeout(600)
async def test_a_broker_and_an_instance_of_each_service_killed_give_the_same_results(
        single, cluster, fresh_database, tmp_path: Path) -> None:
    killed: list[str] = []

    async def faults(inst: Installation) -> None:
        await asyncio.sleep(4)  # the month is being sent and decided
        node = kafka.running(cluster.cache, KILLED_NODE)
        assert node is not None, f"broker {KILLED_NODE} of the cluster is not running"
        kill_pid(node[0])
        inst.note(f"kill -9 broker {KILLED_NODE} (pid {node[0]})")
        await asyncio.sleep(2)
        active = await wait_active_clearing(inst)
        for instance in (f"filing-{INSTANCES}", "settlement-2", active):
            inst.kill(instance)
            killed.append(instance)
        taken_over = await wait_active_clearing(inst, other_than=active)
        inst.note(f"{taken_over} took over from {active}")
        for instance in killed:
            inst.services.supervisor.restart(instance)
            inst.note(f"restarted {instance}")

    try:
        got = await run_month(cluster.bootstrap, fresh_database, tmp_path,
                              instances=INSTANCES, topic_partitions=CLUSTER_PARTITIONS,
                              faults=faults)
    finally:
        # the cluster whole again for whatever runs next (the node catches up by itself)
        kafka.start(cluster.cache, cluster.port, cluster.port + 1, cluster.port + 2,
                    brokers=3)
    assert len(killed) == 3
    assert any(" took over from " in line for line in got.timeline)
    _same(single, got)
