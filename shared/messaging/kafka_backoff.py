"""Back off when the cluster's metadata cannot be fetched.

aiokafka 0.14's producer sender asks for a metadata update whenever a partition's leader is
unknown and waits for that update, not for its retry backoff; with the broker down the update
fails at once, so a producer holding unsent records spins: tens of thousands of
"Unable to update metadata" lines a second and a busy core, until the broker is back (seen
in tests/faults/test_infrastructure.py). Here a failed update takes its time before it is
reported: ``retry_backoff_ms``, doubling with each consecutive failure up to
:data:`MAX_PAUSE` seconds; the first success resets it. Everything else is unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.client import AIOKafkaClient

#: The longest pause after consecutive failed metadata updates, in seconds.
MAX_PAUSE = 5.0

_MARK = "_clearinghouse_backoff"


def install() -> None:
    """Wrap ``AIOKafkaClient._metadata_update`` once per process (idempotent)."""
    original = AIOKafkaClient._metadata_update
    if getattr(original, _MARK, False):
        return

    async def _metadata_update(self: AIOKafkaClient, cluster_metadata: Any, topics: Any) -> Any:
        updated = await original(self, cluster_metadata, topics)
        if updated:
            self._clearinghouse_md_failures = 0  # type: ignore[attr-defined]
            return updated
        failures = getattr(self, "_clearinghouse_md_failures", 0) + 1
        self._clearinghouse_md_failures = failures  # type: ignore[attr-defined]
        base = max(self._retry_backoff, 0.1)
        await asyncio.sleep(min(base * 2 ** (failures - 1), MAX_PAUSE))
        return updated

    setattr(_metadata_update, _MARK, True)
    AIOKafkaClient._metadata_update = _metadata_update  # type: ignore[method-assign]
