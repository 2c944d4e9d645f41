"""One active instance of a service whose state is not partitioned like its input.

The clearing service keeps one set of ledgers for all agencies and orders its inputs across
partitions (shared/messaging/sequencer.py); two instances sharing its consumer group would
each see part of the log and decide days on half of it. So of its instances exactly one is
*active*: the one holding a PostgreSQL advisory lock on a connection of its own. The others
wait on standby, outside the consumer group, and the first to get the lock after the
leader's connection ends (a crash, kill -9, a stopped machine: PostgreSQL ends the session
and frees the lock) takes over, from the positions the leader committed in the database.

A leader that loses its lock connection while alive can no longer know that it is alone:
it decides nothing more until it holds the lock again (a PostgreSQL outage: it takes it back
when the server returns), and ends its process (`LOST_EXIT_CODE`) if another instance has
taken it meanwhile, so that two instances do not decide at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger(__name__)

#: The exit status of a leader whose lock connection was lost (a supervisor restarts it).
LOST_EXIT_CODE = 75


def lock_name(service: str) -> str:
    return f"leader:{service}"


def application_name(service: str, pid: int) -> str:
    """What the lock connection calls itself in ``pg_stat_activity``: an operator (or a
    test) finds the active instance's process there (`ACTIVE_QUERY`)."""
    return f"{lock_name(service)}:{pid}"


#: The process id of the instance that holds `service`'s leadership, on its database.
ACTIVE_QUERY = """
SELECT split_part(a.application_name, ':', 3)::int
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
  AND a.application_name LIKE 'leader:' || $1 || ':%'
"""


class Leadership:
    """Wait for, hold and watch the advisory lock of `service` on the database at `url`.

    The lock connection's end is noticed at once (asyncpg's termination listener, and a
    query every `watch` seconds besides). Then the instance pauses (`wait_held` blocks the
    next batch) and tries to take the lock again: PostgreSQL gone for a while (an outage),
    it waits and takes it back when the server returns; another instance holding it by then,
    this one ends its process (`on_lost`, by default exit status `LOST_EXIT_CODE`)."""

    def __init__(self, url: str, service: str, *, poll: float = 1.0, watch: float = 2.0,
                 on_lost: Callable[[], None] | None = None):
        self._url, self.service = url, service
        self._poll, self._watch = poll, watch
        self._on_lost = on_lost or _exit_now
        self._conn: asyncpg.Connection | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._regained = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def acquire(self) -> None:
        """Return once this instance is the active one (waiting on standby until then)."""
        announced = False
        while not await self._try():
            if not announced:
                log.info("leadership.standby", service=self.service, pid=os.getpid())
                announced = True
            await asyncio.sleep(self._poll)
        log.info("leadership.acquired", service=self.service, pid=os.getpid())
        self._watcher = asyncio.create_task(self._watch_lock(), name=f"{self.service}-leader")

    async def wait_held(self) -> None:
        """Return at once while the lock is held; after it was lost, once it is back."""
        while not self.held:
            self._regained.clear()
            await self._regained.wait()

    async def _try(self) -> bool | None:
        """Take the lock if free: True; held by another: False; database unreachable: None."""
        try:
            conn = await asyncpg.connect(self._url, server_settings={
                "application_name": application_name(self.service, os.getpid())})
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("leadership.unavailable", service=self.service, error=repr(error))
            return None
        try:
            if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))",
                                   lock_name(self.service)):
                conn.add_termination_listener(self._terminated)
                self._conn = conn
                return True
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("leadership.unavailable", service=self.service, error=repr(error))
            await _close(conn)
            return None
        await _close(conn)
        return False

    def _terminated(self, conn: asyncpg.Connection) -> None:
        """The lock connection ended: regain now rather than at the watch's next tick."""
        if conn is not self._conn or self._watcher is None:
            return  # closed by `release` or `_regain` itself
        self._watcher.cancel()
        self._watcher = asyncio.get_running_loop().create_task(self._regain())

    async def _watch_lock(self) -> None:
        while True:
            await asyncio.sleep(self._watch)
            try:
                assert self._conn is not None
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), timeout=self._watch * 3)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - any failure: the lock may be gone
                break
        await self._regain()

    async def _regain(self) -> None:
        """Paused (no batch is decided) until the lock is back; gone to another: end."""
        lost, self._conn = self._conn, None
        if lost is not None:
            lost.terminate()
        log.error("leadership.lost", service=self.service, pid=os.getpid())
        while True:
            taken = await self._try()
            if taken:
                log.info("leadership.regained", service=self.service, pid=os.getpid())
                self._regained.set()
                self._watcher = asyncio.create_task(self._watch_lock(),
                                                    name=f"{self.service}-leader")
                return
            if taken is False and not await self._end_own_stale_session():
                log.error("leadership.taken_over", service=self.service, pid=os.getpid())
                self._on_lost()
                return
            await asyncio.sleep(self._poll)

    async def _end_own_stale_session(self) -> bool:
        """Whether the lock is held by this process's own former lock connection (one that
        stopped answering, say on a loaded machine, while the server still keeps its
        session): then that session is ended and the lock taken again at the next try.
        False when another instance holds it (or the database cannot tell)."""
        try:
            conn = await asyncpg.connect(self._url)
        except (OSError, asyncpg.PostgresError):
            return True  # unreachable again: keep trying, nobody can take it meanwhile
        try:
            holder = await conn.fetchval(ACTIVE_QUERY, self.service)
            if holder != os.getpid():
                return False
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                application_name(self.service, os.getpid()))
            log.warning("leadership.stale_session_ended", service=self.service,
                        pid=os.getpid())
            return True
        except (OSError, asyncpg.PostgresError):
            return True
        finally:
            await _close(conn)

    async def release(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await _close(conn)


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=2)
    except Exception:  # noqa: BLE001
        conn.terminate()


def _exit_now() -> None:
    os._exit(LOST_EXIT_CODE)
