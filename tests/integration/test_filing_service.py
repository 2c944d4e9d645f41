"""The filing service over real Kafka and PostgreSQL: commands in, filing.events out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared import topics
from tests.helpers import (
    Services,
    enrolment,
    envelope,
    not_enrolment,
    produce,
    read_topic,
    running_services,
)

pytestmark = pytest.mark.infra

AGENCY = "220200"  # 吉林市
TIME = "2026-10-01T09:00:00+08:00"


@pytest.fixture
async def filing(infra, fresh_database, tmp_path) -> AsyncIterator[tuple[Services, str]]:
    async with running_services(infra.kafka_bootstrap, fresh_database, tmp_path,
                                "filing") as services:
        yield services, services.prefix


def requested(filing_id: str, person: str, **changes: Any) -> dict[str, Any]:
    data = {
        "filing_id": filing_id, "person_id": person, "insured_agency": AGENCY,
        "insurance_type": "employee", "category": "relocated_retiree", "destination": "220100",
        "valid_from": "2026-10-01", "materials": ["credential", "residence_proof"],
        "commitment": False, "channel": "online",
    }
    data.update(changes)
    return data


async def _send(infra, prefix: str, commands: list[tuple[str, str, dict[str, Any]]],
                time: str = TIME) -> None:
    # Filings name enrolled persons: each person is enrolled first (an id per person, so a
    # second enrolment of the same person is a duplicate the inbox drops).
    values = [enrolment(person, AGENCY) for person in dict.fromkeys(p for p, _, _ in commands)]
    values += [(person, envelope(type_, data, id=f"cmd-{n}-{person}-{type_}",
                                 source=f"agency/{AGENCY}", time=time))
               for n, (person, type_, data) in enumerate(commands)]
    await produce(infra.kafka_bootstrap, prefix + topics.FILING_COMMANDS, values)


async def _events(infra, prefix: str, count: int) -> list[dict[str, Any]]:
    """The first `count` filing events other than the registry's answers to enrolments."""
    records = await read_topic(infra.kafka_bootstrap, prefix + topics.FILING_EVENTS,
                               until=lambda r: len(not_enrolment(r)) >= count)
    return [r.json() for r in sorted(not_enrolment(records),
                                     key=lambda r: (r.partition, r.offset))]


async def test_filing_rules_through_kafka(infra, filing) -> None:
    services, prefix = filing
    await _send(infra, prefix, [
        ("P1", "filing.requested", requested("F1", "P1")),
        # no residence/relocation/work proof: rejected
        ("P2", "filing.requested", requested("F2", "P2", materials=["credential"])),
        # destination inside the person's own pool
        ("P3", "filing.requested", requested("F3", "P3", destination="220202")),
        # overlaps P1's filing with one of the same kind (long term): since issue 16 a
        # referral may stand beside a long-term filing, a second long-term one may not
        ("P1", "filing.requested", requested("F4", "P1", category="resident_worker",
                                             materials=["credential", "work_proof"])),
        # commitment: accepted without materials, with a deadline
        ("P5", "filing.requested", requested("F5", "P5", materials=["credential"],
                                             commitment=True)),
        # referral: six months by policy
        ("P6", "filing.requested", requested("F6", "P6", category="referral",
                                             materials=["credential", "referral_certificate"])),
        ("P7", "benefit.status_changed", {"person_id": "P7", "insured_agency": AGENCY,
                                          "status": "suspended", "effective": "2026-10-05"}),
        ("P1", "filing.revoked", {"filing_id": "F1", "effective": "2026-12-01"}),
    ])
    events = await _events(infra, prefix, 8)
    by_filing = {(e["type"], e["data"].get("filing_id") or e["data"]["person_id"]): e["data"]
                 for e in events}
    assert ("filing.registered", "F1") in by_filing
    assert by_filing[("filing.registered", "F1")].get("valid_until") is None  # until revoked
    codes = {k[1]: [r["code"] for r in d["reasons"]] for k, d in by_filing.items()
             if k[0] == "filing.rejected"}
    assert codes["F2"] == ["long_term_proof_missing"]
    assert codes["F3"] == ["destination_in_own_pool"]
    assert codes["F4"] == ["overlapping_filing"]
    assert by_filing[("filing.registered", "F5")]["materials_due"]
    assert by_filing[("filing.registered", "F6")]["valid_until"] == "2027-03-31"
    assert by_filing[("benefit.status_changed", "P7")]["status"] == "suspended"
    assert by_filing[("filing.revoked", "F1")]["effective"] == "2026-12-01"
    for event in events:
        assert event["source"] == "service/filing"
        assert event["time"] == TIME, "answers carry the command's time, never the clock"


