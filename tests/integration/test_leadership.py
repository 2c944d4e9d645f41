"""shared/messaging/leadership.py against a real PostgreSQL: one holder, a standby, and what
a holder does when its lock connection ends (an outage: regain; another took it: end)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.messaging.leadership import ACTIVE_QUERY, Leadership, lock_name

pytestmark = pytest.mark.infra


async def _backend_of(admin: asyncpg.Connection, pid: int) -> int:
    """The server process of the lock connection of client process `pid`."""
    return await admin.fetchval(
        "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() "
        "AND a.application_name = $1", f"leader:probe:{pid}")


async def _until(condition, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_one_holds_the_other_waits_and_takes_over(fresh_database) -> None:
    first = Leadership(fresh_database, "probe", poll=0.1)
    second = Leadership(fresh_database, "probe", poll=0.1)
    await first.acquire()
    waiting = asyncio.create_task(second.acquire())
    await asyncio.sleep(0.5)
    assert first.held and not waiting.done()
    admin = await asyncpg.connect(fresh_database)
    try:
        assert await admin.fetch(ACTIVE_QUERY, "probe") != []
        await first.release()
        await asyncio.wait_for(waiting, 10)
        assert second.held
    finally:
        await second.release()
        await admin.close()


async def test_a_holder_whose_connection_ends_regains_the_free_lock(fresh_database) -> None:
    import os

    lost: list[bool] = []
    holder = Leadership(fresh_database, "probe", poll=0.1, on_lost=lambda: lost.append(True))
    await holder.acquire()
    admin = await asyncpg.connect(fresh_database)
    try:
        backend = await _backend_of(admin, os.getpid())
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", backend)
        deadline = asyncio.get_running_loop().time() + 20
        while await _backend_of(admin, os.getpid()) in (None, backend):  # a new session
            assert asyncio.get_running_loop().time() < deadline, "the lock was not regained"
            await asyncio.sleep(0.05)
        await asyncio.wait_for(holder.wait_held(), 10)
        assert holder.held and lost == []
    finally:
        await holder.release()
        await admin.close()


async def test_a_holder_whose_lock_was_taken_meanwhile_ends(fresh_database) -> None:
    import os

    lost: list[bool] = []
    holder = Leadership(fresh_database, "probe", poll=0.1, on_lost=lambda: lost.append(True))
    await holder.acquire()
    admin = await asyncpg.connect(fresh_database)
    rival = await asyncpg.connect(fresh_database)
    try:
        # the rival queues for the lock: PostgreSQL grants it the moment the holder's
        # session ends, before the holder can try again
        queued = asyncio.create_task(rival.fetchval(
            "SELECT pg_advisory_lock(hashtext($1))", lock_name("probe")))
        await asyncio.sleep(0.3)
        assert not queued.done()
        backend = await _backend_of(admin, os.getpid())
        await admin.fetchval("SELECT pg_terminate_backend($1)", backend)
        await asyncio.wait_for(queued, 10)
        await _until(lambda: lost == [True])
        assert not holder.held
    finally:
        await holder.release()
        for conn in (admin, rival):
            await conn.close()


async def test_a_holder_whose_own_old_session_keeps_the_lock_ends_it_and_regains(
        fresh_database) -> None:
    """The lock connection stopped answering (a loaded machine) while the server still keeps
    its session and the lock: that is this process's own session, not another instance, so
    the holder ends it and takes the lock again instead of exiting."""
    import os

    from shared.messaging.leadership import application_name

    lost: list[bool] = []
    holder = Leadership(fresh_database, "probe", poll=0.1, on_lost=lambda: lost.append(True))
    stale = await asyncpg.connect(fresh_database, server_settings={
        "application_name": application_name("probe", os.getpid())})
    try:
        assert await stale.fetchval("SELECT pg_try_advisory_lock(hashtext($1))",
                                    lock_name("probe"))
        await asyncio.wait_for(holder._regain(), 20)
        assert holder.held and lost == []
        assert stale.is_closed() or await _closed(stale)
    finally:
        await holder.release()
        stale.terminate()


async def _closed(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
        return True
    return False
