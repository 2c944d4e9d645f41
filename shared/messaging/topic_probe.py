"""Whether a topic holds any record yet, asked of Kafka in the background.

The clearing service asks it of ``clearing.schedule`` before it has read a calendar day:
a day published later cuts after what was written before it, so until one is on the log
records need not wait for one (`shared.messaging.sequencer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from aiokafka import TopicPartition

from shared.messaging import clients as kafka_clients

log = structlog.get_logger(__name__)


class TopicProbe:
    """Whether `topic` holds a record yet: its end offsets, asked of Kafka in the background
    (never inside a transaction, except the very first time). Once it does, it always will;
    "not yet" is asked again after `every` seconds. When Kafka cannot say, a record is
    assumed (records are then held back, never decided too early)."""

    def __init__(self, bootstrap: str, topic: str, every: float = 1.0,
                 principal: str | None = None):
        self.bootstrap, self.topic, self.every = bootstrap, topic, every
        self.principal = principal
        self.exists: bool | None = None
        self.asked = -1e9
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, record: object = None) -> bool:
        """Whether the topic holds a record yet (`record`, the record the answer is for, as
        `shared.messaging.sequencer` asks, changes nothing)."""
        if self.exists:
            return True
        if (self._task is None or self._task.done()) and (
                time.monotonic() - self.asked >= self.every):
            self.asked = time.monotonic()
            self._task = asyncio.ensure_future(self._ask())
        if self.exists is None:
            await asyncio.shield(self._task)  # type: ignore[arg-type]
        return bool(self.exists) if self.exists is not None else True

    async def _ask(self) -> None:
        consumer = kafka_clients.consumer(bootstrap=self.bootstrap, principal=self.principal,
                                          group_id=None, enable_auto_commit=False,
                                          request_timeout_ms=5000)
        try:
            await asyncio.wait_for(consumer.start(), 10)
            parts = consumer.partitions_for_topic(self.topic) or {0}
            ends = await asyncio.wait_for(consumer.end_offsets(
                [TopicPartition(self.topic, p) for p in parts]), 10)
            self.exists = any(offset > 0 for offset in ends.values())
        except Exception as exc:  # noqa: BLE001 — unknown counts as "a record may exist"
            log.warning("topic_probe.failed", topic=self.topic, error=repr(exc))
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