async def test_a_duplicate_command_has_one_effect(infra, filing) -> None:
    services, prefix = filing
    command = [("P9", "filing.requested", requested("F9", "P9"))]
    await _send(infra, prefix, command)
    await _send(infra, prefix, command)  # the same (source, id) again
    await _send(infra, prefix, [("P9", "filing.extended", {"filing_id": "F9",
                                                           "valid_until": "2027-01-01"})])
    events = await _events(infra, prefix, 2)
    types = [e["type"] for e in events]
    assert types.count("filing.registered") == 1, types
    assert types[-1] == "filing.rejected"  # a long-term filing cannot be extended
    assert events[-1]["data"]["reasons"][0]["code"] == "extension_not_allowed"


async def test_a_broken_command_is_answered_and_the_next_one_processed(infra, filing) -> None:
    services, prefix = filing
    await produce(infra.kafka_bootstrap, prefix + topics.FILING_COMMANDS, [
        enrolment("P11", AGENCY),
        ("P10", envelope("filing.requested", requested("F10", "P10", valid_from="2026-02-30"),
                         id="bad-1", source=f"agency/{AGENCY}", time=TIME)),
        ("P11", envelope("filing.requested", requested("F11", "P11"), id="good-1",
                         source=f"agency/{AGENCY}", time=TIME)),
    ])
    events = await _events(infra, prefix, 2)
    rejected = next(e for e in events if e["type"] == "filing.rejected")
    assert rejected["data"]["filing_id"] == "F10"
    assert rejected["data"]["reasons"][0]["code"] == "invalid_date"
    assert any(e["type"] == "filing.registered" and e["data"]["filing_id"] == "F11"
               for e in events)
    dead = await read_topic(infra.kafka_bootstrap,
                            prefix + topics.rejected(topics.FILING_COMMANDS),
                            until=lambda r: len(r) >= 1)
    assert dead[0].headers["reason-code"] == b"invalid_date"


async def test_validity_expiry_overdue_extension_and_destination_change(infra, filing) -> None:
    """Time-driven rules: the calendar's day events expire filings and flag overdue materials."""
    from datetime import date

    from services.clearing import scheduler

    services, prefix = filing
    emergency = requested("E1", "Q1", category="emergency", materials=["credential"],
                          emergency_visit="outpatient", channel="hospital",
                          valid_from="2026-10-01")
    await _send(infra, prefix, [
        ("Q1", "filing.requested", emergency),
        # a second person whose emergency filing ends the same day: distinct expiry events
        ("Q8", "filing.requested", {**emergency, "filing_id": "E8", "person_id": "Q8"}),
        # emergency outpatient: at most 3 days by policy
        ("Q2", "filing.requested", requested("E2", "Q2", category="emergency",
                                             materials=["credential"],
                                             emergency_visit="outpatient",
                                             valid_until="2026-10-20")),
        # a commitment filing owes its materials by a deadline
        ("Q3", "filing.requested", requested("C3", "Q3", materials=["credential"],
                                             commitment=True)),
        ("Q4", "filing.requested", requested("R4", "Q4", category="referral",
                                             materials=["credential", "referral_certificate"])),
        ("Q4", "filing.extended", {"filing_id": "R4", "valid_until": "2027-06-30"}),
        ("Q4", "filing.destination_changed", {"filing_id": "R4", "destination": "220500",
                                              "effective": "2026-10-05"}),
        ("Q5", "filing.requested", requested("U5", "Q5", destination="650100")),
        ("Q6", "filing.requested", requested("D6", "Q6", category="referral",
                                             materials=["credential", "referral_certificate"],
                                             valid_from="2026-12-01",
                                             valid_until="2026-11-01")),
        # retroactive (补办): valid_from before the request date is accepted
        ("Q7", "filing.requested", requested("B7", "Q7", valid_from="2026-09-01")),
    ])
    events = await _events(infra, prefix, 10)
    by = {(e["type"], e["data"].get("filing_id")): e["data"] for e in events}
    assert by[("filing.registered", "E1")]["valid_until"] == "2026-10-03"
    assert [r["code"] for r in by[("filing.rejected", "E2")]["reasons"]] == ["validity_too_long"]
    due = by[("filing.registered", "C3")]["materials_due"]
    assert by[("filing.extended", "R4")]["valid_until"] == "2027-06-30"
    assert by[("filing.destination_changed", "R4")]["destination"] == "220500"
    assert [r["code"] for r in by[("filing.rejected", "U5")]["reasons"]] == [
        "unknown_destination"]
    assert "dates_out_of_order" in [r["code"] for r in by[("filing.rejected", "D6")]["reasons"]]
    assert by[("filing.registered", "B7")]["valid_from"] == "2026-09-01"

    # The calendar reaches the emergency filing's end and the materials deadline.
    await scheduler.advance(infra.kafka_bootstrap, date.fromisoformat(due) + __import__(
        "datetime").timedelta(days=1), prefix=prefix, start=date(2026, 10, 2))
    events = await _events(infra, prefix, 13)
    kinds = {(e["type"], e["data"].get("filing_id")) for e in events}
    assert ("filing.expired", "E1") in kinds
    assert ("filing.expired", "E8") in kinds
    assert ("filing.materials_overdue", "C3") in kinds
    expired = next(e for e in events if e["type"] == "filing.expired")
    assert expired["data"]["expired_on"] == "2026-10-04"
    assert len({(e["source"], e["id"]) for e in events}) == len(events), "ids unique per source"


