"""A minimal service on the real backbone, for testing the backbone itself.

It records every `settlement.submitted` it takes as an effect row and answers
with a `settlement.rejected` (code ``probe``), so a test can count effects in the
database and events on the topic. Run: ``python -m tests.integration.probe_service``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from shared import topics
from shared.config import Settings, load_settings
from shared.events import Rejection, derived_id, make_event
from shared.events.base import Reason
from shared.events.settlement import SettlementRejected
from shared.logging import configure_logging
from shared.messaging.records import Incoming, Outgoing, Record
from shared.messaging.service import ServiceSpec, build_app

MIGRATION = """CREATE TABLE effects (source text, id text, settlement_id text,
                                     PRIMARY KEY (source, id));"""


class ProbeHandler:
    async def handle(self, conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[Outgoing]:
        out = []
        for incoming in batch:
            event = incoming.event
            await conn.execute("INSERT INTO effects VALUES ($1, $2, $3)",
                               event.source, event.id, event.data.settlement_id)
            answer = make_event(
                SettlementRejected(settlement_id=event.data.settlement_id,
                                   reasons=[Reason(code="probe", message="seen")]),
                id=derived_id("probe", event.source, event.id), source="service/probe",
                time=event.time, causationid=event.id,
            )
            out.append(Outgoing.event(topics.SETTLEMENT_EVENTS, event.data.person_id, answer))
        return out

    async def observe(self, conn: asyncpg.Connection, records: Sequence[Record]) -> list[Outgoing]:
        return []

    def answer_rejection(self, record: Record, rejection: Rejection) -> list[Outgoing]:
        return []


async def _make_handler(pool: asyncpg.Pool, settings: Settings) -> ProbeHandler:
    return ProbeHandler()


def spec() -> ServiceSpec:
    folder = Path(tempfile.mkdtemp(prefix="probe-migrations-"))
    (folder / "001_effects.sql").write_text(MIGRATION)
    return ServiceSpec(
        name="probe", description="backbone probe", consumes=(topics.SETTLEMENT_SUBMISSIONS,),
        publishes=(topics.SETTLEMENT_EVENTS,), migrations=folder, make_handler=_make_handler,
    )


if __name__ == "__main__":
    configure_logging("INFO", service="probe")
    # a probe of the backbone, not a service of the system: it has no login of its own and
    # runs as the operator (the ACLs of real services are tested in tests/security)
    settings = dataclasses.replace(load_settings(), kafka_principal=os.environ.get(
        "CLEARINGHOUSE_PROBE_PRINCIPAL", "admin"))
    app, _ = build_app(spec(), settings)
    asyncio.run(app.run())
