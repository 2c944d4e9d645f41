"""One active instance of a service whose state is not partitioned like its input.

The clearing service keeps one set of ledgers for all agencies and orders its inputs across
partitions (shared/messaging/sequencer.py); two instances sharing its consumer group would
each see part of the log and decide days on half of it. So of its instances exactly one is
*active*: the one holding a PostgreSQL advisory lock on a connection of its own. The others
wait on standby, outside the consumer group, and the first to get the lock after the
leader's connection ends (a crash, kill -9, a stopped machine: PostgreSQL ends the session
and frees the lock) takes over, from the positions the leader committed in the database.

A leader that loses its lock connection while alive can no longer know that it is alone:
it ends its process at once (`LOST_EXIT_CODE`), so that at no moment two instances decide.
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
    """Wait for, hold and watch the advisory lock of `service` on the database at `url`."""

    def __init__(self, url: str, service: str, *, poll: float = 1.0, watch: float = 2.0,
                 on_lost: Callable[[], None] | None = None):
        self._url, self.service = url, service
        self._poll, self._watch = poll, watch
        self._on_lost = on_lost or _exit_now
        self._conn: asyncpg.Connection | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def acquire(self) -> None:
        """Return once this instance is the active one (waiting on standby until then)."""
        announced = False
        while True:
            try:
                conn = await asyncpg.connect(self._url, server_settings={
                    "application_name": application_name(self.service, os.getpid())})
                if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))",
                                       lock_name(self.service)):
                    self._conn = conn
                    break
                await conn.close()
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("leadership.unavailable", service=self.service, error=repr(error))
            if not announced:
                log.info("leadership.standby", service=self.service, pid=os.getpid())
                announced = True
            await asyncio.sleep(self._poll)
        log.info("leadership.acquired", service=self.service, pid=os.getpid())
        self._watcher = asyncio.create_task(self._watch_lock(), name=f"{self.service}-leader")

    async def _watch_lock(self) -> None:
        assert self._conn is not None
        while True:
            await asyncio.sleep(self._watch)
            try:
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), timeout=self._watch * 3)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure: the lock may be gone
                log.error("leadership.lost", service=self.service, error=repr(error))
                self._on_lost()
                return

    async def release(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), timeout=2)
            self._conn = None


def _exit_now() -> None:
    os._exit(LOST_EXIT_CODE)