async def test_the_query_model_is_the_same_rebuilt_from_the_log(infra, fresh_database,
                                                                 tmp_path) -> None:
    """The settlement service's filing view, folded live, equals a fold of filing.events."""
    import asyncpg

    from shared import filing_view
    from shared.events import decode
    from shared.filing_view import PersonFilings

    async with running_services(infra.kafka_bootstrap, fresh_database, tmp_path,
                                "filing", "settlement") as services:
        prefix = services.prefix
        await _send(infra, prefix, [
            ("V1", "filing.requested", requested("VF1", "V1")),
            ("V1", "filing.revoked", {"filing_id": "VF1", "effective": "2026-11-01"}),
            ("V2", "filing.requested", requested("VF2", "V2", category="referral",
                                                 materials=["credential",
                                                            "referral_certificate"])),
            ("V2", "benefit.status_changed", {"person_id": "V2", "insured_agency": AGENCY,
                                              "status": "suspended",
                                              "effective": "2026-10-15"}),
            ("V3", "filing.requested", requested("VF3", "V3", materials=["credential"],
                                                 commitment=True)),
        ])
        records = await read_topic(infra.kafka_bootstrap, prefix + topics.FILING_EVENTS,
                                   until=lambda r: len(not_enrolment(r)) >= 5)
        rebuilt: dict[str, PersonFilings] = {}
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            event = decode(topics.FILING_EVENTS, record.value)
            person = event.data.person_id
            state = rebuilt.get(person) or PersonFilings(person_id=person)
            rebuilt[person] = filing_view.fold(state, event.data, event.time)
        conn = await asyncpg.connect(fresh_database,
                                     server_settings={"search_path": "settlement"})
        try:
            rows = []
            for _ in range(120):
                try:
                    rows = await conn.fetch("SELECT person_id, view FROM filing_views")
                except asyncpg.UndefinedTableError:  # the service has not migrated yet
                    rows = []
                if len(rows) == 3:
                    break
                await asyncio.sleep(0.5)
        finally:
            await conn.close()
    live = {r["person_id"]: PersonFilings.from_json(r["view"]) for r in rows}
    assert live == rebuilt
    from datetime import date
    assert filing_view.in_force(live["V1"], date(2026, 10, 20)).filing_id == "VF1"
    assert filing_view.in_force(live["V1"], date(2026, 11, 2)) is None
    assert filing_view.benefit_status(live["V2"], date(2026, 10, 20)).value == "suspended"


async def test_filings_together_and_the_emergency_review_through_kafka(infra, filing) -> None:
    """Issue 16: a long-term resident (吉林市 -> 北京) files an emergency stay in 长春 beside the
    long-term filing; the insuring agency reviews (核定) the emergency filing once."""
    services, prefix = filing
    emergency = requested("E20", "P20", category="emergency", materials=["credential"],
                          emergency_visit="inpatient", channel="hospital",
                          destination="220100")
    await _send(infra, prefix, [
        ("P20", "filing.requested", requested("L20", "P20", destination="110000")),
        ("P20", "filing.requested", emergency),
        ("P20", "filing.emergency_reviewed", {"filing_id": "E20", "approved": False}),
        ("P20", "filing.emergency_reviewed", {"filing_id": "E20", "approved": True}),
        ("P20", "filing.emergency_reviewed", {"filing_id": "L20", "approved": True}),
    ])
    events = await _events(infra, prefix, 5)
    assert [(e["type"], e["data"].get("filing_id")) for e in events] == [
        ("filing.registered", "L20"), ("filing.registered", "E20"),
        ("filing.emergency_reviewed", "E20"), ("filing.rejected", "E20"),
        ("filing.rejected", "L20")]
    assert events[2]["data"]["approved"] is False
    assert events[2]["data"]["reviewed_on"] == "2026-10-01"
    assert [r["code"] for r in events[3]["data"]["reasons"]] == ["emergency_already_reviewed"]
    assert [r["code"] for r in events[4]["data"]["reasons"]] == ["not_an_emergency_filing"]
