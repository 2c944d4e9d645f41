"""A failed metadata update waits, doubling, instead of being retried at once (aiokafka's
producer would otherwise spin while the broker is down)."""

from __future__ import annotations

import asyncio
import time

from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata

from shared.messaging import broker, kafka_backoff  # noqa: F401 - broker installs it


def test_failed_metadata_updates_back_off_and_double() -> None:
    kafka_backoff.install()  # idempotent: installing twice wraps once
    assert getattr(AIOKafkaClient._metadata_update, "_clearinghouse_backoff", False)

    async def scenario() -> list[float]:
        client = AIOKafkaClient(bootstrap_servers="127.0.0.1:9", retry_backoff_ms=100)
        pauses = []
        for _ in range(3):  # no broker is known: each update fails at once, then waits
            started = time.monotonic()
            assert not await client._metadata_update(ClusterMetadata(), [])
            pauses.append(time.monotonic() - started)
        await client.close()
        return pauses

    first, second, third = asyncio.run(scenario())
    assert first >= 0.1 and second >= 0.2 and third >= 0.4
