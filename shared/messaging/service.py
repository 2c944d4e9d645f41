"""One service process: FastStream app, database pool and migrations, batch processor, relay.

A service is described by a `ServiceSpec` (what it reads, its migrations, how to
build its handler); `build_app` turns that into a runnable FastStream app whose
message path is topic → batch subscriber → `BatchProcessor` → handler → outbox
→ `OutboxRelay` → topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from shared import participant_keys
from shared.config import Settings
from shared.db import apply_migrations, create_pool, service_database_url
from shared.events import PAYLOADS_BY_TOPIC, Envelope
from shared.messaging.broker import (
    make_broker,
    publish_record,
    subscribe_batches,
    wait_for_broker,
)
from shared.messaging.clients import service_principal
from shared.messaging.leadership import Leadership
from shared.messaging.outbox import OutboxRelay
from shared.messaging.processing import BatchProcessor, Handler, Verifier, tune_gc
from shared.messaging.records import Record

log = structlog.get_logger(__name__)

HandlerFactory = Callable[[asyncpg.Pool, Settings], Awaitable[Handler]]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    description: str
    consumes: tuple[str, ...]
    publishes: tuple[str, ...]
    migrations: Path
    make_handler: HandlerFactory
    extra_tasks: Sequence[Callable[[ServiceRuntime], Coroutine[Any, Any, None]]] = field(default=())
    #: One active instance at a time (shared/messaging/leadership.py): for a service whose
    #: state is not partitioned like its input. The others wait on standby, outside the
    #: consumer group, and one takes over when the active one's database session ends.
    single_active: bool = False


class ServiceRuntime:
    """The live parts of one running service."""

    def __init__(self, spec: ServiceSpec, settings: Settings, broker: KafkaBroker):
        self.spec = spec
        self.settings = settings
        self.broker = broker
        self.pool: asyncpg.Pool | None = None
        self.processor: BatchProcessor | None = None
        self.relay: OutboxRelay | None = None
        self.leadership: Leadership | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect, migrate and build the handler; called before consumers start (so a
        standby instance of a `single_active` service joins no consumer group)."""
        await wait_for_broker(self.settings.kafka_bootstrap_servers, self.settings.kafka_principal)
        # The service's own role on DATABASE_URL's database (shared.db.roles).
        database_url = service_database_url(self.settings.database_url, self.spec.name)
        if self.spec.single_active:
            self.leadership = Leadership(database_url, self.spec.name)
            await self.leadership.acquire()
        self.pool = await create_pool(database_url, self.spec.name, max_size=8)
        await apply_migrations(self.pool, self.spec.migrations)
        handler = await self.spec.make_handler(self.pool, self.settings)
        self.relay = OutboxRelay(database_url, self.spec.name, self._publish)
        verifier = Verifier()
        if verifier.enabled and not verifier.registry().keys:
            log.warning("signatures.no_keys", registry=str(participant_keys.registry_file()),
                        hint="every participant's submission will be refused; run "
                             "`clearinghouse participants keys` or set "
                             "CLEARINGHOUSE_PARTICIPANT_KEYS")
        self.processor = BatchProcessor(self.pool, handler, on_commit=self.relay.wake,
                                        verifier=verifier)
        tune_gc()
        log.info("service.ready", service=self.spec.name, consumes=list(self.spec.consumes))

    async def after_start(self) -> None:
        """Start the relay (it needs the connected producer) and any extra tasks."""
        assert self.relay is not None
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.spec.name}-relay"))
        for task in self.spec.extra_tasks:
            self._tasks.append(asyncio.create_task(task(self)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.pool is not None:
            await self.pool.close()
        if self.leadership is not None:
            await self.leadership.release()
        log.info("service.stopped", service=self.spec.name)

    async def consume(self, records: list[Record]) -> None:
        assert self.processor is not None, "the service has not started"
        if self.leadership is not None:
            await self.leadership.wait_held()  # paused while the lock is being regained
        await self.processor.process(records)

    async def _publish(self, topic: str, value: bytes, key: bytes | None,
                       headers: dict[str, str]) -> asyncio.Future[Any]:
        topic = self.settings.topic_prefix + topic
        return await publish_record(self.broker, topic, value, key, headers)


def build_app(spec: ServiceSpec, settings: Settings) -> tuple[FastStream, ServiceRuntime]:
    """The FastStream app of a service, with its AsyncAPI description. The service is
    ``svc-<name>`` to Kafka unless the settings name another principal."""
    settings = dataclasses.replace(
        settings, kafka_principal=settings.kafka_principal or service_principal(spec.name))
    broker = make_broker(settings, client_id=f"clearinghouse-{spec.name}")
    runtime = ServiceRuntime(spec, settings, broker)
    subscribe_batches(
        broker, spec.consumes, group_id=f"{settings.group_prefix}.{spec.name}",
        consume=runtime.consume, title=f"{spec.name}: " + ", ".join(spec.consumes),
        description=spec.description, prefix=settings.topic_prefix,
    )
    for topic in spec.publishes:
        for payload in PAYLOADS_BY_TOPIC.get(topic, {}).values():
            broker.publisher(topic, title=f"{topic}:{payload.TYPE}",
                             description=(payload.__doc__ or "").strip() or payload.TYPE,
                             schema=Envelope[payload])  # type: ignore[valid-type]
    app = FastStream(broker, logger=logging.getLogger("faststream.app"), specification=AsyncAPI(
        title=f"clearinghouse {spec.name} service", version="0.1.0",
        description=spec.description,
    ))
    app.on_startup(runtime.start)
    app.after_startup(runtime.after_start)
    app.on_shutdown(runtime.stop)
    return app, runtime
