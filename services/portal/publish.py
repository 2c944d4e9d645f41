"""The agencies' answers, published on ``clearing.submissions`` as the agency's own client
would: a CloudEvent from ``agency/<code>``, keyed by the agency code, through the agency's
Kafka principal (``agency-<code>``). The clearing service checks it like any other."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import orjson

from services.portal.labels import SHANGHAI
from shared import topics
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
        envelope = {
            "specversion": "1.0", "id": f"{agency}-portal-{uuid.uuid4().hex}",
            "source": f"agency/{agency}", "type": payload.TYPE,
            "time": now.isoformat(timespec="seconds"), "datacontenttype": "application/json",
            "data": payload.model_dump(mode="json", exclude_none=True),
        }
        producer = await self._producer(agency)
        await producer.send_and_wait(
            self.topic, orjson.dumps(envelope), key=agency.encode(),
            headers=[("content-type", b"application/cloudevents+json")])
        return envelope

    async def close(self) -> None:
        for producer in self._producers.values():
            await producer.stop()
        self._producers.clear()
