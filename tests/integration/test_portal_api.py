"""The portal's JSON API against the real database of a small demo run (httpx against
`clearinghouse serve portal`): the same figures as the clearing service's results, the
drill-down adding up, and who may see what (403 for another agency's data)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from services.portal.cli import demo_environment
from shared.config import REPO_ROOT
from shared.db import drop_database
from tests.helpers import stop_process
from tests.portal_support import add_user, free_port, running_portal

pytestmark = pytest.mark.infra

CHANGCHUN, JILIN = "220100", "220200"
CYCLE = "2026-10"
PASSWORDS = {CHANGCHUN: "changchun-pw-1", JILIN: "jilin-pw-2", "auditor": "auditor-pw-3"}


@dataclass(frozen=True)
class Demo:
    base: str
    summary: dict[str, Any]
    database_url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
async def demo(infra, tmp_path_factory) -> AsyncIterator[Demo]:
    cache = tmp_path_factory.mktemp("portal-cache")
    env = {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap, "DATABASE_URL": infra.database_url,
           "CLEARINGHOUSE_CACHE": str(cache)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "demo", "--json", "--no-infra",
        "--persons", "150", "--settlements", "300", cwd=REPO_ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode == 0, err.decode()[-3000:]
    summary = json.loads(out)
    recorded = json.loads((cache / "last-demo.json").read_text())
    portal_env = {**env, **demo_environment(recorded, infra.database_url)}
    database_url = portal_env["DATABASE_URL"]
    for login, password in PASSWORDS.items():
        add_user(portal_env, login, password)
    try:
        async with running_portal(portal_env, cache / "portal.log") as base:
            yield Demo(base, summary, database_url, env)
    finally:
        admin = await asyncpg.connect(infra.database_url)
        try:
            await drop_database(admin, recorded["database"])
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def _session(demo: Demo, login: str | None
                   ) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client logged in as `login` (none: anonymous) and its CSRF token."""
    async with httpx.AsyncClient(base_url=demo.base) as client:
        token = ""
        if login:
            r = await client.post("/api/session", json={"login": login,
                                                        "password": PASSWORDS[login]})
            assert r.status_code == 200, r.text
            token = r.json()["csrf_token"]
        yield client, token


async def test_logging_in(demo: Demo) -> None:
    async with _session(demo, None) as (client, _):
        assert (await client.get(f"/api/agencies/{CHANGCHUN}/home")).status_code == 401
        wrong = await client.post("/api/session", json={"login": CHANGCHUN, "password": "x"})
        assert wrong.status_code == 401
        unknown = await client.post("/api/session", json={"login": "999999", "password": "x"})
        assert unknown.status_code == 401
        ok = await client.post("/api/session", json={"login": CHANGCHUN,
                                                     "password": PASSWORDS[CHANGCHUN]})
        assert ok.status_code == 200
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert PASSWORDS[CHANGCHUN] not in ok.headers["set-cookie"]
        me = (await client.get("/api/me")).json()
        assert me["agency"] == CHANGCHUN and me["role"] == "agency"


async def test_an_agency_reads_its_own_figures(demo: Demo) -> None:
    published = {s["agency"]: s for s in demo.summary["statements"]}  # the demo's month
    async with _session(demo, CHANGCHUN) as (client, _):
        statement = (await client.get(f"/api/agencies/{CHANGCHUN}/statements/{CYCLE}")).json()
        for key in ("receivable", "payable", "adjustments", "net", "checksum"):
            assert statement[key] == published[CHANGCHUN][key]
        assert statement["answer"] == "confirmed"  # the demo's agencies confirmed
        listed = (await client.get(f"/api/agencies/{CHANGCHUN}/statements")).json()
        assert [s["cycle"] for s in listed] == [CYCLE]

        mine = [i for i in demo.summary["instructions"]
                if CHANGCHUN in (i["payer"], i["payee"])]
        instructions = (await client.get(f"/api/agencies/{CHANGCHUN}/instructions")).json()
        assert {(i["instruction_id"], i["amount"]) for i in instructions} == {
            (i["instruction_id"], i["amount"]) for i in mine}
        assert all(i["outstanding"] == "0.00" for i in instructions)  # the month is paid

        home = (await client.get(f"/api/agencies/{CHANGCHUN}/home")).json()
        assert home["business_day"] and home["current_cycle"]
        assert [d["date"] for d in home["deadlines"]] == sorted(d["date"]
                                                                for d in home["deadlines"])
        assert home["overdue"] == []

        reports = (await client.get(f"/api/agencies/{CHANGCHUN}/daily-reports")).json()
        assert reports and all(r["agency"] == CHANGCHUN for r in reports)
        notices = (await client.get(f"/api/agencies/{CHANGCHUN}/notices")).json()
        expected = [n for n in demo.summary["difference_notices"] if n["agency"] == CHANGCHUN]
        assert len(notices) == len(expected)

        page = await client.get(f"/agency/{CHANGCHUN}/statements/{CYCLE}")
        assert page.status_code == 200
        net = Decimal(published[CHANGCHUN]["net"])
        assert f"{net:,.2f}" in page.text


