"""`clearinghouse bench` at tiny sizes: every figure is produced and every settlement is
accounted for (its outcome on settlement.events, taken in by clearing, an item per
completion and refund)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shared.messaging import clients as kafka_clients
from tests.helpers import processes_with_env
from tests.security.leaks import leaks, leaks_in_files
from tools.bench import province as pv
from tools.bench.report import markdown, rows
from tools.bench.runner import Bench, Sizes

pytestmark = pytest.mark.infra


def test_the_generated_province_loads_and_its_month_is_well_formed(tmp_path: Path) -> None:
    from shared.reference import load_reference

    province = pv.write_reference(tmp_path / "reference", hospitals=60)
    reference = load_reference(tmp_path / "reference")
    assert len(reference.agencies) == 20 and len(reference.hospitals) == 60
    people = pv.persons(province, 300)
    month = pv.month(province, people, 1000)
    kinds = [s.kind for s in month.submissions]
    assert kinds.count("settlement") == 1000
    assert kinds.count("refund") == month.refunds == 20
    assert kinds.count("resettlement") == month.resettlements == 10
    assert month.refunds_not_latest == 10  # half the refunds: not the person's latest
    settled: set[str] = set()
    refunded: set[str] = set()
    for s in month.submissions:  # a refund comes after its settlement, a re-settlement after
        data = orjson.loads(s.value)["data"]  # the refund
        if s.kind == "refund":
            assert data["settlement_id"] in settled
            refunded.add(data["settlement_id"])
            continue
        if s.kind == "resettlement":
            assert data["resettles"] in refunded
        assert 1 <= len(data["items"]) <= 20
        settled.add(data["settlement_id"])

# The bench also runs three loads below capacity and a month with 3 instances of each
# service (9 processes to start and stop): beyond the 300 s default on a busy machine.
@pytest.mark.timeout(600)
async def test_quick_bench_accounts_for_every_settlement(infra, tmp_path: Path) -> None:
    sizes = Sizes(persons=300, hospitals=60, settlements=400, repeat=2, latency_rate=400,
                  latency_seconds=1.0, latency_repeat=1, cycle_settlements=1000, cycle_repeat=1,
                  baseline_repeat=1)
    bench = Bench(sizes, bootstrap=infra.kafka_bootstrap, database_url=infra.database_url,
                  workdir=tmp_path)
    results = (await bench.run()).as_dict()

    accounting = results["accounting"]
    # two throughput months, one latency month at the fixed rate, three at 25/50/75 % of
    # the measured capacity, one with 3 instances of each service (issue 14)
    assert len(accounting) == 7
    signatures = results["signatures"]  # pairs of runs, signatures on and off
    assert signatures["ratio_on_to_off"] > 0
    assert len(signatures["accounting"]) == 2 * signatures["pairs"]
    for month in signatures["accounting"]:
        assert month["accounted"], month
    for month in accounting:
        assert month["accounted"], month
        assert month["missing_outcomes"] == 0 and month["duplicated_outcomes"] == 0
        assert month["taken_by_clearing"] == month["submitted"]
        outcomes = month["outcomes"]
        assert sum(outcomes.values()) == month["submitted"]
        assert (outcomes.get("settlement.completed", 0) + outcomes.get("settlement.rejected", 0)
                == month["settlements"] + month["resettlements"])
        assert month["items"].get("settlement", 0) == outcomes.get("settlement.completed", 0)
        assert month["items"].get("refund", 0) == outcomes.get("settlement.refunded", 0)

    runs = results["throughput"]["runs"]
    assert [r["settlements"] for r in runs] == [404, 404]
    assert results["throughput"]["settlements_per_s"]["n"] == 2
    assert all(r["postings"] > 0 for r in runs)
    latency = results["latency"]["runs"][0]
    assert latency["completed_ms"]["count"] == latency["ledger_ms"]["count"] > 0
    loads = results["latency"]["loads"]
    capacity = results["latency"]["capacity_events_per_s"]
    assert capacity == results["throughput"]["events_per_s"]["median"]
    assert [load["share"] for load in loads] == [0.25, 0.5, 0.75]
    for load in loads:
        assert load["rate"] == load["share"] * capacity
        assert load["completed_ms"]["count"] > 0 and load["ledger_ms"]["count"] > 0
    scaled = results["instances"]
    assert scaled["instances"] == 3 and scaled["run"]["settlements"] == 404
    assert scaled["ratio"] == (scaled["scaled_settlements_per_s"]
                               / results["throughput"]["settlements_per_s"]["median"])
    assert any("3 instances ÷ 1 instance" in r[0] for r in rows(results))
    assert any("50% of capacity" in r[0] for r in rows(results))
    assert results["clearing"]["runs"][0]["events"] == 1000 + 1000 // 50
    assert results["clearing"]["statements_s"]["n"] == 1
    assert set(results["memory"]["peak_rss_mb"]) == {"filing", "settlement", "clearing"}
    assert results["baselines"]["consumer"]["messages"] >= 2 * 400
    assert results["baselines"]["copy"]["rows"] > 0
    assert results["baselines"]["ratio_to_consumer"] > 0
    assert results["baselines"]["ratio_to_copy"] > 0
    # issue 17: the enrolment import rate, and the throughput with the registry check
    # against a run without it in the same bench
    imported = results["throughput"]["enrolment_import"]
    assert imported["rows"] == 300 and imported["rows_per_s"] > 0
    registry = results["throughput"]["registry_check"]
    assert registry["off_accounted"] and registry["ratio_on_to_off"] > 0
    table = rows(results)
    assert any(r[0].startswith("1. end-to-end") for r in table)
    assert any("registry check" in r[0] for r in table)
    assert any("enrolment import rows/s" in r[0] for r in table)
    assert "| figure |" in markdown(results, None)
    # No password in the bench's report, its services' logs or anything it wrote.
    report = orjson.dumps(results).decode() + markdown(results, None)
    assert not leaks(report) and not leaks_in_files([tmp_path])


def _services(namespace: str) -> list[int]:
    """The service processes of a bench namespace."""
    return processes_with_env(f"CLEARINGHOUSE_GROUP_PREFIX={namespace}")


async def test_a_bench_stopped_with_sigterm_removes_its_services_database_and_topics(
        infra, tmp_path: Path) -> None:
    import asyncio
    import os
    import re
    import signal
    import sys
    import time

    import asyncpg

    from shared.config import REPO_ROOT

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
           "DATABASE_URL": infra.database_url, "TMPDIR": str(tmp_path)}
    bench = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "bench", "--quick", "--only", "pipeline",
        "--no-audit", "--json", str(tmp_path / "out.json"), cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert bench.stderr is not None
    namespace, said = None, []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until its three services run
            if namespace is None:
                line = (await asyncio.wait_for(bench.stderr.readline(), 60)).decode()
                said.append(line)
                found = re.search(r"namespace (bench_[0-9a-f]+)", line)
                namespace = found.group(1) if found else None
            elif len(_services(namespace)) == 3:
                break
            else:
                await asyncio.sleep(0.1)
        assert namespace is not None and len(_services(namespace)) == 3, said
        bench.send_signal(signal.SIGTERM)
        rest = (await asyncio.wait_for(bench.stderr.read(), 90)).decode()
        assert await bench.wait() == 130, rest
    finally:
        if bench.returncode is None:
            bench.kill()
    assert "interrupted" in rest and "Traceback" not in rest, rest
    assert _services(namespace) == []
    conn = await asyncpg.connect(infra.database_url)
    try:
        assert not await conn.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = $1", namespace)
    finally:
        await conn.close()
    admin = kafka_clients.admin(infra.kafka_bootstrap)
    await admin.start()
    try:
        assert not [t for t in await admin.list_topics() if t.startswith(namespace + ".")]
    finally:
        await admin.close()
    assert not (tmp_path / "out.json").exists()
