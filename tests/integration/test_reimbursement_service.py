"""Manual reimbursement through real Kafka and PostgreSQL: a direct settlement uses most of
the person's annual cap, the insuring agency's claim (signed, on reimbursement.claims) is
paid only what is left, the agency reads the answer on its own copy
(reimbursement.events.<agency>), a claim sent by another agency is refused, and the
clearing service books the direct settlement but never the reimbursement.

220200 (吉林市), employee, inpatient, level 3: deductible 800.00 per admission, ratio 0.86,
cap 250,000.00; the person is a relocated retiree in 长春 (tier 1); reduction 0.10 at fault.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import asyncpg
import pytest

from services.clearing import scheduler
from shared import topics
from shared.messaging.clients import agency_principal
from tests.helpers import (
    envelope,
    produce,
    read_topic,
    running_services,
)
from tests.integration.test_settlement_service import (
    HOSPITAL,
    PERSON,
    file_relocation,
    inpatient,
    sent,
)

pytestmark = pytest.mark.infra

JILIN, CHANGCHUN = "220200", "220100"


@pytest.fixture
async def services(infra, fresh_database, tmp_path) -> AsyncIterator[str]:
    async with running_services(infra.kafka_bootstrap, fresh_database, tmp_path,
                                "filing", "settlement", "clearing") as running:
        await file_relocation(infra.kafka_bootstrap, running.prefix, fresh_database)
        yield running.prefix


def claim(claim_id: str, source: str, amount: str) -> tuple[str, bytes]:
    data: dict[str, Any] = {
        "claim_id": claim_id, "person_id": PERSON, "insured_agency": JILIN,
        "insurance_type": "employee", "hospital": HOSPITAL, "visit_type": "inpatient",
        "admitted_on": "2026-10-12", "discharged_on": "2026-10-20",
        "paid_at": "2026-10-20T16:00:00+08:00", "case": "direct_settlement_failed",
        "at_fault": True,
        "items": [{"code": "WARD", "name": "病房", "category": "A", "amount": amount}]}
    return PERSON, envelope("reimbursement.claimed", data, id=claim_id, source=source,
                            time="2026-10-25T09:00:00+08:00")


async def test_a_claim_shares_the_cap_and_is_never_cleared(infra, services,
                                                           fresh_database) -> None:
    prefix, bootstrap = services, infra.kafka_bootstrap
    # (230,800.00 − 800.00) × 0.86 = 197,800.00: 52,200.00 of the cap is left
    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [sent(
        "settlement.submitted", inpatient("S-1", "2026-10-01", "2026-10-09", "230800.00"),
        id="S-1")])
    settled = await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                               until=lambda r: len(r) >= 1)
    assert settled[0].json()["data"]["fund_pay"] == "197800.00"

    # (80,800.00 − 800.00) × (0.86 − 0.10) = 60,800.00, capped at 52,200.00
    await produce(bootstrap, prefix + topics.REIMBURSEMENT_CLAIMS, [
        claim("MR-forged", f"agency/{CHANGCHUN}", "80800.00"),
        claim("MR-1", f"agency/{JILIN}", "80800.00")])
    own = await read_topic(bootstrap, prefix + topics.addressed(topics.REIMBURSEMENT_EVENTS,
                                                                JILIN),
                           until=lambda r: len(r) >= 1, principal=agency_principal(JILIN))
    approved = own[0].json()
    assert approved["type"] == "reimbursement.approved"
    data = approved["data"]
    assert (data["claim_id"], data["tier"], data["ratio"], data["deductible"],
            data["fund_pay"], data["cash_pay"]) == (
        "MR-1", 1, "0.76", "800.00", "52200.00", "28600.00")
    refused = await read_topic(
        bootstrap, prefix + topics.addressed(topics.REIMBURSEMENT_EVENTS, CHANGCHUN),
        until=lambda r: len(r) >= 1, principal=agency_principal(CHANGCHUN))
    assert [r["code"] for r in refused[0].json()["data"]["reasons"]] == ["source_mismatch"]

    # A later direct settlement finds the cap used up by the two together.
    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [sent(
        "settlement.submitted", inpatient("S-2", "2026-10-22", "2026-10-24", "1800.00"),
        id="S-2")])
    settled = await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                               until=lambda r: len(r) >= 2)
    assert settled[-1].json()["data"]["fund_pay"] == "0.00"

    # The clearing books the direct settlements only, in its items and its ledgers.
    await scheduler.advance(bootstrap, date(2026, 10, 26), prefix=prefix,
                            start=date(2026, 10, 1))
    await read_topic(bootstrap, prefix + topics.CLEARING_RESULTS, timeout=90, until=lambda r: any(
        x.json()["type"] == "clearing.daily_report" and x.json()["data"]["date"] == "2026-10-24"
        for x in r))
    conn = await asyncpg.connect(fresh_database)
    try:
        items = await conn.fetch("SELECT document->>'settlement_id' AS s FROM clearing.items")
        postings = await conn.fetchval(
            "SELECT count(*) FROM clearing.postings WHERE settlement_id LIKE 'MR%'")
    finally:
        await conn.close()
    assert sorted(r["s"] for r in items) == ["S-1", "S-2"]
    assert postings == 0
