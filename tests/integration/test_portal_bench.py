"""`python3 -m tools.bench.portal` at a tiny size: the filled cycle is what the clearing service
would have stored (the drill-down's totals add up to the statements computed from it), the
drill-down's pages read from either end give every item once and in order, and the bench
measures every page through the real portal server (figures not asserted: no timing in
tests)."""

from __future__ import annotations

import pytest

from services.clearing import queries
from services.portal import reads
from tools.bench import portal as bench_portal

pytestmark = pytest.mark.infra


async def test_the_filled_cycle_adds_up_and_pages_from_both_ends(fresh_database) -> None:
    filled = await bench_portal.fill(fresh_database, 400)
    assert filled.items >= 400 and filled.counterpart and filled.settlement_id
    conn = await queries.connect(fresh_database)
    try:
        statement = await reads.statement(conn, bench_portal.AGENCY, bench_portal.CYCLE)
        explained = await reads.items(conn, bench_portal.AGENCY, reads.Search(
            cycle=bench_portal.CYCLE))
        assert explained["explanation"]["adds_up"]
        assert explained["explanation"]["total"]["net"] == statement["net"]
        assert explained["matching"] == filled.agency_items

        everything, matching = await queries.items_page(
            conn, bench_portal.AGENCY, cycle=bench_portal.CYCLE, limit=10_000)
        assert matching == len(everything) == filled.agency_items
        assert [(i.business_date, i.item_id) for i in everything] == sorted(
            (i.business_date, i.item_id) for i in everything)
        size = 7  # pages in the second half are read backwards from the end
        paged = []
        for page in range(-(-matching // size) + 1):  # and one past the end: empty
            found, counted = await queries.items_page(
                conn, bench_portal.AGENCY, cycle=bench_portal.CYCLE, limit=size,
                offset=page * size)
            assert counted == matching
            paged.extend(found)
        assert [i.item_id for i in paged] == [i.item_id for i in everything]
        line, _ = await queries.items_page(conn, bench_portal.AGENCY, cycle=bench_portal.CYCLE,
                                           counterpart=filled.counterpart, limit=3,
                                           offset=max(0, explained["matching"] - 3))
        assert all(filled.counterpart in (i.care_agency, i.insured_agency) for i in line)

        person = await reads.items(conn, bench_portal.AGENCY, reads.Search(q=filled.person_id))
        assert person["person_search"] == "used" and person["matching"] >= 1
    finally:
        await conn.close()


async def test_the_bench_measures_every_page_at_a_tiny_size(infra, tmp_path) -> None:
    result = await bench_portal.run_size(infra.database_url, 300, repeat=2, workdir=tmp_path)
    assert result["all_ok"], [(p["page"], p["status"]) for p in result["pages"]
                              if p["status"] != 200]
    names = [p["page"] for p in result["pages"]]
    assert names[0].startswith("baseline")
    assert any(n.startswith("drill-down cycle, last page") for n in names)
    assert any(n.startswith("auditor") for n in names)
    assert all(p["n"] == 2 and p["max_ms"] >= p["p50_ms"] > 0 for p in result["pages"])
    assert result["target_ms"] == bench_portal.DEMO_TARGET_MS
    assert "| baseline: GET /api/me |" in bench_portal.table(result)
