"""Every producer waits for all in-sync replicas (acks=all), as the cluster needs."""

from __future__ import annotations

from shared.messaging import clients


async def test_producers_default_to_acks_all() -> None:
    producer = clients.producer("127.0.0.1:1")
    told = clients.producer("127.0.0.1:1", acks=1)
    try:
        assert producer._sender._acks == -1  # noqa: SLF001 - aiokafka's "all"
        assert told._sender._acks == 1  # noqa: SLF001
    finally:
        await producer.stop()
        await told.stop()
