"""Further payers over real Kafka and PostgreSQL: a Taiyuan resident enrolled as a 低保
person has a large stay at a Datong hospital; the settlement carries the serious-illness and
medical-assistance shares, and the clearing's daily report owes them with the fund's share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import pytest

from services.clearing import scheduler
from shared import topics
from tests.helpers import (
    Services,
    create_topics,
    envelope,
    new_prefix,
    produce,
    read_topic,
    wait_enrolled,
)

pytestmark = pytest.mark.infra

TAIYUAN, DATONG, IN_DATONG = "140100", "140200", "H140213001"


@pytest.fixture
async def running(infra, fresh_database, tmp_path) -> AsyncIterator[str]:
    prefix = new_prefix()
    await create_topics(infra.kafka_bootstrap, prefix)
    services = Services(infra.kafka_bootstrap, fresh_database, prefix, tmp_path)
    services.start("filing", "settlement", "clearing")
    await produce(infra.kafka_bootstrap, prefix + topics.FILING_COMMANDS, [("PT1", envelope(
        "person.enrolled", {"person_id": "PT1", "insured_agency": TAIYUAN,
                            "insurance_type": "resident", "effective": "2020-01-01",
                            "assistance": "low_income"},
        id="ENR-PT1", source=f"agency/{TAIYUAN}", time="2026-09-01T08:00:00+08:00"))])
    await wait_enrolled(fresh_database, ["PT1"])
    yield prefix
    services.stop()


async def test_further_payers_are_settled_and_cleared(infra, running) -> None:
    prefix, bootstrap = running, infra.kafka_bootstrap
    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [("PT1", envelope(
        "settlement.submitted", {
            "settlement_id": "S1", "hospital": IN_DATONG, "person_id": "PT1",
            "insured_agency": TAIYUAN, "insurance_type": "resident", "visit_type": "inpatient",
            "admitted_on": "2026-10-01", "discharged_on": "2026-10-09",
            "settled_at": "2026-10-09T16:00:00+08:00", "emergency": False, "referral": False,
            "items": [{"code": "S-SURGERY", "name": "手术费", "category": "A",
                       "amount": "30000.00"}]},
        id=f"{IN_DATONG}-S1", source=f"hospital/{IN_DATONG}",
        time="2026-10-09T16:00:00+08:00"))])
    events = await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                              until=lambda rs: len(rs) >= 1)
    outcome = events[0].json()
    assert outcome["type"] == "settlement.completed", outcome
    data = outcome["data"]
    fund, cash = Decimal(data["fund_pay"]), Decimal(data["cash_pay"])
    serious, assisted = (Decimal(data["serious_illness_pay"]),
                         Decimal(data["medical_assistance_pay"]))
    # the shares follow the policy's figures from the fund's (hand-checked in the unit test)
    compliant = Decimal(data["eligible"]) - fund
    assert serious == ((compliant - Decimal("10000.00")) * Decimal("0.60")).quantize(
        Decimal("0.01"))
    assert assisted == ((compliant - serious) * Decimal("0.70")).quantize(Decimal("0.01"))
    assert serious + assisted <= cash
    assert Decimal(data["total"]) == fund + Decimal(data["account_pay"]) + cash

    await scheduler.advance(bootstrap, date(2026, 10, 10), prefix=prefix,
                            start=date(2026, 10, 1))
    results = await read_topic(
        bootstrap, prefix + topics.CLEARING_RESULTS, timeout=90,
        until=lambda rs: sum(r.json()["type"] == "clearing.daily_report" for r in rs) >= 2)
    reports = {r.json()["data"]["agency"]: r.json()["data"] for r in results
               if r.json()["type"] == "clearing.daily_report"}
    owed = Decimal(data["cleared_amount"]) + serious + assisted
    assert Decimal(reports[DATONG]["counterparts"][0]["receivable"]) == owed
    assert Decimal(reports[TAIYUAN]["counterparts"][0]["payable"]) == owed
