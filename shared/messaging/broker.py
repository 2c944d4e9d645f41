"""The FastStream side of the backbone: the broker factory and batch subscriptions.

Business code never sees aiokafka: a service declares which topics it reads and
hands each batch to its `BatchProcessor`; FastStream only carries bytes.
Offsets are committed by hand, after the batch's database transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from shared.config import Settings
from shared.messaging import clients, kafka_backoff
from shared.messaging.records import Record

kafka_backoff.install()

log = structlog.get_logger(__name__)

#: Largest batch handed to one transaction.
MAX_RECORDS = 1000


def bootstrap_list(bootstrap: str) -> list[str]:
    """``"a:1, b:2"`` -> ``["a:1", "b:2"]``: every broker of a cluster as its own address."""
    return [address.strip() for address in bootstrap.split(",") if address.strip()]


def make_broker(settings: Settings, client_id: str) -> KafkaBroker:
    """A broker whose producer is idempotent (acks=all) and batches sends."""
    return KafkaBroker(
        # a list of addresses: FastStream hands a string on as one address, and a cluster's
        # "host1:port,host2:port" is not one
        bootstrap_list(settings.kafka_bootstrap_servers),
        client_id=client_id,
        security=clients.faststream_security(settings.kafka_principal),
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=16 * 1024 * 1024,
        request_timeout_ms=30_000,
        # Back off towards an unreachable broker instead of retrying ten times a second.
        retry_backoff_ms=1000,
        logger=None,
    )


def raw_producer(broker: KafkaBroker) -> Any | None:
    """The aiokafka producer FastStream connected for `broker` (idempotent, acks=all, as
    configured in `make_broker`), or None before it is connected or for a test broker."""
    from aiokafka import AIOKafkaProducer

    state = getattr(getattr(broker, "config", None), "producer", None)
    producer = getattr(getattr(state, "_producer", None), "producer", None)
    return producer if isinstance(producer, AIOKafkaProducer) else None


async def publish_record(broker: KafkaBroker, topic: str, value: bytes, key: bytes | None,
                         headers: dict[str, str]) -> asyncio.Future[Any]:
    """Hand one record to the producer; return the future that resolves when Kafka has it.

    Straight to the aiokafka producer FastStream connected: its ``send`` appends the record
    to the partition's batch and returns at once (the outbox relay sends a whole batch, then
    awaits all the futures). FastStream's ``broker.publish`` did the same with a command
    object, middlewares and a codec per record, and added its own ``correlation_id`` (a
    random id no consumer reads) and an empty ``content-type`` header where we set none.
    Records keep their order per partition: one producer, idempotent, so its retries
    neither reorder nor duplicate. Falls back to ``broker.publish`` when there is no raw
    producer (a test broker)."""
    producer = raw_producer(broker)
    if producer is None:
        return await broker.publish(value, topic, key=key, headers=headers,  # type: ignore[no-any-return]
                                    no_confirm=True)
    return await producer.send(topic, value=value, key=key,  # type: ignore[no-any-return]
                               headers=[(k, v.encode()) for k, v in headers.items()])


async def wait_for_broker(bootstrap: str, principal: str | None = None) -> None:
    """Wait, with backoff, until the broker answers: a service started before Kafka waits
    for it instead of exiting (which under a supervisor becomes a crash loop)."""
    delay = 0.5
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        while True:
            client = clients.client(bootstrap, principal=principal, request_timeout_ms=5000)
            try:
                await client.bootstrap()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                log.warning("kafka.unavailable", bootstrap=bootstrap, error=repr(exc)[:200],
                            retry_in=delay)
            finally:
                await client.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    finally:
        quiet.setLevel(level)


def records_of(message: KafkaMessage, prefix: str = "") -> list[Record]:
    """The raw records of a batch message, bytes untouched, topics without the namespace."""
    raw = message.raw_message
    batch = raw if isinstance(raw, (list, tuple)) else (raw,)
    return [
        Record(topic=r.topic[len(prefix):], partition=r.partition, offset=r.offset, key=r.key,
               value=r.value, headers=tuple(r.headers or ()), timestamp_ms=r.timestamp or 0)
        for r in batch
    ]


async def _raw_decoder(message: Any) -> Any:
    """Leave values as bytes: parsing (and rejecting) is the backbone's job, not FastStream's."""
    return None


def subscribe_batches(
    broker: KafkaBroker,
    topics: Sequence[str],
    *,
    group_id: str,
    consume: Callable[[list[Record]], Awaitable[None]],
    title: str,
    description: str,
    prefix: str = "",
) -> None:
    """Subscribe `consume` to `topics` in batches, committing offsets only after it returns."""

    @broker.subscriber(
        *(prefix + t for t in topics),
        group_id=group_id,
        batch=True,
        max_records=MAX_RECORDS,
        batch_timeout_ms=50,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        decoder=_raw_decoder,
        title=title,
        description=description,
    )
    async def on_batch(message: KafkaMessage) -> None:
        await consume(records_of(message, prefix))
        await message.ack()
