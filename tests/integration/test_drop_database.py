"""shared.db.drop_database: a database is dropped even while sessions are still on it."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db import drop_database
from tests.conftest import Infra
from tests.helpers import own_database

pytestmark = pytest.mark.asyncio


async def _exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))


class _RefusesForce:
    """The live connection, except that the forced drop is refused as PostgreSQL refuses it
    when an autovacuum worker is on the database and the role may not signal it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.statements: list[str] = []

    async def execute(self, statement: str, *args: object) -> str:
        self.statements.append(statement)
        if statement.endswith("WITH (FORCE)"):
            raise asyncpg.InsufficientPrivilegeError(
                "must be a member of the role whose process is being terminated "
                "or member of pg_signal_backend")
        return await self.conn.execute(statement, *args)


@pytest.mark.parametrize("force_refused", [False, True], ids=["forced", "force-refused"])
async def test_a_database_with_a_session_on_it_is_dropped(infra: Infra,
                                                          force_refused: bool) -> None:
    async with own_database(infra.database_url) as url:  # drops it again if the test fails
        name = url.rpartition("/")[2]
        admin = await asyncpg.connect(infra.database_url)
        try:
            holder = await asyncpg.connect(url)
            try:
                conn = _RefusesForce(admin) if force_refused else admin
                await drop_database(conn, name)  # type: ignore[arg-type]
                assert not await _exists(admin, name)
                if force_refused:
                    assert any(s.startswith("SELECT pg_terminate_backend")
                               for s in conn.statements)
            finally:
                holder.terminate()
            await drop_database(admin, name)  # absent: nothing to do, no error
        finally:
            await admin.close()

async def test_the_local_role_may_end_autovacuum_workers(infra: Infra) -> None:
    """``infra up`` grants pg_signal_backend, so the forced drop is not refused because of
    an autovacuum worker (the cause of a CI failure in the test clean-up)."""
    if infra.origin != "local":
        pytest.skip("only the local infrastructure is set up by infra up")
    conn = await asyncpg.connect(infra.database_url)
    try:
        assert await conn.fetchval(
            "SELECT pg_has_role(current_user, 'pg_signal_backend', 'MEMBER')")
    finally:
        await conn.close()
