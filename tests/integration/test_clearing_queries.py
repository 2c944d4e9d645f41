"""`clearinghouse clearing statements|instructions|notices|balances|check` and `explain` over
the month of tests/integration/test_audit.py (services as processes on real Kafka and
PostgreSQL), run as a user runs them: the CLI in a subprocess."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from tests.helpers import own_database
from tests.integration.test_audit import (
    CHANGCHUN,
    JIAOHE,
    JILIN,
    Month,
    clearinghouse,
    own_month,
)

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
async def month(infra, tmp_path_factory) -> AsyncIterator[Month]:
    async with own_month(infra, tmp_path_factory.mktemp("queries-logs")) as month:
        yield month


def run(month: Month, tmp_path: Path, *argv: str, code: int = 0) -> Any:
    done = clearinghouse(month, *argv, "--json", cache=tmp_path)
    assert done.returncode == code, done.stderr + done.stdout
    return orjson.loads(done.stdout)


def money(value: str) -> Decimal:
    return Decimal(value)


async def test_statements_instructions_and_notices(month, tmp_path) -> None:
    statements = run(month, tmp_path, "clearing", "statements")
    assert {s["agency"] for s in statements} == {CHANGCHUN, JILIN, JIAOHE}
    assert sum(money(s["net"]) for s in statements) == 0
    for s in statements:
        assert money(s["net"]) == sum(money(ln["net"]) for ln in s["lines"])
    only = run(month, tmp_path, "clearing", "statements", "--agency", JILIN, "--cycle", "2026-10")
    assert [s["agency"] for s in only] == [JILIN]
    assert run(month, tmp_path, "clearing", "statements", "--cycle", "2026-11") == []

    instructions = run(month, tmp_path, "clearing", "instructions", "--cycle", "2026-10")
    nets = {s["agency"]: money(s["net"]) for s in statements}
    assert sorted((i["payer"], i["payee"], money(i["amount"])) for i in instructions) == sorted(
        (a, "hub", -n) if n < 0 else ("hub", a, n) for a, n in nets.items() if n)
    assert all(i["paid"] == i["amount"] and money(i["outstanding"]) == 0 and not i["overdue"]
               for i in instructions)

    notices = run(month, tmp_path, "clearing", "notices", "--agency", JILIN)
    assert [(n["original_settlement_id"], n["settlement_id"], n["carried_into"])
            for n in notices] == [("S1", "S1R", "2026-11")]
    notice = notices[0]
    assert money(notice["cleared_amount"]) == money(notice["fund_pay"]) + money(
        notice["account_pay"])
    assert len(run(month, tmp_path, "clearing", "notices")) == 2


def _balances(month: Month, tmp_path: Path, *argv: str) -> dict[tuple[str, str], Decimal]:
    found = run(month, tmp_path, "clearing", "balances", "--agency", JILIN, *argv)
    return {(b["account"], b["counterpart"]): money(b["normal"]) for b in found["balances"]}


async def test_balances_at_past_moments(month, tmp_path) -> None:
    statement = run(month, tmp_path, "clearing", "statements", "--agency", JILIN)[0]
    owed = -money(statement["net"])  # Jilin only pays Changchun in October
    assert owed > 0
    end_of_october = _balances(month, tmp_path, "--as-of", "2026-10-31")
    assert end_of_october[("payable", CHANGCHUN)] == owed
    assert end_of_october[("benefit_expense", CHANGCHUN)] == owed
    assert ("payable", "hub") not in end_of_october
    # The clearing into the hub happens at the start of the 10th; the remittance on the 14th.
    cleared = _balances(month, tmp_path, "--as-of", "2026-11-10T00:00:00+08:00",
                        "--cycle", "2026-10")
    assert cleared[("payable", CHANGCHUN)] == 0 and cleared[("payable", "hub")] == owed
    paid = _balances(month, tmp_path, "--cycle", "2026-10")
    assert paid[("payable", "hub")] == 0 and paid[("bank", "hub")] == -owed
    # November so far: S1 refunded and settled again (S1R), both carried into 2026-11.
    november = _balances(month, tmp_path, "--cycle", "2026-11")
    assert november[("payable", CHANGCHUN)] != 0


async def test_explain_adds_up(month, tmp_path) -> None:
    instructions = run(month, tmp_path, "clearing", "instructions")
    for instruction in instructions:
        explained = run(month, tmp_path, "explain", instruction["instruction_id"])
        assert explained["adds_up"], explained
        assert explained["figure"]["value"] == instruction["amount"]
        agency = instruction["payee"] if instruction["payer"] == "hub" else instruction["payer"]
        net = money(explained["total"]["net"])
        assert (net if instruction["payer"] == "hub" else -net) == money(instruction["amount"])
        assert all(i["cause_source"] == "service/settlement" and i["cause_id"]
                   for i in explained["items"])
        assert agency == explained["agency"]
    line = run(month, tmp_path, "explain", "statement", CHANGCHUN, "2026-10", JILIN)
    assert line["adds_up"] and {i["counterpart"] for i in line["items"]} == {JILIN}
    assert {i["settlement_id"] for i in line["items"]} >= {"S1", "S2"}
    assert sum(money(i["effect"]) for i in line["items"]) == money(line["figure"]["value"])
    missing = clearinghouse(month, "explain", "NTI-2026-10-nobody-hub", cache=tmp_path)
    assert missing.returncode == 2 and "no net-transfer instruction" in missing.stderr


async def test_check_passes_then_names_the_first_failure(infra, month, tmp_path) -> None:
    report = run(month, tmp_path, "clearing", "check")
    assert report["ok"] and report["first_failure"] is None
    assert [c["name"] for c in report["checks"]] == [
        "entries balance", "reciprocity", "hub nets to zero", "hub never overdrawn",
        "hash chains"]

    async with _copy(month, infra.database_url) as copy:
        conn = await asyncpg.connect(copy.database_url)
        try:
            row = await conn.fetchrow(
                """UPDATE clearing.postings SET amount = amount + 0.01
                   WHERE agency = $1 AND sequence = 1 RETURNING entry_id""", CHANGCHUN)
        finally:
            await conn.close()
        broken = run(copy, tmp_path, "clearing", "check", code=1)
        assert not broken["ok"]
        assert broken["first_failure"].startswith("entries balance: entry " + row["entry_id"])
        chains = next(c for c in broken["checks"] if c["name"] == "hash chains")
        assert chains["problems"] == [
            f"ledger {CHANGCHUN}: the hash chain breaks at sequence 1 "
            f"(entry {row['entry_id']}, line 1)"]

    async with _copy(month, infra.database_url) as copy:
        conn = await asyncpg.connect(copy.database_url)
        try:
            await conn.execute(
                """UPDATE clearing.postings SET business_time = business_time + interval '1 s'
                   WHERE agency = $1 AND sequence = 3""", JILIN)
        finally:
            await conn.close()
        text = clearinghouse(copy, "clearing", "check", cache=tmp_path)
        assert text.returncode == 1
        assert f"ledger {JILIN}: the hash chain breaks at sequence 3" in text.stderr


@contextlib.asynccontextmanager
async def _copy(month: Month, admin_url: str) -> AsyncIterator[Month]:
    """A copy of the month's database (the services are stopped, so it can be a template),
    dropped when the block ends."""
    template = month.database_url.rpartition("/")[2]
    async with own_database(admin_url, template=template) as url:
        yield dataclasses.replace(month, database_url=url)