async def test_the_drill_down_adds_up_and_pages(demo: Demo) -> None:
    async with _session(demo, CHANGCHUN) as (client, _):
        statement = (await client.get(f"/api/agencies/{CHANGCHUN}/statements/{CYCLE}")).json()
        for line in statement["lines"]:
            d = (await client.get(f"/api/agencies/{CHANGCHUN}/items", params={
                "cycle": CYCLE, "counterpart": line["counterpart"], "size": 500})).json()
            assert d["explanation"]["adds_up"] is True
            assert sum(Decimal(i["effect"]) for i in d["items"]) == Decimal(line["net"])
            assert d["matching"] == (line["receivable_count"] + line["payable_count"]
                                     + line["adjustment_count"])
        everything = (await client.get(f"/api/agencies/{CHANGCHUN}/items", params={
            "cycle": CYCLE, "size": 500})).json()
        assert sum(Decimal(i["effect"]) for i in everything["items"]) == Decimal(
            statement["net"])
        pages = []
        for n in range(1, everything["matching"] // 10 + 2):
            pages += (await client.get(f"/api/agencies/{CHANGCHUN}/items", params={
                "cycle": CYCLE, "size": 10, "page": n})).json()["items"]
        assert pages == everything["items"]

        one = everything["items"][0]
        found = (await client.get(f"/api/agencies/{CHANGCHUN}/items",
                                  params={"q": one["settlement_id"]})).json()
        assert one["settlement_id"] in {i["settlement_id"] for i in found["items"]}
        detail = (await client.get(
            f"/api/agencies/{CHANGCHUN}/settlements/{one['settlement_id']}")).json()
        assert any(i["cleared_amount"] == one["cleared_amount"] for i in detail["items"])


async def test_a_daily_reports_figures_drill_down_to_its_items(demo: Demo) -> None:
    async with _session(demo, CHANGCHUN) as (client, _):
        reports = (await client.get(f"/api/agencies/{CHANGCHUN}/daily-reports")).json()
        checked = 0
        for report in reports[:5]:
            for line in report["counterparts"]:
                d = (await client.get(f"/api/agencies/{CHANGCHUN}/items", params={
                    "reported_on": report["date"], "counterpart": line["counterpart"],
                    "size": 500})).json()
                owed_to = [i for i in d["items"] if i["care_agency"] == CHANGCHUN]
                owes = [i for i in d["items"] if i["insured_agency"] == CHANGCHUN]
                assert len(owed_to) == line["receivable_count"]
                assert len(owes) == line["payable_count"]
                assert sum((Decimal(i["effect"]) for i in owed_to), Decimal(0)) == Decimal(
                    line["receivable"])
                assert -sum((Decimal(i["effect"]) for i in owes), Decimal(0)) == Decimal(
                    line["payable"])
                checked += 1
        assert checked > 0
        page = await client.get(f"/agency/{CHANGCHUN}/daily-reports")
        assert f"reported_on={reports[0]['date']}" in page.text


async def test_the_drill_downs_totals_are_explains(demo: Demo) -> None:
    """The portal's totals (summed in SQL) are `clearinghouse explain`'s, line by line."""
    from services.clearing import queries
    from tools.audit import explain

    agencies = sorted(s["agency"] for s in demo.summary["statements"])
    conn = await queries.connect(demo.database_url)
    try:
        refunds = await conn.fetchval("SELECT count(*) FROM items WHERE kind = 'refund' "
                                      "AND cycle = $1 AND care_agency <> insured_agency", CYCLE)
        assert refunds > 0  # so that the sign of a refund is put to the test
        async with _session(demo, "auditor") as (client, _):
            for agency in agencies:
                portal = (await client.get(f"/api/agencies/{agency}/items", params={
                    "cycle": CYCLE, "size": 1})).json()["explanation"]
                explained = explain.to_json(await explain.explain_statement(conn, agency,
                                                                            CYCLE))
                assert portal["totals"] == explained["totals"], agency
                assert portal["total"] == explained["total"], agency
                assert portal["published_lines"] == explained["published_lines"], agency
                assert portal["adds_up"] is explained["adds_up"] is True, agency
    finally:
        await conn.close()


async def test_search_by_person(demo: Demo) -> None:
    conn = await asyncpg.connect(demo.database_url)
    try:
        rows = await conn.fetch(
            """SELECT s.person_id, i.settlement_id FROM settlement.settlement_ids s
               JOIN clearing.items i ON i.settlement_id = s.settlement_id
                 AND i.hospital = s.hospital
               WHERE i.care_agency = $1 AND i.insured_agency <> $1 LIMIT 1""", CHANGCHUN)
        person, settlement_id = rows[0]["person_id"], rows[0]["settlement_id"]
        theirs = {r["settlement_id"] for r in await conn.fetch(
            """SELECT i.settlement_id FROM settlement.settlement_ids s
               JOIN clearing.items i ON i.settlement_id = s.settlement_id
               WHERE s.person_id = $1 AND $2 IN (i.care_agency, i.insured_agency)
                 AND i.care_agency <> i.insured_agency""", person, CHANGCHUN)}
    finally:
        await conn.close()
    async with _session(demo, CHANGCHUN) as (client, _):
        found = (await client.get(f"/api/agencies/{CHANGCHUN}/items",
                                  params={"q": person})).json()
    assert found["person_search"] == "used"
    assert settlement_id in {i["settlement_id"] for i in found["items"]}
    assert {i["settlement_id"] for i in found["items"]} == theirs


async def test_another_agencys_data_is_refused(demo: Demo) -> None:
    async with _session(demo, CHANGCHUN) as (client, token):
        for path in ("home", "statements", f"statements/{CYCLE}", "daily-reports",
                     "instructions", "notices", f"items?cycle={CYCLE}"):
            r = await client.get(f"/api/agencies/{JILIN}/{path}")
            assert r.status_code == 403, (path, r.text)
            page = await client.get(f"/agency/{JILIN}/{path}".replace("/home", ""))
            assert page.status_code in (403, 404), path
            if path != "statements":  # the list of statements has no page of its own
                assert page.status_code == 403, path
        assert (await client.get(f"/charts/nets.svg?agency={JILIN}")).status_code == 403
        assert (await client.get(f"/charts/flows/{CYCLE}.svg?agency={JILIN}")
                ).status_code == 403
        assert (await client.get("/api/audit")).status_code == 403

        jilins = [i for i in demo.summary["instructions"]
                  if JILIN in (i["payer"], i["payee"])]
        r = await client.get(f"/api/instructions/{jilins[0]['instruction_id']}")
        assert r.status_code == 403

        # A settlement between two other agencies, even asked for under one's own path.
        items = (await client.get(f"/api/agencies/{CHANGCHUN}/items",
                                  params={"cycle": CYCLE, "size": 500})).json()["items"]
        conn = await asyncpg.connect(demo.database_url)
        try:
            other = await conn.fetchval(
                """SELECT settlement_id FROM clearing.items WHERE $1 NOT IN
                   (care_agency, insured_agency) AND care_agency <> insured_agency
                   AND settlement_id <> ALL($2::text[]) LIMIT 1""",
                CHANGCHUN, [i["settlement_id"] for i in items])
        finally:
            await conn.close()
        r = await client.get(f"/api/agencies/{CHANGCHUN}/settlements/{other}")
        assert r.status_code == 403
        searched = (await client.get(f"/api/agencies/{CHANGCHUN}/items",
                                     params={"q": other})).json()
        assert searched["items"] == []

        # Acting for another agency: refused even with a valid CSRF token.
        r = await client.post(f"/api/agencies/{JILIN}/statements/{CYCLE}/confirm",
                              headers={"X-CSRF-Token": token})
        assert r.status_code == 403


async def test_actions_need_the_csrf_token_and_the_agency_itself(demo: Demo) -> None:
    async with _session(demo, CHANGCHUN) as (client, token):
        path = f"/api/agencies/{CHANGCHUN}/statements/{CYCLE}/confirm"
        assert (await client.post(path)).status_code == 403
        assert (await client.post(path, headers={"X-CSRF-Token": "forged"})).status_code == 403
        form = await client.post(f"/agency/{CHANGCHUN}/statements/{CYCLE}/confirm",
                                 data={"csrf_token": "forged"})
        assert form.status_code == 403
        instruction = (await client.get(f"/api/agencies/{CHANGCHUN}/instructions")).json()[0]
        bad = await client.post(
            f"/api/agencies/{CHANGCHUN}/instructions/{instruction['instruction_id']}"
            "/remittances", headers={"X-CSRF-Token": token}, json={"amount": "12.5"})
        assert bad.status_code in (403, 422)  # not this agency's to pay, or not money
    async with _session(demo, "auditor") as (auditor, auditor_token):
        r = await auditor.post(path, headers={"X-CSRF-Token": auditor_token})
        assert r.status_code == 403  # the auditor looks, it does not answer


async def test_the_auditor_sees_every_agency_and_the_ledger_check(demo: Demo) -> None:
    async with _session(demo, "auditor") as (client, _):
        audit = (await client.get("/api/audit")).json()
        assert audit["check"]["ok"] is True and audit["check"]["postings"] > 0
        assert {s["agency"] for s in audit["statements"]} == {
            s["agency"] for s in demo.summary["statements"]}
        assert sum(Decimal(s["net"]) for s in audit["statements"]) == 0
        assert audit["last_replay"] is None
        # An auditor replays the log; the portal shows that replay's verdict.
        replay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "audit", "replay", "--json", "--quiet",
            cwd=REPO_ROOT, env={**os.environ, **demo.env}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(replay.communicate(), timeout=180)
        assert replay.returncode == 0, err.decode()[-2000:]
        last = (await client.get("/api/audit")).json()["last_replay"]
        assert last["match"] is True and last["this_database"] is True
        assert last["prefix"] == json.loads(out)["prefix"]
        for agency in (CHANGCHUN, JILIN):
            r = await client.get(f"/api/agencies/{agency}/statements/{CYCLE}")
            assert r.status_code == 200
        page = await client.get("/audit")
        assert page.status_code == 200 and "id=\"check-result\"" in page.text
        svg = await client.get(f"/charts/flows/{CYCLE}.svg")
        assert svg.headers["content-type"].startswith("image/svg+xml")
        for i in demo.summary["instructions"]:
            if i["payee"] == "hub":
                assert f"{i['payer']} → hub: {Decimal(i['amount']):,.2f}" in svg.text


async def test_the_openapi_document_and_no_outside_assets(demo: Demo) -> None:
    async with _session(demo, CHANGCHUN) as (client, _):
        spec = (await client.get("/api/openapi.json")).json()
        assert "/api/agencies/{agency}/statements/{cycle}/confirm" in spec["paths"]
        assert (await client.get("/docs")).status_code == 404  # Swagger UI loads a CDN
        page = (await client.get(f"/agency/{CHANGCHUN}")).text
        assert "http://" not in page.replace('xmlns="http://www.w3.org', "")
        assert "https://" not in page
        assert (await client.get("/static/portal.css")).status_code == 200
        english = await client.get(f"/agency/{CHANGCHUN}?lang=en")
        assert "Statements" in english.text
        assert "月度清算单" in (await client.get(f"/agency/{CHANGCHUN}?lang=zh")).text


async def test_the_demo_serves_the_portal(infra, tmp_path) -> None:
    """`clearinghouse demo --serve-portal` prints the address and a login, then serves."""
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
           "DATABASE_URL": infra.database_url, "CLEARINGHOUSE_CACHE": str(tmp_path)}
    err = tmp_path / "demo.err"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "demo", "--json", "--no-infra", "--persons",
         "60", "--settlements", "120", "--serve-portal", "--portal-port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=(tmp_path / "demo.out").open("wb"),
        stderr=err.open("wb"))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(900):  # the demo runs first: up to about three minutes
                assert process.poll() is None, err.read_text()[-3000:]
                try:
                    if (await client.get("/login")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            assert f"http://127.0.0.1:{port}/ — log in as 220100" in err.read_text()
            passwords = dict(line.split("\t") for line in (
                tmp_path / "secrets" / "portal-demo-passwords.txt").read_text().splitlines())
            assert set(passwords) >= {CHANGCHUN, JILIN, "auditor"}
            r = await client.post("/api/session", json={"login": CHANGCHUN,
                                                        "password": passwords[CHANGCHUN]})
            assert r.status_code == 200
            statements = (await client.get(f"/api/agencies/{CHANGCHUN}/statements")).json()
            assert [s["cycle"] for s in statements] == [CYCLE]
    finally:
        stop_process(process)
        recorded = json.loads((tmp_path / "last-demo.json").read_text())
        admin = await asyncpg.connect(infra.database_url)
        try:
            await drop_database(admin, recorded["database"])
        finally:
            await admin.close()
    assert process.returncode == 0


async def test_an_answer_kafka_does_not_take_is_reported(demo: Demo, tmp_path) -> None:
    """With the broker unreachable, an action answers 503 and says nothing was sent."""
    env = {**demo.env, "DATABASE_URL": demo.database_url,
           "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    async with running_portal(env, tmp_path / "portal.log") as base, \
            httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/api/session", json={"login": CHANGCHUN,
                                                    "password": PASSWORDS[CHANGCHUN]})
        token = r.json()["csrf_token"]
        r = await client.post(f"/api/agencies/{CHANGCHUN}/statements/{CYCLE}/confirm",
                              headers={"X-CSRF-Token": token})
        assert r.status_code == 503, r.text
        assert "could not be published" in r.json()["detail"]
