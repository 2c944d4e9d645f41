"""The clearing service over real Kafka and PostgreSQL: a small month between two agencies,
from settlements to statements, instructions through the hub, remittances and closing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from services.clearing import scheduler
from shared import topics
from tests.helpers import (
    Services,
    create_topics,
    enrol,
    envelope,
    new_prefix,
    produce,
    read_topic,
)

pytestmark = pytest.mark.infra

CHANGCHUN, JILIN = "220100", "220200"
IN_CHANGCHUN, IN_JILIN = "H220102001", "H220202001"
PERSONS = (("PJ1", JILIN), ("PJ2", JILIN), ("PC1", CHANGCHUN))


@pytest.fixture
async def running(infra, fresh_database, tmp_path) -> AsyncIterator[tuple[str, str]]:
    prefix = new_prefix()
    await create_topics(infra.kafka_bootstrap, prefix)
    services = Services(infra.kafka_bootstrap, fresh_database, prefix, tmp_path)
    services.start("filing", "settlement", "clearing")
    # The persons this month settles, enrolled by their agencies (the filing service's
    # registry, folded by the settlement service) before any settlement.
    await enrol(infra.kafka_bootstrap, prefix, [(p, a, "employee") for p, a in PERSONS],
                fresh_database)
    yield prefix, fresh_database
    services.stop()


def outpatient(settlement_id: str, hospital: str, person: str, agency: str, day: str,
               amount: str) -> tuple[str, bytes]:
    return person, envelope("settlement.submitted", {
        "settlement_id": settlement_id, "hospital": hospital, "person_id": person,
        "insured_agency": agency, "insurance_type": "employee", "visit_type": "outpatient",
        "visit_date": day, "settled_at": f"{day}T10:00:00+08:00", "emergency": False,
        "referral": False,
        "items": [{"code": "EXAM", "name": "检查", "category": "A", "amount": amount}],
    }, id=f"{hospital}-{settlement_id}", source=f"hospital/{hospital}",
        time=f"{day}T10:00:00+08:00")


async def _results(infra, prefix: str, until) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    records = await read_topic(infra.kafka_bootstrap, prefix + topics.CLEARING_RESULTS,
                               until=lambda r: until([x.json() for x in r]), timeout=90)
    return [r.json() for r in records]


def _of(results: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r["data"] for r in results if r["type"] == kind]


async def test_a_month_between_two_agencies(infra, running) -> None:
    prefix, database = running
    bootstrap = infra.kafka_bootstrap
    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [
        outpatient("S1", IN_CHANGCHUN, "PJ1", JILIN, "2026-10-03", "3000.00"),
        outpatient("S2", IN_CHANGCHUN, "PJ2", JILIN, "2026-10-09", "1500.00"),
        outpatient("S3", IN_JILIN, "PC1", CHANGCHUN, "2026-10-09", "800.00"),
    ])
    settled = await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                               until=lambda r: len(r) >= 3)
    completed = {e["data"]["settlement_id"]: e["data"] for e in (r.json() for r in settled)
                 if e["type"] == "settlement.completed"}
    assert set(completed) == {"S1", "S2", "S3"}, [r.json() for r in settled]
    jilin_owes = sum(Decimal(completed[s]["cleared_amount"]) for s in ("S1", "S2"))
    changchun_owes = Decimal(completed["S3"]["cleared_amount"])
    assert jilin_owes > changchun_owes > 0

    # The calendar: daily reports from Oct 4, statements on Nov 2.
    await scheduler.advance(bootstrap, date(2026, 11, 2), prefix=prefix, start=date(2026, 10, 1))
    results = await _results(infra, prefix,
                             lambda rs: len(_of(rs, "clearing.statement_issued")) >= 2)
    reports = _of(results, "clearing.daily_report")
    assert {(r["agency"], r["date"]) for r in reports} == {
        (CHANGCHUN, "2026-10-03"), (JILIN, "2026-10-03"),
        (CHANGCHUN, "2026-10-09"), (JILIN, "2026-10-09")}
    statements = {s["agency"]: s for s in _of(results, "clearing.statement_issued")}
    assert statements[CHANGCHUN]["cycle"] == "2026-10"
    assert Decimal(statements[CHANGCHUN]["receivable"]) == jilin_owes
    assert Decimal(statements[CHANGCHUN]["payable"]) == changchun_owes
    assert Decimal(statements[CHANGCHUN]["net"]) == jilin_owes - changchun_owes
    assert Decimal(statements[JILIN]["net"]) == changchun_owes - jilin_owes

    # Agencies confirm; instructions on the 10th; Jilin pays the hub; the hub pays on the 20th.
    # Changchun cannot confirm Jilin's statement: only its own.
    await produce(bootstrap, prefix + topics.CLEARING_SUBMISSIONS, [(JILIN, envelope(
        "clearing.statement_confirmed", {"agency": JILIN, "cycle": "2026-10"},
        id="forged", source=f"agency/{CHANGCHUN}", time="2026-11-03T08:00:00+08:00"))])
    await produce(bootstrap, prefix + topics.CLEARING_SUBMISSIONS, [
        (agency, envelope("clearing.statement_confirmed",
                          {"agency": agency, "cycle": "2026-10",
                           "checksum": statements[agency]["checksum"]},
                          id=f"confirm-{agency}", source=f"agency/{agency}",
                          time="2026-11-03T09:00:00+08:00"))
        for agency in (CHANGCHUN, JILIN)])
    await scheduler.advance(bootstrap, date(2026, 11, 10), prefix=prefix)
    results = await _results(infra, prefix,
                             lambda rs: len(_of(rs, "clearing.net_transfer_instruction")) >= 2)
    instructions = _of(results, "clearing.net_transfer_instruction")
    net = jilin_owes - changchun_owes
    assert sorted((i["payer"], i["payee"], Decimal(i["amount"]), i["due_on"])
                  for i in instructions) == sorted([
        # due the 15th, a Sunday in November 2026: moved to Monday the 16th (working days)
        (JILIN, "hub", net, "2026-11-16"), ("hub", CHANGCHUN, net, "2026-11-20")])
    pay_in = next(i for i in instructions if i["payee"] == "hub")
    await produce(bootstrap, prefix + topics.CLEARING_SUBMISSIONS, [(JILIN, envelope(
        "clearing.remittance_reported",
        {"instruction_id": pay_in["instruction_id"], "amount": pay_in["amount"],
         "paid_at": "2026-11-14T15:00:00+08:00", "agency": JILIN},
        id="remit-1", source=f"agency/{JILIN}", time="2026-11-14T15:00:00+08:00"))])
    await scheduler.advance(bootstrap, date(2026, 11, 20), prefix=prefix)
    results = await _results(infra, prefix,
                             lambda rs: len(_of(rs, "clearing.cycle_closed")) >= 2)
    assert not _of(results, "clearing.remittance_overdue")
    refused = _of(results, "clearing.submission_rejected")
    assert [(r["agency"], r["reasons"][0]["code"]) for r in refused] == [
        (CHANGCHUN, "source_mismatch")]
    closed = {c["agency"]: Decimal(c["net"]) for c in _of(results, "clearing.cycle_closed")}
    assert closed == {CHANGCHUN: net, JILIN: -net}
    assert len({r["id"] for r in results}) == len(results), "no result published twice"

    # The ledgers balance and agree pairwise.
    conn = await asyncpg.connect(database, server_settings={"search_path": "clearing"})
    try:
        unbalanced = await conn.fetch(
            """SELECT agency, entry_id FROM postings GROUP BY agency, entry_id
               HAVING sum(CASE side WHEN 'debit' THEN amount ELSE -amount END) <> 0""")
        assert unbalanced == []
        assert await conn.fetchval("SELECT count(*) FROM postings") > 0
    finally:
        await conn.close()
    await asyncio.sleep(0)


def _refund(refund_id: str, settlement_id: str, hospital: str, person: str, at: str
            ) -> tuple[str, bytes]:
    return person, envelope("settlement.refund_requested", {
        "refund_id": refund_id, "settlement_id": settlement_id, "hospital": hospital,
        "person_id": person, "reason": "wrong items", "refunded_at": at,
    }, id=f"{hospital}-{refund_id}", source=f"hospital/{hospital}", time=at)


def _answer(agency: str, type_: str, data: dict[str, Any], id: str, at: str
            ) -> tuple[str, bytes]:
    return agency, envelope(type_, {"agency": agency, **data}, id=id,
                            source=f"agency/{agency}", time=at)


async def test_a_dispute_is_corrected_and_reconfirmed(infra, running) -> None:
    """Jilin disputes a settlement of its daily report; Changchun's hospital refunds and
    settles it again; Jilin confirms the report carrying the correction. Each agency reads
    every step on its own results topic, as itself."""
    from shared.messaging.clients import agency_principal

    prefix, _ = running
    bootstrap = infra.kafka_bootstrap
    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [
        outpatient("S1", IN_CHANGCHUN, "PJ1", JILIN, "2026-10-03", "3000.00")])
    await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS, until=lambda r: len(r) >= 1)
    await scheduler.advance(bootstrap, date(2026, 10, 4), prefix=prefix, start=date(2026, 10, 1))
    await _results(infra, prefix, lambda rs: len(_of(rs, "clearing.daily_report")) >= 2)

    await produce(bootstrap, prefix + topics.CLEARING_SUBMISSIONS, [_answer(
        JILIN, "clearing.daily_report_disputed",
        {"date": "2026-10-03", "settlement_ids": ["S1"], "reason": "items not in the bill"},
        "dispute-1", "2026-10-04T09:00:00+08:00")])
    # an answer waits for its place among the days (services/clearing/domain/ordering.py)
    await scheduler.advance(bootstrap, date(2026, 10, 5), prefix=prefix)
    await _results(infra, prefix, lambda rs: len(_of(rs, "clearing.dispute_opened")) >= 2)

    # the hospital corrects: a refund and a re-settlement, on the 5th
    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [
        _refund("R1", "S1", IN_CHANGCHUN, "PJ1", "2026-10-05T10:00:00+08:00")])
    await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS, until=lambda rs: any(
        r.json()["type"] == "settlement.refunded" for r in rs))
    resettled = outpatient("S1b", IN_CHANGCHUN, "PJ1", JILIN, "2026-10-05", "2000.00")
    value = resettled[1].replace(b'"referral":false', b'"referral":false,"resettles":"S1"')
    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [(resettled[0], value)])
    await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS, until=lambda rs: any(
        r.json()["data"].get("settlement_id") == "S1b" for r in rs))
    await scheduler.advance(bootstrap, date(2026, 10, 6), prefix=prefix)
    results = await _results(infra, prefix, lambda rs: any(
        r["agency"] == JILIN and r["date"] == "2026-10-05"
        for r in _of(rs, "clearing.daily_report")))
    report = next(r for r in _of(results, "clearing.daily_report")
                  if r["agency"] == JILIN and r["date"] == "2026-10-05")
    await produce(bootstrap, prefix + topics.CLEARING_SUBMISSIONS, [_answer(
        JILIN, "clearing.daily_report_confirmed",
        {"date": "2026-10-05", "checksum": report["checksum"]},
        "confirm-5", "2026-10-06T09:00:00+08:00")])
    await scheduler.advance(bootstrap, date(2026, 10, 7), prefix=prefix)

    for agency in (JILIN, CHANGCHUN):
        own = await read_topic(
            bootstrap, prefix + topics.agency_results(agency),
            principal=agency_principal(agency), timeout=90,
            until=lambda rs: any(r.json()["type"] == "clearing.dispute_resolved" for r in rs))
        steps = [(e["type"], e["data"]) for e in (r.json() for r in own)
                 if e["type"].startswith("clearing.dispute_")]
        assert [t for t, _ in steps] == ["clearing.dispute_opened", "clearing.dispute_corrected",
                                         "clearing.dispute_resolved"], (agency, steps)
        opened, corrected, resolved = (d for _, d in steps)
        assert (opened["agency"], opened["disputed_by"], opened["hospital"],
                opened["counterpart"]) == (agency, JILIN, IN_CHANGCHUN, CHANGCHUN)
        assert opened["reason"] == "items not in the bill"
        assert (corrected["refund_id"], corrected["settlement_id"]) == ("R1", "S1")
        assert (resolved["outcome"], resolved["confirmed_report_date"]) == (
            "reconfirmed", "2026-10-05")
