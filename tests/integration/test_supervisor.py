"""The one supervisor (services/supervisor.py): several instances of a service in one
consumer group, log files, and SIGKILL for a process that does not end on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from services.supervisor import Deployment, Supervisor
from shared.messaging import clients as kafka_clients
from tests.helpers import create_topics, new_prefix

pytestmark = pytest.mark.infra


async def _until(condition, what: str, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        await asyncio.sleep(0.3)


async def _group_members(bootstrap: str, group: str) -> int:
    admin = kafka_clients.admin(bootstrap)
    await admin.start()
    try:
        (description,) = await admin.describe_consumer_groups([group])
        (entry,) = description.groups
        return len(entry[5])  # (error, group, state, protocol_type, protocol, members, …)
    finally:
        await admin.close()


async def test_two_instances_of_a_service_share_its_consumer_group(
        infra, fresh_database, tmp_path: Path) -> None:
    prefix = new_prefix()
    group_prefix = prefix.rstrip(".")
    await create_topics(infra.kafka_bootstrap, prefix, group_prefix)
    supervisor = Supervisor(Deployment(kafka_bootstrap_servers=infra.kafka_bootstrap,
                                       database_url=fresh_database, topic_prefix=prefix,
                                       group_prefix=group_prefix), tmp_path)
    try:
        assert supervisor.start("filing", instances=2) == ["filing", "filing-2"]
        assert supervisor.instances("filing") == ["filing", "filing-2"]

        async def both_ready() -> bool:
            assert not supervisor.exited(), supervisor.exited()
            logs = [supervisor.log_path(i) for i in ("filing", "filing-2")]
            return all(log.exists() and '"service.ready"' in log.read_text(errors="replace")
                       for log in logs)
        await _until(both_ready, "both instances ready")

        async def two_members() -> bool:
            return await _group_members(infra.kafka_bootstrap,
                                        f"{group_prefix}.filing") == 2
        await _until(two_members, "two members in the filing group")
    finally:
        codes = supervisor.stop()
    assert codes == {"filing": 0, "filing-2": 0}
    assert supervisor.processes == {}


async def test_one_clearing_instance_is_active_and_a_standby_takes_over(
        infra, fresh_database, tmp_path: Path) -> None:
    """The clearing service's state is not partitioned like its input: of two instances one
    holds the leadership lock and is in the consumer group, the other waits outside it;
    kill -9 of the active one and the standby takes over (shared/messaging/leadership.py)."""
    prefix = new_prefix()
    group_prefix = prefix.rstrip(".")
    group = f"{group_prefix}.clearing"
    await create_topics(infra.kafka_bootstrap, prefix, group_prefix)
    supervisor = Supervisor(Deployment(kafka_bootstrap_servers=infra.kafka_bootstrap,
                                       database_url=fresh_database, topic_prefix=prefix,
                                       group_prefix=group_prefix), tmp_path)

    def logged(instance: str, event: str) -> bool:
        log = supervisor.log_path(instance)
        return log.exists() and f'"{event}"' in log.read_text(errors="replace")

    try:
        supervisor.start("clearing", instances=2)

        async def one_active_one_standby() -> bool:
            assert not supervisor.exited(), supervisor.exited()
            active = [i for i in ("clearing", "clearing-2") if logged(i, "service.ready")]
            standby = [i for i in ("clearing", "clearing-2")
                       if logged(i, "leadership.standby")]
            return len(active) == 1 and len(standby) == 1 and active != standby
        await _until(one_active_one_standby, "one active clearing instance, one on standby")
        active = next(i for i in ("clearing", "clearing-2") if logged(i, "service.ready"))
        standby = "clearing-2" if active == "clearing" else "clearing"

        async def members(n: int) -> bool:
            return await _group_members(infra.kafka_bootstrap, group) == n
        await _until(lambda: members(1), "the active instance alone in the clearing group")
        await asyncio.sleep(3)  # the standby stays out of the group
        assert await _group_members(infra.kafka_bootstrap, group) == 1
        assert not logged(standby, "service.ready")

        supervisor.kill(active)

        async def took_over() -> bool:
            assert standby not in supervisor.exited(), supervisor.exited()
            return logged(standby, "leadership.acquired") and logged(standby, "service.ready")
        await _until(took_over, "the standby taking over")
        await _until(lambda: members(1), "the new active instance in the clearing group")
    finally:
        supervisor.stop()


async def test_a_process_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    supervisor = Supervisor(logs=tmp_path, stop_timeout=1)
    (instance,) = supervisor.start("stubborn", module="tests.integration.stubborn_process")

    async def ready() -> bool:
        path = supervisor.log_path(instance)
        return path.exists() and "ready" in path.read_text()
    await _until(ready, "the stubborn process ready", timeout=30)
    assert supervisor.stop() == {"stubborn": -signal.SIGKILL}
