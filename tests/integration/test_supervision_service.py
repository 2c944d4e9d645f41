"""Supervision through real Kafka and PostgreSQL: the care-place agency (长春市, 220100, where
the hospital is) stops direct settlement for a person; another agency's attempt is refused;
the hospital's settlement during the stop is rejected with `person_under_supervision`, and
after the lift the next one is settled."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from shared import topics
from tests.helpers import envelope, not_enrolment, produce, read_topic
from tests.integration.test_settlement_service import (  # noqa: F401  (the fixture)
    PERSON,
    inpatient,
    running,
    sent,
)

pytestmark = pytest.mark.infra

CARE_AGENCY = "220100"  # the hospital H220102001's region


def command(type_: str, data: dict[str, Any], id: str, source: str) -> tuple[str, bytes]:
    return PERSON, envelope(type_, {"person_id": PERSON, **data}, id=id, source=source,
                            time=data["effective"])


async def _supervisions_folded(database_url: str, count: int, timeout: float = 60) -> None:
    """Until the settlement service's filing view of the person holds `count` changes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        conn = await asyncpg.connect(database_url)
        try:
            found = await conn.fetchval(
                "SELECT coalesce(jsonb_array_length(view->'supervisions'), 0) "
                "FROM settlement.filing_views WHERE person_id = $1", PERSON)
        finally:
            await conn.close()
        if (found or 0) >= count:
            return
        assert asyncio.get_running_loop().time() < deadline, "supervision not folded"
        await asyncio.sleep(0.2)


async def test_a_stop_refuses_settlements_until_lifted(
        infra, running, fresh_database) -> None:  # noqa: F811  (the imported fixture)
    prefix, bootstrap = running, infra.kafka_bootstrap
    await produce(bootstrap, prefix + topics.FILING_COMMANDS, [
        command("filing.supervision_imposed",
                {"care_agency": CARE_AGENCY, "effective": "2026-10-05T00:00:00+08:00",
                 "reason": "挂床住院 (bed occupied without treatment)", "case_id": "CC-17"},
                "SV-forged", "agency/220200"),
        command("filing.supervision_imposed",
                {"care_agency": CARE_AGENCY, "effective": "2026-10-05T00:00:00+08:00",
                 "reason": "挂床住院 (bed occupied without treatment)", "case_id": "CC-17"},
                "SV-1", f"agency/{CARE_AGENCY}")])
    events = await read_topic(bootstrap, prefix + topics.FILING_EVENTS,
                              until=lambda r: len(not_enrolment(r)) >= 3)
    answers = [e.json() for e in not_enrolment(events)]
    refused = [a["data"] for a in answers if a["type"] == "filing.rejected"
               and a["data"].get("command_type") == "filing.supervision_imposed"]
    assert [r["reasons"][0]["code"] for r in refused] == ["source_mismatch"]
    (stop,) = [a["data"] for a in answers if a["type"] == "filing.supervision_imposed"]
    assert (stop["care_agency"], stop["case_id"]) == (CARE_AGENCY, "CC-17")
    forged = await read_topic(bootstrap, prefix + topics.rejected(topics.FILING_COMMANDS),
                              until=lambda r: len(r) >= 1)
    assert len(forged) == 1  # bad input: its bytes kept with the reason code
    await _supervisions_folded(fresh_database, 1)

    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [
        sent("settlement.submitted", inpatient("S-1", "2026-10-01", "2026-10-09", "5000.00"),
             id="S-1")])
    outcomes = await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                                until=lambda r: len(r) >= 1)
    (rejected,) = [o.json()["data"] for o in outcomes]
    assert [r["code"] for r in rejected["reasons"]] == ["person_under_supervision"]
    assert "CC-17" in rejected["reasons"][0]["message"]

    await produce(bootstrap, prefix + topics.FILING_COMMANDS, [command(
        "filing.supervision_lifted", {"care_agency": CARE_AGENCY,
                                      "effective": "2026-10-15T00:00:00+08:00"},
        "SV-2", f"agency/{CARE_AGENCY}")])
    await _supervisions_folded(fresh_database, 2)
    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [
        sent("settlement.submitted", inpatient("S-2", "2026-10-12", "2026-10-16", "5000.00"),
             id="S-2")])
    outcomes = await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                                until=lambda r: len(r) >= 2)
    later = outcomes[-1].json()
    assert (later["type"], later["data"]["settlement_id"]) == ("settlement.completed", "S-2")
