"""The settlement plan split into groups of persons (`tools.audit.stream.split_plan`): each
group keeps the plan's order and live transactions, and no split is made when a claim the
groups share (a hospital's settlement id, an event id) would fall into two of them."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from tests.helpers import own_database
from tools.audit import stream

pytestmark = pytest.mark.infra

SUBMISSIONS = "settlement.submissions"


def _persons_in_two_groups() -> tuple[str, str]:
    """Two person ids that `group_of` puts into different groups of two."""
    first = "P0"
    wanted = stream.group_of(None, _value("x", first, "S0"), 2)[0]
    for n in range(1, 100):
        other = f"P{n}"
        if stream.group_of(None, _value("x", other, "S0"), 2)[0] != wanted:
            return first, other
    raise AssertionError("no two groups")


def _value(event_id: str, person: str, settlement_id: str) -> bytes:
    return orjson.dumps({"id": event_id, "source": "hospital/H1", "type": "settlement.submitted",
                         "data": {"person_id": person, "hospital": "H1",
                                  "settlement_id": settlement_id}})


async def _staged(url: str, rows: list[tuple[str, str, str]]) -> None:
    """A plan of settlement.submissions records (event id, person, settlement id), one live
    transaction per two records."""
    conn = await asyncpg.connect(url)
    try:
        await stream.prepare(conn)
        for offset, (event_id, person, settlement_id) in enumerate(rows):
            await conn.execute(
                f"""INSERT INTO {stream.SCHEMA}.records VALUES
                    ($1, 0, $2, $3, $4, '[]', 0, 'hospital/H1', $5, $5)""",
                SUBMISSIONS, offset, person.encode(), _value(event_id, person, settlement_id),
                event_id)
            await conn.execute(f"INSERT INTO {stream.SCHEMA}.plan VALUES "
                               "('settlement', $1, $2, true, $3, 0, $4)",
                               offset + 1, offset // 2 + 1, SUBMISSIONS, offset)
        await stream.save_summary(conn, stream.PlanSummary("settlement", len(rows),
                                                           -(-len(rows) // 2)))
    finally:
        await conn.close()


async def _group_rows(url: str, name: str) -> list[tuple[int, int, int]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(
            f'SELECT ord, batch, "offset" FROM {stream.SCHEMA}.plan WHERE service = $1 '
            "ORDER BY ord", name)]
    finally:
        await conn.close()


async def test_each_group_keeps_the_order_and_the_live_transactions(infra) -> None:
    a, b = _persons_in_two_groups()
    rows = [("e0", a, "S0"), ("e1", b, "S1"), ("e2", b, "S2"), ("e3", a, "S3"),
            ("e4", a, "S4")]
    async with own_database(infra.database_url) as url:
        await _staged(url, rows)
        parts = await stream.split_plan(url, "settlement", 2)
        assert parts is not None
        by_offsets = {p.service: await _group_rows(url, p.service) for p in parts}
        groups = sorted(by_offsets.values(), key=lambda g: g[0][2])
        # person a: offsets 0, 3, 4 (live transactions 1, 2, 3); person b: 1, 2 (1, 2)
        assert groups == [[(1, 1, 0), (2, 2, 3), (3, 3, 4)], [(1, 1, 1), (2, 2, 2)]]
        assert sorted((p.records, p.batches) for p in parts) == [(2, 2), (3, 3)]
        assert [p.service for p in await stream.saved_groups(url, "settlement")] == [
            "settlement/0", "settlement/1"]


@pytest.mark.parametrize("shared", ["settlement id", "event id"])
async def test_no_split_when_a_shared_claim_falls_into_two_groups(infra, shared: str) -> None:
    a, b = _persons_in_two_groups()
    second = ("e1", b, "S0") if shared == "settlement id" else ("e0", b, "S1")
    async with own_database(infra.database_url) as url:
        await _staged(url, [("e0", a, "S0"), second, ("e2", a, "S2")])
        assert await stream.split_plan(url, "settlement", 2) is None
        assert await stream.saved_groups(url, "settlement") == []


async def test_services_whose_state_is_not_per_person_are_not_split(infra) -> None:
    async with own_database(infra.database_url) as url:
        await _staged(url, [("e0", "P0", "S0"), ("e1", "P1", "S1")])
        assert await stream.split_plan(url, "clearing", 2) is None
        assert await stream.split_plan(url, "settlement", 1) is None
