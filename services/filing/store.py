"""The filing service's tables (asyncpg); nothing else touches them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import asyncpg

from services.filing.domain.state import PersonFilingState, next_deadline


async def load_persons(conn: asyncpg.Connection, person_ids: Iterable[str]
                       ) -> dict[str, PersonFilingState]:
    rows = await conn.fetch(
        "SELECT person_id, state FROM persons WHERE person_id = ANY($1::text[]) FOR UPDATE",
        list(set(person_ids)),
    )
    return {r["person_id"]: PersonFilingState.from_json(r["state"]) for r in rows}


async def save_persons(conn: asyncpg.Connection, states: dict[str, PersonFilingState]) -> None:
    if not states:
        return
    await conn.execute(
        """INSERT INTO persons (person_id, state, next_deadline)
           SELECT * FROM unnest($1::text[], $2::jsonb[], $3::date[])
           ON CONFLICT (person_id) DO UPDATE
           SET state = excluded.state, next_deadline = excluded.next_deadline""",
        list(states), [s.to_json() for s in states.values()],
        [next_deadline(s) for s in states.values()],
    )


async def persons_due(conn: asyncpg.Connection, today: date) -> list[str]:
    rows = await conn.fetch(
        "SELECT person_id FROM persons WHERE next_deadline <= $1 ORDER BY person_id", today)
    return [r["person_id"] for r in rows]


async def start_day(conn: asyncpg.Connection, day: date) -> bool:
    """True the first time `day` starts here."""
    return bool(await conn.fetchval(
        "INSERT INTO days_started VALUES ($1) ON CONFLICT DO NOTHING RETURNING true", day))


async def claim_filing_ids(conn: asyncpg.Connection,
                           claims: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Claim many filing ids for their persons in one statement, the first claim of an id
    in `claims` before later ones; return the owner of every id (the person who had it
    already, or the claimant)."""
    first: dict[str, str] = {}
    for filing_id, person_id in claims:
        first.setdefault(filing_id, person_id)
    if not first:
        return {}
    rows = await conn.fetch(
        """INSERT INTO filing_ids (filing_id, person_id)
           SELECT * FROM unnest($1::text[], $2::text[])
           ON CONFLICT (filing_id) DO UPDATE SET person_id = filing_ids.person_id
           RETURNING filing_id, person_id""", list(first), list(first.values()))
    return {r["filing_id"]: r["person_id"] for r in rows}
