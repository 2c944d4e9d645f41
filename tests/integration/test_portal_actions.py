"""The portal's actions against the running clearing service: each answer the portal
publishes goes through the clearing service's normal checks, and the portal then shows
what the service decided (daily-report disputes and confirmations, a statement dispute, a
remittance, and a remittance the service refuses)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.clearing import scheduler
from shared import topics
from tests.helpers import Services, create_topics, new_prefix, read_topic
from tests.portal_support import add_user, eventually, running_portal, small_month

pytestmark = pytest.mark.infra

CHANGCHUN, JILIN = "220100", "220200"
CYCLE = "2026-10"
PASSWORDS = {CHANGCHUN: "changchun-actions-1", JILIN: "jilin-actions-2"}


@dataclass(frozen=True)
class Month:
    base: str
    bootstrap: str
    prefix: str


@pytest.fixture
async def month(infra, fresh_database, tmp_path) -> AsyncIterator[Month]:
    prefix = new_prefix()
    await create_topics(infra.kafka_bootstrap, prefix)
    services = Services(infra.kafka_bootstrap, fresh_database, prefix, tmp_path)
    services.start("filing", "settlement", "clearing")
    try:
        await small_month(infra.kafka_bootstrap, prefix, fresh_database)
        env = {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
               "DATABASE_URL": fresh_database, "CLEARINGHOUSE_TOPIC_PREFIX": prefix,
               "CLEARINGHOUSE_CACHE": str(tmp_path)}
        for login, password in PASSWORDS.items():
            add_user(env, login, password)
        async with running_portal(env, tmp_path / "portal.log") as base:
            yield Month(base, infra.kafka_bootstrap, prefix)
    finally:
        services.stop()


async def _login(client: httpx.AsyncClient, agency: str) -> dict[str, str]:
    r = await client.post("/api/session", json={"login": agency,
                                                "password": PASSWORDS[agency]})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


async def test_answers_go_through_the_clearing_service(month: Month) -> None:
    async with httpx.AsyncClient(base_url=month.base) as jilin, \
            httpx.AsyncClient(base_url=month.base) as changchun:
        j = await _login(jilin, JILIN)
        c = await _login(changchun, CHANGCHUN)

        async def get(client: httpx.AsyncClient, path: str) -> Any:
            r = await client.get(path)
            assert r.status_code == 200, (path, r.text)
            return r.json()

        # Jilin disputes S1 on its report of 3 October; Changchun confirms its 9 October.
        r = await jilin.post(f"/api/agencies/{JILIN}/daily-reports/2026-10-03/dispute",
                             headers=j, json={"settlement_ids": ["S1"], "reason": "金额不符"})
        assert r.status_code == 202, r.text
        assert r.json()["type"] == "clearing.daily_report_disputed"
        r = await changchun.post(f"/api/agencies/{CHANGCHUN}/daily-reports/2026-10-09/confirm",
                                 headers=c)
        assert r.status_code == 202, r.text

        async def disputed() -> bool:
            home = await get(jilin, f"/api/agencies/{JILIN}/home")
            return [d["settlement_id"] for d in home["open_disputes"]] == ["S1"]

        async def confirmed() -> bool:
            reports = await get(changchun, f"/api/agencies/{CHANGCHUN}/daily-reports")
            return any(r["date"] == "2026-10-09" and r["answer"] == "confirmed"
                       for r in reports)

        # A dispute is decided once the next business day has started (its place among the
        # days is known then): the scheduler starts 3 November.
        await scheduler.advance(month.bootstrap, date(2026, 11, 3), prefix=month.prefix)
        await eventually(disputed, "Jilin's dispute of S1 recorded")
        await eventually(confirmed, "Changchun's confirmation of 9 October recorded")

        # Changchun disputes its statement; the home page shows what is due by the 5th.
        home = await get(changchun, f"/api/agencies/{CHANGCHUN}/home")
        due = [d for d in home["deadlines"] if d["step"] == "confirmation_day"]
        assert due and due[0]["due"] == [{"what": "confirm_statement", "cycle": CYCLE}]
        r = await changchun.post(f"/api/agencies/{CHANGCHUN}/statements/{CYCLE}/dispute",
                                 headers=c, json={"settlement_ids": ["S3"]})
        assert r.status_code == 202, r.text
        # The drill-down's form: several ticked settlements.
        form = await changchun.post(f"/agency/{CHANGCHUN}/statements/{CYCLE}/dispute", data={
            "csrf_token": c["X-CSRF-Token"], "settlement_ids": ["S2", "S3"], "reason": "复核"})
        assert form.status_code == 303, form.text

        async def statement_disputed() -> bool:
            s = await get(changchun, f"/api/agencies/{CHANGCHUN}/statements/{CYCLE}")
            return bool(s["answer"] == "disputed")

        # The 10th: Jilin owes the hub; it reports its remittance through the portal.
        await scheduler.advance(month.bootstrap, date(2026, 11, 10), prefix=month.prefix)
        await eventually(statement_disputed, "Changchun's statement dispute recorded")

        async def instructed() -> list[Any]:
            return [i for i in await get(jilin, f"/api/agencies/{JILIN}/instructions")
                    if i["payer"] == JILIN]

        await eventually(lambda: _truthy(instructed()), "Jilin's instruction issued")
        instruction = (await instructed())[0]
        assert instruction["payee"] == "hub" and Decimal(instruction["outstanding"]) > 0
        path = (f"/api/agencies/{JILIN}/instructions/{instruction['instruction_id']}"
                "/remittances")
        bad = await jilin.post(path, headers=j, json={"amount": "12.5"})
        assert bad.status_code == 422  # not contract money: never leaves the portal
        other = await changchun.post(path.replace(JILIN, CHANGCHUN, 1), headers=c,
                                     json={"amount": instruction["outstanding"]})
        assert other.status_code == 403  # not Changchun's to pay
        r = await jilin.post(path, headers=j, json={"amount": instruction["outstanding"],
                                                    "paid_at": "2026-11-10T15:00"})
        assert r.status_code == 202, r.text
        assert r.json()["data"]["paid_at"] == "2026-11-10T15:00:00+08:00"
        await scheduler.advance(month.bootstrap, date(2026, 11, 11), prefix=month.prefix)

        async def paid() -> bool:
            return bool((await instructed())[0]["outstanding"] == "0.00")

        await eventually(paid, "Jilin's remittance recorded")

        # Paying again is more than is outstanding: the clearing service refuses it, and the
        # agency's home shows the refusal.
        r = await jilin.post(path, headers=j, json={"amount": "1.00"})
        assert r.status_code == 202

        async def refused() -> bool:
            home = await get(jilin, f"/api/agencies/{JILIN}/home")
            return any(x["submission_type"] == "clearing.remittance_reported"
                       for x in home["rejected_submissions"])

        await eventually(refused, "the second remittance refused")
        page = await jilin.get(f"/agency/{JILIN}")
        assert "rejected-submissions" in page.text

    # Every answer reached Kafka as the agency's own client writes it.
    records = await read_topic(month.bootstrap, month.prefix + topics.CLEARING_SUBMISSIONS,
                               until=lambda rs: len(rs) >= 6)
    sent = [(r.key, r.json()["source"], r.json()["type"]) for r in records]
    assert (JILIN.encode(), f"agency/{JILIN}", "clearing.daily_report_disputed") in sent
    assert (CHANGCHUN.encode(), f"agency/{CHANGCHUN}", "clearing.statement_disputed") in sent
    assert sum(t == "clearing.remittance_reported" for _, _, t in sent) == 2
    assert {"settlement_ids": ["S2", "S3"], "reason": "复核", "agency": CHANGCHUN,
            "cycle": CYCLE} in [r.json()["data"] for r in records]


async def _truthy(found: Any) -> bool:
    return bool(await found)
