"""The filing service's outcome does not depend on where its transactions begin and end:
a day started in the same batch as the filing it acts on sees that filing (the audit
replay merges transactions, and live batches are as large as the backlog)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import orjson
import pytest

from services.filing.app import SPEC as FILING
from shared import topics
from shared.config import REPO_ROOT, Settings
from shared.db import apply_migrations, create_pool
from shared.messaging.processing import BatchProcessor
from shared.messaging.records import Record
from tests.helpers import ENROLMENT_TYPES, enrolment, envelope, own_database, signed

pytestmark = pytest.mark.infra

AGENCY = "220200"


def _record(topic: str, offset: int, key: str, value: bytes) -> Record:
    return Record(topic, 0, offset, key.encode(), value, tuple(signed(value)),
                  1_790_000_000_000 + offset)


def _requested() -> Record:
    data = {"filing_id": "C1", "person_id": "P1", "insured_agency": AGENCY,
            "insurance_type": "employee", "category": "relocated_retiree",
            "destination": "220100", "valid_from": "2026-10-01", "materials": ["credential"],
            "commitment": True, "channel": "online"}
    return _record(topics.FILING_COMMANDS, 1, "P1", envelope(
        "filing.requested", data, id="cmd-C1", source=f"agency/{AGENCY}"))


def _enrolled() -> Record:
    """P1's enrolment, which the filing needs; always its own batch, before the others."""
    return _record(topics.FILING_COMMANDS, 0, *enrolment("P1", AGENCY))


def _day(day: date) -> Record:
    return _record(topics.CLEARING_SCHEDULE, 0, "calendar", envelope(
        "calendar.day_started", {"date": day.isoformat(), "watermarks": {}},
        id=f"day:{day.isoformat()}", source="scheduler/calendar",
        time=f"{day.isoformat()}T00:00:00+08:00"))


async def _published(server_url: str, batches: list[list[Record]]) -> list[dict[str, Any]]:
    """What the filing service publishes for `batches`, each one transaction, in a database
    of its own (after P1's enrolment, whose answer is left out)."""
    async with own_database(server_url) as database_url:
        pool = await create_pool(database_url, FILING.name)
        try:
            await apply_migrations(pool, FILING.migrations)
            handler = await FILING.make_handler(
                pool, Settings("", database_url, REPO_ROOT / "reference"))
            processor = BatchProcessor(pool, handler)
            for batch in [[_enrolled()], *batches]:
                await processor.process(batch)
            rows = await pool.fetch("SELECT value FROM outbox ORDER BY seq")
        finally:
            await pool.close()
    events = [orjson.loads(r["value"]) for r in rows]
    return [e for e in events if e["type"] not in ENROLMENT_TYPES]


def _kinds(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["type"], e["data"].get("filing_id")) for e in events]


async def test_a_day_in_the_same_batch_sees_the_filing_before_it(infra) -> None:
    registered = await _published(infra.database_url, [[_requested()]])
    assert _kinds(registered) == [("filing.registered", "C1")]
    after = date.fromisoformat(registered[0]["data"]["materials_due"]) + timedelta(days=1)

    one_by_one = await _published(infra.database_url, [[_requested()], [_day(after)]])
    together = await _published(infra.database_url, [[_requested(), _day(after)]])
    assert ("filing.materials_overdue", "C1") in _kinds(one_by_one)
    assert together == one_by_one
