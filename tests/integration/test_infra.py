"""The local infrastructure is real: an Apache Kafka broker (idempotent and transactional
producers, read_committed consumers, large values, plain kcat clients), the contract's
topics with unlimited retention, and a PostgreSQL server.

Addresses come from ``KAFKA_BOOTSTRAP_SERVERS``/``DATABASE_URL`` when both are set,
otherwise from ``infra.local.up()``; tests about the local processes skip in env mode.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from infra import kafka, local
from shared.messaging import clients as kafka_clients
from shared.topics import AGENCY_KEYED, PERSON_KEYED, all_topics, person_partitions

pytestmark = pytest.mark.infra

LOCAL = not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL"))
local_only = pytest.mark.skipif(not LOCAL, reason="servers given by the environment")
BIG = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def addresses() -> local.Addresses:
    return local.addresses_from_env_or_up()


@pytest.fixture
async def scratch_topic(addresses: local.Addresses) -> AsyncIterator[str]:
    """A throw-away single-partition topic, deleted after the test."""
    name = f"infra.test.{uuid.uuid4().hex[:12]}"
    admin = kafka_clients.admin(addresses.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def _consume(
    bootstrap: str, topic: str, want: int, *, settle: float = 1.0, **options: object
) -> list[bytes | None]:
    """Values read from partition 0 from the beginning, read_committed: stops ``settle``
    seconds after ``want`` values arrived (to catch extra ones), or after 30 s."""
    consumer = kafka_clients.consumer(bootstrap=bootstrap, isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,
    )  # type: ignore[arg-type]
    await consumer.start()
    values: list[bytes | None] = []
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=200)
            values += [record.value for record in batch.get(tp, [])]
            if len(values) >= want:
                deadline = min(deadline, loop.time() + settle)
    finally:
        await consumer.stop()
    return values


async def test_broker_is_apache_kafka(addresses: local.Addresses) -> None:
    admin = kafka_clients.admin(addresses.kafka_bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    assert cluster["cluster_id"]
    assert [b["node_id"] for b in cluster["brokers"]] == [cluster["controller_id"]]
    if LOCAL:
        pid = local.status()["kafka"]["pid"]
        command = local.process_command_line(pid)
        assert "kafka.Kafka" in command
        assert any(
            f"kafka_2.13-{kafka.KAFKA_VERSION}.jar" in p.name
            for p in (local.resolve_cache_dir() / "kafka-libs").iterdir()
        )
        log = kafka.log_file(local.resolve_cache_dir()).read_text(errors="replace")
        assert f"Kafka version: {kafka.KAFKA_VERSION}" in log


async def test_idempotent_and_transactional_producers_with_read_committed_consumer(
    addresses: local.Addresses, scratch_topic: str
) -> None:
    bootstrap = addresses.kafka_bootstrap
    producer = kafka_clients.producer(bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(scratch_topic, b"idempotent", key=b"p1")
    finally:
        await producer.stop()

    txn = kafka_clients.producer(bootstrap, transactional_id=f"infra-test-{uuid.uuid4().hex[:8]}"
    )
    await txn.start()
    try:
        async with txn.transaction():
            await txn.send(scratch_topic, b"committed", key=b"p1")
        await txn.begin_transaction()
        await txn.send(scratch_topic, b"aborted", key=b"p1")
        await txn.abort_transaction()
    finally:
        await txn.stop()

    assert await _consume(bootstrap, scratch_topic, want=2) == [b"idempotent", b"committed"]


async def test_ten_megabyte_value_round_trips(
    addresses: local.Addresses, scratch_topic: str
) -> None:
    value = os.urandom(10 * 1024 * 1024)
    producer = kafka_clients.producer(addresses.kafka_bootstrap,
        enable_idempotence=True, max_request_size=BIG
    )
    await producer.start()
    try:
        await producer.send_and_wait(scratch_topic, value)
    finally:
        await producer.stop()
    got = await _consume(
        addresses.kafka_bootstrap,
        scratch_topic,
        want=1,
        settle=0,
        max_partition_fetch_bytes=BIG,
        fetch_max_bytes=BIG,
    )
    assert got == [value]


async def test_contract_topics_exist_with_partitions_and_unlimited_retention(
    addresses: local.Addresses,
) -> None:
    await kafka.ensure_topics(addresses.kafka_bootstrap)
    assert await kafka.ensure_topics(addresses.kafka_bootstrap) == []  # idempotent
    specs = all_topics()
    admin = kafka_clients.admin(addresses.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([s.name for s in specs])
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
        )
    finally:
        await admin.close()
    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert partitions == {s.name: s.partitions for s in specs}
    assert {partitions[t] for t in PERSON_KEYED} == {person_partitions()}
    assert all(partitions[t] >= 1 for t in AGENCY_KEYED)
    configs = {
        resource["resource_name"]: {
            e["config_names"]: e["config_value"] for e in resource["config_entries"]
        }
        for response in responses
        for resource in response.to_object()["resources"]
    }
    for spec in specs:
        assert configs[spec.name]["retention.ms"] == "-1", spec.name
        assert configs[spec.name]["retention.bytes"] == "-1", spec.name
        if spec.name.endswith(".rejected"):
            assert configs[spec.name]["max.message.bytes"] == str(BIG), spec.name


async def test_postgres_answers(addresses: local.Addresses) -> None:
    connection = await asyncpg.connect(addresses.database_url)
    try:
        version = await connection.fetchval("select version()")
        can_create_db = await connection.fetchval(
            "select rolcreatedb from pg_roles where rolname = current_user"
        )
    finally:
        await connection.close()
    assert version.startswith("PostgreSQL ")
    assert can_create_db is True


@local_only
def test_up_twice_returns_same_addresses_and_processes(addresses: local.Addresses) -> None:
    before = local.status()
    again = local.up()
    after = local.status()
    assert again == addresses
    assert before["ok"] and after["ok"]
    assert after["kafka"]["pid"] == before["kafka"]["pid"] is not None
    assert after["postgres"]["pid"] == before["postgres"]["pid"] is not None


@local_only
def test_status_reports_running(addresses: local.Addresses) -> None:
    report = local.status()
    assert report["ok"] is True
    assert report["kafka"]["running"] and report["postgres"]["running"]
    assert report["kafka"]["bootstrap"] == addresses.kafka_bootstrap
    assert report["postgres"]["database_url"] == addresses.database_url
    assert Path(report["kafka"]["log"]).exists() and Path(report["postgres"]["log"]).exists()


async def test_kcat_produces_and_consumes(addresses: local.Addresses, scratch_topic: str,
                                          tmp_path: Path) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: run infra/install.sh"
    # the operator's login (PLAIN; Debian's kcat cannot do SCRAM with Kafka 4, see
    # docs/security.md), from a private configuration file
    config = str(kafka_clients.write_kcat_config(tmp_path / "admin.conf",
                                                 addresses.kafka_bootstrap))
    produced = await asyncio.to_thread(
        subprocess.run,
        [kcat, "-F", config, "-t", scratch_topic, "-P", "-K", ":"],
        input="person-1:hello from kcat\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert produced.returncode == 0, produced.stderr
    consumed = await asyncio.to_thread(
        subprocess.run,
        [
            kcat,
            "-F",
            config,
            "-t",
            scratch_topic,
            "-C",
            "-o",
            "beginning",
            "-c",
            "1",
            "-e",
            "-f",
            "%k=%s\\n",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.strip() == "person-1=hello from kcat"
