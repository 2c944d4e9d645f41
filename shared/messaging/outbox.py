"""The backbone's publishing half: the transactional outbox relay.

Events enter the outbox in the transaction that decided them. The relay
publishes them in order with an idempotent producer and deletes them once Kafka
acknowledged. A crash between publish and delete republishes the same events
(same CloudEvents id), which every consumer's inbox recognises: at-least-once
delivery, exactly-once effect. One relay per service holds an advisory lock;
another instance waits to take over. The relay publishes what is committed in `seq` order
(per key that is decision order: a key's events are decided by one instance at a time) and
deletes exactly the rows it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import structlog

from shared import topics
from shared.messaging.processing import TRANSIENT

log = structlog.get_logger(__name__)

#: publish(topic, value, key, headers) -> a future that resolves when Kafka has the record.
Publish = Callable[[str, bytes, bytes | None, dict[str, str]], Awaitable["asyncio.Future[Any]"]]


class OutboxRelay:
    """Moves committed events from the outbox table to Kafka, in commit order."""

    def __init__(self, database_url: str, schema: str, publish: Publish, *,
                 batch_size: int = 2000, idle_poll: float = 0.5):
        self._database_url = database_url
        self._schema = schema
        self._publish = publish
        self._batch_size = batch_size
        self._idle_poll = idle_poll
        self._wakeup = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        """Called after a commit in this process: publish without waiting for the poll."""
        self._wakeup.set()

    async def run(self) -> None:
        """Relay until cancelled; reconnect with backoff when the database goes away."""
        delay = 0.2
        while True:
            try:
                conn = await asyncpg.connect(self._database_url,
                                             server_settings={"search_path": self._schema})
                try:
                    await self._hold_lock(conn)
                    delay = 0.2
                    while True:
                        sent = await self.drain(conn)
                        if sent < self._batch_size:
                            await self._sleep()
                finally:
                    await _close(conn)
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                log.warning("outbox.unavailable", error=repr(exc), retry_in=delay)
            except Exception:
                log.exception("outbox.failed", retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _hold_lock(self, conn: asyncpg.Connection) -> None:
        while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))",
                                      f"outbox:{self._schema}"):
            log.info("outbox.standby", schema=self._schema)
            await asyncio.sleep(2.0)

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=self._idle_poll)
        self._wakeup.clear()

    async def drain(self, conn: asyncpg.Connection) -> int:
        """Publish one batch of the oldest events; return how many were published."""
        rows = await conn.fetch(
            "SELECT seq, topic, key, value, headers FROM outbox ORDER BY seq LIMIT $1",
            self._batch_size,
        )
        if not rows:
            return 0
        futures = []
        for row in rows:
            headers = {k: v for k, v in orjson.loads(row["headers"])}
            futures.append(await self._publish(row["topic"], row["value"], row["key"], headers))
            addressee = headers.get(topics.ADDRESSEE_HEADER)
            if addressee:  # the addressee's own copy (shared.topics.ADDRESSED), same bytes
                futures.append(await self._publish(topics.addressed(row["topic"], addressee),
                                                   row["value"], row["key"], headers))
        await asyncio.gather(*futures)
        # Exactly the rows sent: with several instances writing, a row of a lower seq may
        # have committed since the SELECT (seq order is not commit order); it stays for the
        # next batch instead of being deleted unsent.
        await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])",
                           [row["seq"] for row in rows])
        self.published += len(rows)
        return len(rows)


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=2)
    except Exception:
        conn.terminate()
