"""The settlement service over real Kafka and PostgreSQL, with the filing service beside it.

Amounts are worked by hand from reference/settlement-policies/220200.toml (吉林市, employee,
inpatient, level 3: deductible 800.00 per admission, ratio 0.86) and the Jilin 2022 tier
table (a relocated retiree in another city's district: tier 1, no reduction).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared import topics
from tests.helpers import (
    enrolment,
    envelope,
    not_enrolment,
    produce,
    read_topic,
    running_services,
    wait_enrolled,
)

pytestmark = pytest.mark.infra

HOSPITAL = "H220102001"  # 吉林大学第二医院, 长春市南关区, level 3
PERSON = "P-220200-0001"


async def file_relocation(bootstrap: str, prefix: str, database_url: str) -> None:
    """PERSON enrolled by 220200 (吉林市) and filed as a relocated retiree in 220100 (长春)
    from 2026-10-01 (F-1); returns once the filing is answered and the settlement service
    has folded the enrolment."""
    await produce(bootstrap, prefix + topics.FILING_COMMANDS, [
        enrolment(PERSON, "220200"), (PERSON, envelope(
        "filing.requested", {
            "filing_id": "F-1", "person_id": PERSON, "insured_agency": "220200",
            "insurance_type": "employee", "category": "relocated_retiree",
            "destination": "220100", "valid_from": "2026-10-01",
            "materials": ["credential", "relocation_proof"], "commitment": False,
            "channel": "online"},
        id="F-1", source="agency/220200", time="2026-09-30T10:00:00+08:00"))])
    await read_topic(bootstrap, prefix + topics.FILING_EVENTS,
                     until=lambda r: len(not_enrolment(r)) >= 1)
    await wait_enrolled(database_url, [PERSON])


@pytest.fixture
async def running(infra, fresh_database, tmp_path) -> AsyncIterator[str]:
    async with running_services(infra.kafka_bootstrap, fresh_database, tmp_path,
                                "filing", "settlement") as services:
        await file_relocation(infra.kafka_bootstrap, services.prefix, fresh_database)
        await asyncio.sleep(1.0)  # let the settlement service fold the filing first
        yield services.prefix


def inpatient(settlement_id: str, admitted: str, discharged: str, amount: str,
              **extra: Any) -> dict[str, Any]:
    return {
        "settlement_id": settlement_id, "hospital": HOSPITAL, "person_id": PERSON,
        "insured_agency": "220200", "insurance_type": "employee", "visit_type": "inpatient",
        "admitted_on": admitted, "discharged_on": discharged,
        "settled_at": f"{discharged}T16:00:00+08:00", "emergency": False, "referral": False,
        "items": [{"code": "WARD", "name": "病房", "category": "A", "amount": amount}],
        **extra,
    }


def refund(refund_id: str, settlement_id: str, at: str) -> dict[str, Any]:
    return {"refund_id": refund_id, "settlement_id": settlement_id, "hospital": HOSPITAL,
            "person_id": PERSON, "reason": "wrong items", "refunded_at": at}


def sent(type_: str, data: dict[str, Any], id: str, source: str = f"hospital/{HOSPITAL}",
         ) -> tuple[str, bytes]:
    return PERSON, envelope(type_, data, id=id, source=source)


async def test_settle_refund_non_latest_resettle_duplicates_and_early_refund(infra, running):
    prefix = running
    s1 = inpatient("S1", "2026-10-01", "2026-10-05", "10000.00",
                   personal_account_request="100.00")
    s1["items"].append({"code": "NURSE", "name": "陪护", "category": "C", "amount": "500.00"})
    s2 = inpatient("S2", "2026-10-10", "2026-10-15", "2000.00")
    await produce(infra.kafka_bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [
        sent("settlement.submitted", s1, "m1"),
        sent("settlement.submitted", s2, "m2"),
        sent("settlement.submitted", s2, "m2"),  # delivered twice
        # refund of S1, which is not the latest settlement (隔笔退费)
        sent("settlement.refund_requested", refund("R1", "S1", "2026-10-16T09:00:00+08:00"),
             "m3"),
        sent("settlement.submitted", inpatient("S3", "2026-10-01", "2026-10-05", "9000.00",
                                               resettles="S1"), "m4"),
        sent("settlement.refund_requested", refund("R1b", "S1", "2026-10-16T10:00:00+08:00"),
             "m5"),
        # the refund of S4 arrives before S4 itself
        sent("settlement.refund_requested", refund("R4", "S4", "2026-10-22T09:00:00+08:00"),
             "m6"),
        sent("settlement.submitted", inpatient("S4", "2026-10-20", "2026-10-21", "1000.00"),
             "m7"),
        # another hospital cannot submit for this one
        sent("settlement.submitted", inpatient("S5", "2026-10-20", "2026-10-21", "1.00"), "m8",
             source="hospital/H220104001"),
    ])
    records = await read_topic(infra.kafka_bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                               until=lambda r: len(r) >= 8)
    await asyncio.sleep(1.5)
    records = await read_topic(infra.kafka_bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                               until=lambda r: len(r) >= 8)
    events = [r.json() for r in sorted(records, key=lambda r: r.offset)]
    summary = [(e["type"], e["data"].get("settlement_id"), e["data"].get("refund_id"))
               for e in events]
    assert summary == [
        ("settlement.completed", "S1", None),
        ("settlement.completed", "S2", None),
        ("settlement.refunded", "S1", "R1"),
        ("settlement.completed", "S3", None),
        ("settlement.refund_rejected", "S1", "R1b"),
        ("settlement.completed", "S4", None),
        ("settlement.refunded", "S4", "R4"),
        ("settlement.rejected", "S5", None),
    ]
    s1_done, s2_done, r1, s3_done, r1b, s4_done, r4, s5 = (e["data"] for e in events)
    # S1: eligible 10000.00, deductible 800.00, (10000 - 800) x 0.86 = 7912.00
    assert (s1_done["tier"], s1_done["ratio"]) == (1, "0.86")
    assert s1_done["filing_id"] == "F-1"
    assert {k: s1_done[k] for k in ("total", "eligible", "uncovered", "deductible", "fund_pay",
                                    "account_pay", "cash_pay", "cleared_amount")} == {
        "total": "10500.00", "eligible": "10000.00", "uncovered": "500.00",
        "deductible": "800.00", "fund_pay": "7912.00", "account_pay": "100.00",
        "cash_pay": "2488.00", "cleared_amount": "8012.00"}
    assert s1_done["care_agency"] == "220100"
    # S2: a new admission pays its own deductible: (2000 - 800) x 0.86 = 1032.00
    assert (s2_done["fund_pay"], s2_done["cash_pay"]) == ("1032.00", "968.00")
    assert (r1["fund_pay"], r1["cleared_amount"]) == ("7912.00", "8012.00")
    # S3 re-settles S1's admission; the refund gave back S1's deductible: (9000 - 800) x 0.86
    assert (s3_done["deductible"], s3_done["fund_pay"]) == ("800.00", "7052.00")
    assert s3_done["resettles"] == "S1"
    assert r1b["reasons"][0]["code"] == "already_refunded"
    assert s4_done["fund_pay"] == "172.00"  # (1000 - 800) x 0.86
    assert r4["cleared_amount"] == "172.00"
    assert s5["reasons"][0]["code"] == "source_mismatch"
    assert len({e["id"] for e in events}) == len(events)
