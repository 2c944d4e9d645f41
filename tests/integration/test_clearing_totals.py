"""The statement day adds a cycle up in PostgreSQL (`store.cycle_totals`); the domain does
the same in Python (`cycles.cycle_totals`, what `InMemoryBook` and a replay use). Both must
give the same lines, counts, positions and checksums, hence byte-identical statements."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from services.clearing import store
from services.clearing.app import SPEC as CLEARING
from services.clearing.domain.cycles import cycle_totals, statements_from_totals
from services.clearing.domain.items import ClearingItem, ItemKind
from services.clearing.domain.ledger import EventRef
from shared.db import apply_migrations, create_pool

pytestmark = pytest.mark.infra

AGENCIES = ("220100", "220200", "220281", "220500", "220600")


def _items(rng: random.Random, count: int) -> list[ClearingItem]:
    items = []
    for n in range(count):
        insured, care = rng.sample(AGENCIES, 2)
        kind = ItemKind.REFUND if rng.random() < 0.2 else ItemKind.SETTLEMENT
        origin = rng.choice(["2026-09", "2026-10", "2026-10", "2026-10"])
        cycle = rng.choice(["2026-10", "2026-10", "2026-11"]) if origin == "2026-10" else "2026-10"
        # ids with digits, letters, a non-ASCII one and repeats: byte order matters
        settlement_id = rng.choice([f"S{rng.randrange(400)}", f"s{rng.randrange(50)}",
                                    f"X-{rng.randrange(9)}", "Ä1", "S10", "S9"])
        fen = rng.choice([0, 1, 99, rng.randrange(10**9)])
        fund = Decimal(fen * 7 // 10) / 100
        account = Decimal(fen) / 100 - fund
        items.append(ClearingItem(
            item_id=f"{kind.value}#H{n}#{settlement_id}", kind=kind, hospital=f"H{n % 7}",
            settlement_id=settlement_id, insured_agency=insured, care_agency=care,
            business_time=datetime(2026, 10, 1, tzinfo=UTC) + timedelta(hours=n),
            origin_cycle=origin, cycle=cycle, fund_pay=fund, account_pay=account,
            cash_pay=Decimal("1.00"), cleared_amount=Decimal(fen) / 100,
            cause=EventRef("service/settlement", f"e{n}"),
            refund_id=f"R{n}" if kind is ItemKind.REFUND else None,
            reported_on=date(2026, 10, 2) if n % 3 else None))
    return items


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_database_adds_a_cycle_up_like_the_domain(fresh_database: str,
                                                            seed: int) -> None:
    pool = await create_pool(fresh_database, "clearing", max_size=2)
    try:
        await apply_migrations(pool, CLEARING.migrations)
        items = _items(random.Random(seed), 3000)
        async with pool.acquire() as conn:
            writes = store.Writes()
            for item in items:
                writes.items[item.item_id] = item
            await writes.flush(conn)
            for cycle in ("2026-10", "2026-11", "2026-12"):
                got = await store.cycle_totals(conn, cycle)
                want = cycle_totals(cycle, items)
                assert got == want, cycle
                assert ([s.model_dump_json() for s in statements_from_totals(cycle, got, {}, {})]
                        == [s.model_dump_json()
                            for s in statements_from_totals(cycle, want, {}, {})])
                amounts = [v for line in got.lines.values() for t in line.values()
                           for v in (t.receivable, t.payable, t.adjustments,
                                     t.position.receivable, t.position.payable)]
                assert all(v.as_tuple().exponent == -2 for v in amounts)  # to the fen
    finally:
        await pool.close()


async def test_the_refunds_of_a_settlement_stored_and_not_yet_stored(
        fresh_database: str) -> None:
    """`Tables.refund_items` (a re-settlement's original's refunds, for `carried_into`) reads
    the rows written and those of the same transaction not written yet."""
    pool = await create_pool(fresh_database, "clearing", max_size=2)
    try:
        await apply_migrations(pool, CLEARING.migrations)
        items = [i for i in _items(random.Random(4), 200) if i.kind is ItemKind.REFUND]
        first, other = items[0], items[1]
        same = [i for i in items if (i.hospital, i.settlement_id)
                == (first.hospital, first.settlement_id)]
        later = ClearingItem(**{**first.__dict__, "item_id": "refund#late", "cycle": "2026-12"})
        async with pool.acquire() as conn:
            tables = store.Tables(conn, lambda *_: None)
            writes = tables._writes
            for item in items:
                writes.items[item.item_id] = item
            await tables.flush()
            writes.items[later.item_id] = later  # in the transaction, not written yet
            got = await tables.refund_items(first.hospital, first.settlement_id)
            assert sorted(i.item_id for i in got) == sorted(
                [i.item_id for i in same] + [later.item_id])
            assert got == [i for i in got if i.kind is ItemKind.REFUND]
            assert other.item_id not in {i.item_id for i in got} or (
                (other.hospital, other.settlement_id) == (first.hospital, first.settlement_id))
            assert await store.refund_items(conn, "H-none", "S-none") == []
    finally:
        await pool.close()
