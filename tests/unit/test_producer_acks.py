"""Every producer waits for all in-sync replicas (acks=all), as the cluster needs."""

from __future__ import annotations

from shared.messaging import clients


async def test_producers_default_to_acks_all() -> None:
    producer = clients.producer("127.0.0.1:1")
    assert producer._acks == -1  # noqa: SLF001 - aiokafka's "all"
    told = clients.producer("127.0.0.1:1", acks=1)
    assert told._acks == 1  # noqa: SLF001
