"""The settlement service's tables (asyncpg); nothing else touches them."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
import orjson

from services.settlement.domain.accumulators import PersonState, from_document, to_document
from shared.filing_view import PersonFilings


async def load_persons(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, PersonState]:
    rows = await conn.fetch(
        "SELECT person_id, state FROM persons WHERE person_id = ANY($1::text[]) FOR UPDATE",
        list(set(ids)))
    return {r["person_id"]: from_document(orjson.loads(r["state"])) for r in rows}


async def save_persons(conn: asyncpg.Connection, states: dict[str, PersonState]) -> None:
    if states:
        await conn.execute(
            """INSERT INTO persons (person_id, state)
               SELECT * FROM unnest($1::text[], $2::jsonb[])
               ON CONFLICT (person_id) DO UPDATE SET state = excluded.state""",
            list(states),
            [orjson.dumps(to_document(s), default=str).decode() for s in states.values()])


async def load_views(conn: asyncpg.Connection, ids: Iterable[str]) -> dict[str, PersonFilings]:
    rows = await conn.fetch(
        "SELECT person_id, view FROM filing_views WHERE person_id = ANY($1::text[]) FOR UPDATE",
        list(set(ids)))
    return {r["person_id"]: PersonFilings.from_json(r["view"]) for r in rows}


async def save_views(conn: asyncpg.Connection, views: dict[str, PersonFilings]) -> None:
    if views:
        await conn.execute(
            """INSERT INTO filing_views (person_id, view)
               SELECT * FROM unnest($1::text[], $2::jsonb[])
               ON CONFLICT (person_id) DO UPDATE SET view = excluded.view""",
            list(views), [v.to_json() for v in views.values()])


async def claim_settlement_ids(conn: asyncpg.Connection, claims: Iterable[tuple[str, str, str]]
                               ) -> dict[tuple[str, str], str]:
    """Claim many (hospital, settlement_id) for their persons in one statement, the first
    claim of a pair in `claims` before later ones; return the owner of every pair (the
    person who had it already, or the claimant)."""
    first: dict[tuple[str, str], str] = {}
    for hospital, settlement_id, person_id in claims:
        first.setdefault((hospital, settlement_id), person_id)
    if not first:
        return {}
    rows = await conn.fetch(
        """INSERT INTO settlement_ids
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
           ON CONFLICT (hospital, settlement_id) DO UPDATE
           SET person_id = settlement_ids.person_id
           RETURNING hospital, settlement_id, person_id""",
        [k[0] for k in first], [k[1] for k in first], list(first.values()))
    return {(r["hospital"], r["settlement_id"]): r["person_id"] for r in rows}
