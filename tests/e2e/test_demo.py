"""`clearinghouse demo` end to end: a small province through the three services on the test
broker and database, as a user runs it (a subprocess), checked from its JSON summary."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from shared.config import REPO_ROOT
from shared.db import drop_database
from tests.security.leaks import leaks, leaks_in_files

pytestmark = pytest.mark.infra


async def test_a_small_demo_clears_its_month(infra, tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
           "DATABASE_URL": infra.database_url, "CLEARINGHOUSE_CACHE": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "demo", "--json", "--no-infra",
        "--persons", "150", "--settlements", "300", cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=150)
    except TimeoutError:
        process.terminate()
        await process.wait()
        raise
    summary = json.loads(out)
    try:
        assert process.returncode == 0, (summary, err.decode()[-2000:])
        assert summary["ok"] and all(c["ok"] for c in summary["checks"]), summary["checks"]

        statements = summary["statements"]
        assert len(statements) >= 2
        assert sum(Decimal(s["net"]) for s in statements) == 0
        instructions = summary["instructions"]
        into_hub = sum(Decimal(i["amount"]) for i in instructions if i["payee"] == "hub")
        out_of_hub = sum(Decimal(i["amount"]) for i in instructions if i["payer"] == "hub")
        assert into_hub == out_of_hub > 0
        nets = {s["agency"]: Decimal(s["net"]) for s in statements}
        for i in instructions:
            agency = i["payee"] if i["payer"] == "hub" else i["payer"]
            assert abs(nets[agency]) == Decimal(i["amount"])
        assert all(m.count(".") == 1 and len(m.split(".")[1]) == 2
                   for s in statements for m in (s["receivable"], s["payable"], s["net"]))

        notices = summary["difference_notices"]
        assert notices and any(n["carried_into"] for n in notices)
        counts = summary["counts"]
        assert counts["settlements_completed"] > 0 and counts["refunds"] > 0
        assert counts["resettlements"] > 0 and counts["held"] == 0

        recorded = json.loads((tmp_path / "last-demo.json").read_text())
        assert recorded["topic_prefix"] == summary["namespace"]["topic_prefix"]
        assert recorded["database_url"] == summary["namespace"]["database_url"]
        assert recorded["status"] == "ok"
        logs = Path(summary["namespace"]["logs"])
        assert {p.name for p in logs.iterdir()} >= {"filing.log", "settlement.log",
                                                     "clearing.log"}

        # An auditor replays the demo's log (found through last-demo.json): a full match,
        # and the same output twice.
        outputs = []
        for _ in range(2):
            audit = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli", "audit", "replay", "--json",
                cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            audit_out, audit_err = await asyncio.wait_for(audit.communicate(), timeout=120)
            assert audit.returncode == 0, (audit_out.decode()[-3000:], audit_err.decode()[-2000:])
            report = json.loads(audit_out)
            report.pop("run", None)
            outputs.append(report)
        assert outputs[0] == outputs[1]

        # No password in what the demo wrote or printed, nor in its services' logs or
        # the audit's output (issue 13, part 4).
        printed = {"demo stdout": out.decode(), "demo stderr": err.decode(),
                   "audit stdout": audit_out.decode(), "audit stderr": audit_err.decode()}
        found = {k: v for k, v in {n: leaks(t) for n, t in printed.items()}.items() if v}
        found |= leaks_in_files([tmp_path / "last-demo.json", logs])
        assert not found, found
    finally:
        database = summary.get("namespace", {}).get("database")
        if database:
            admin = await asyncpg.connect(infra.database_url)
            try:
                await drop_database(admin, database)
            finally:
                await admin.close()
