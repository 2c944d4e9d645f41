"""The agencies' answers, published on ``clearing.submissions`` as the agency's own client
would: a CloudEvent from ``agency/<code>``, keyed by the agency code, through the agency's
Kafka principal (``agency-<code>``). The clearing service checks it like any other."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import orjson

from shared import inbound, topics
from shared.business_time import SHANGHAI
from shared.events.base import Payload
from shared.messaging import clients as kafka_clients
from shared.messaging.clients import agency_principal


class Publisher:
    """One idempotent producer per agency principal, started on first use."""

    def __init__(self, bootstrap: str, topic_prefix: str):
        self.bootstrap = bootstrap
        self.topic = topic_prefix + topics.CLEARING_SUBMISSIONS
        self._producers: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def _producer(self, agency: str) -> Any:
        async with self._lock:
            if agency not in self._producers:
                producer = kafka_clients.producer(
                    self.bootstrap, principal=agency_principal(agency),
                    enable_idempotence=True)
                await producer.start()
                self._producers[agency] = producer
            return self._producers[agency]

    async def publish_inbound(self, agency: str, payload: Payload) -> dict[str, Any]:
        """Build the CloudEvent of `agency`'s answer and publish it; return the envelope.

        The one function where the portal makes an inbound event (an event signature,
        when there is one, is added here)."""
        now = datetime.now(SHANGHAI)
        source = f"agency/{agency}"
        value = inbound.envelope(payload.TYPE, payload.model_dump(mode="json", exclude_none=True),
                                 id=f"{agency}-portal-{uuid.uuid4().hex}", source=source,
                                 time=now.isoformat(timespec="seconds"))
        # signed with the agency's key, as the agency's own client signs (docs/security.md)
        headers = [("content-type", b"application/cloudevents+json"),
                   *inbound.signature_headers(value, source=source)]
        producer = await self._producer(agency)
        await producer.send_and_wait(self.topic, value, key=agency.encode(), headers=headers)
        envelope: dict[str, Any] = orjson.loads(value)
        return envelope

    async def close(self) -> None:
        for producer in self._producers.values():
            await producer.stop()
        self._producers.clear()
