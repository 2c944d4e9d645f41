"""Dropping a database that other sessions may still be on.

``DROP DATABASE ... WITH (FORCE)`` terminates every other backend on the database, and
PostgreSQL refuses it outright (``InsufficientPrivilegeError``) when one of them belongs to a
role the caller may not signal: an autovacuum worker counts as such unless the caller is a
member of ``pg_signal_backend`` (``clearinghouse infra up`` grants that to its role; a server
set up by other means may not). A plain ``DROP DATABASE`` ends autovacuum workers by itself but
fails while a client session is still connected. ``drop_database`` does what works: the forced
drop, and when that is refused, ending the sessions of its own role and a plain drop, retried
while the server reports the database in use.
"""

from __future__ import annotations

import asyncio

import asyncpg


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def drop_database(conn: asyncpg.Connection, name: str, *, attempts: int = 20) -> None:
    """Drop database ``name`` if it exists, over ``conn`` (a session on another database).
    Raises the server's last error when it is still refused after ``attempts`` tries."""
    statement = f"DROP DATABASE IF EXISTS {_quoted(name)}"
    try:
        await conn.execute(statement + " WITH (FORCE)")
        return
    except asyncpg.InsufficientPrivilegeError:
        pass
    for attempt in range(attempts):
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()",
            name,
        )
        try:
            await conn.execute(statement)
            return
        except asyncpg.ObjectInUseError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.1 * (attempt + 1))
