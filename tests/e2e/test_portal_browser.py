"""The portal in a real headless Chromium (Debian's `chromium`, driven by Playwright; no
browser download): an agency logs in, opens its statement, drills down to one settlement
whose figures match `settlement.events`, confirms the statement (the answer reaches
`clearing.submissions` and the clearing service records it), and another agency is refused
the first one's statement. Screenshots of each page are saved in the test's directory."""

from __future__ import annotations

import asyncio
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from services.clearing import queries
from shared import topics
from tests.helpers import Services, create_topics, new_prefix, read_topic
from tests.portal_support import add_user, running_portal, small_month

pytestmark = pytest.mark.infra

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
CHANGCHUN, JILIN = "220100", "220200"
CYCLE = "2026-10"
PASSWORDS = {CHANGCHUN: "changchun-browser-1", JILIN: "jilin-browser-2"}


def _playwright():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("no /usr/bin/chromium: run `bash infra/install.sh` (apt-get install chromium)")
    return pytest.importorskip("playwright.async_api", reason="pip install -e '.[test]'")


async def _answer(database_url: str) -> str | None:
    conn = await queries.connect(database_url)
    try:
        state = await queries.state(conn)
    finally:
        await conn.close()
    record = state.cycles.get(CYCLE)
    statement = record.statements.get(JILIN) if record else None
    return statement.answer.value if statement and statement.answer else None


async def test_an_agency_confirms_its_statement_in_a_browser(infra, fresh_database,
                                                             tmp_path: Path) -> None:
    playwright_api = _playwright()
    prefix = new_prefix()
    bootstrap = infra.kafka_bootstrap
    await create_topics(bootstrap, prefix)
    services = Services(bootstrap, fresh_database, prefix, tmp_path)
    services.start("filing", "settlement", "clearing")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        # A small month: Jilin's insured persons treated in Changchun, and one the other way.
        completed = await small_month(bootstrap, prefix, fresh_database)
        assert await _answer(fresh_database) is None

        env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": fresh_database,
               "CLEARINGHOUSE_TOPIC_PREFIX": prefix, "CLEARINGHOUSE_CACHE": str(tmp_path)}
        for login, password in PASSWORDS.items():
            add_user(env, login, password)
        async with running_portal(env, tmp_path / "portal.log") as base, \
                playwright_api.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))

                await page.goto(f"{base}/agency/{JILIN}/statements/{CYCLE}")
                assert "/login" in page.url  # not logged in: sent to the login page
                await page.screenshot(path=str(shots / "1-login.png"), full_page=True)
                await page.fill("#login", JILIN)
                await page.fill("#password", PASSWORDS[JILIN])
                await page.click("#login-submit")
                await page.wait_for_url(f"**/agency/{JILIN}/statements/{CYCLE}")
                await page.screenshot(path=str(shots / "2-statement.png"), full_page=True)
                jilin_owes = sum(Decimal(completed[s]["cleared_amount"]) for s in ("S1", "S2"))
                line = page.locator(f'#statement-lines tr[data-counterpart="{CHANGCHUN}"]')
                assert f"{jilin_owes:,.2f}" in await line.inner_text()
                assert "待确认" in await page.inner_text("#answer")

                await line.locator("a.drill").first.click()
                await page.wait_for_url(f"**/agency/{JILIN}/items?**")
                await page.screenshot(path=str(shots / "3-items.png"), full_page=True)
                assert "adds-up" in await page.inner_html("main")
                assert await page.get_attribute("#adds-up", "class") == "ok"
                dispute = page.locator("#dispute-selected")  # live once a settlement is ticked
                assert await dispute.is_disabled()
                await page.check('input[name="settlement_ids"][value="S1"]')
                assert await dispute.is_enabled()
                await page.uncheck('input[name="settlement_ids"][value="S1"]')

                await page.click("a.settlement-link >> text=S1")
                await page.wait_for_url(f"**/agency/{JILIN}/settlements/S1")
                await page.screenshot(path=str(shots / "4-settlement.png"), full_page=True)
                s1 = completed["S1"]
                for field in ("fund_pay", "account_pay", "cash_pay", "cleared_amount"):
                    shown = await page.inner_text(f"table.settlement td.{field}")
                    assert shown == f"{Decimal(s1[field]):,.2f}", field

                await page.goto(f"{base}/agency/{JILIN}/statements/{CYCLE}")
                await page.click("#confirm-statement")
                await page.wait_for_selector("#flash")
                await page.screenshot(path=str(shots / "5-confirmed.png"), full_page=True)
                assert "clearing.statement_confirmed" in await page.inner_text("#flash")

                submissions = await read_topic(
                    bootstrap, prefix + topics.CLEARING_SUBMISSIONS, until=lambda rs: any(
                        r.json()["type"] == "clearing.statement_confirmed" for r in rs))
                event = next(r for r in submissions
                             if r.json()["type"] == "clearing.statement_confirmed")
                assert event.key == JILIN.encode()
                assert event.json()["source"] == f"agency/{JILIN}"
                assert event.json()["data"]["cycle"] == CYCLE
                # The clearing service takes it through its normal checks and records it.
                for _ in range(300):
                    if await _answer(fresh_database) == "confirmed":
                        break
                    await asyncio.sleep(0.2)
                assert await _answer(fresh_database) == "confirmed"
                await page.reload()
                assert "已确认" in await page.inner_text("#answer")
                await page.click("#lang-switch")
                await page.wait_for_selector("text=confirmed")
                await page.screenshot(path=str(shots / "6-english.png"), full_page=True)

                # Another agency logs in and is refused Jilin's statement.
                await page.click("#logout")
                await page.wait_for_url("**/login")
                await page.fill("#login", CHANGCHUN)
                await page.fill("#password", PASSWORDS[CHANGCHUN])
                await page.click("#login-submit")
                await page.wait_for_url(f"**/agency/{CHANGCHUN}")
                await page.screenshot(path=str(shots / "7-other-home.png"), full_page=True)
                response = await page.goto(f"{base}/agency/{JILIN}/statements/{CYCLE}")
                assert response is not None and response.status == 403
                assert "403" in await page.inner_text("#error-status")
                await page.screenshot(path=str(shots / "8-refused.png"), full_page=True)
                refused = await page.goto(f"{base}/agency/{JILIN}/settlements/S1")
                assert refused is not None and refused.status == 403
            finally:
                await browser.close()
        print(f"screenshots in {shots}")
    finally:
        services.stop()
