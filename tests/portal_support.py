"""The portal as a user runs it (`clearinghouse serve portal` in its own process), for the
portal's API and browser tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from shared.config import REPO_ROOT
from tests.helpers import stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_user(env: dict[str, str], login: str, password: str) -> None:
    """`clearinghouse portal users add LOGIN --password-stdin`, as an operator would."""
    done = subprocess.run([sys.executable, "-m", "cli", "portal", "users", "add",
                           login, "--password-stdin"], input=password + "\n", text=True,
                          env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr


@contextlib.asynccontextmanager
async def running_portal(env: dict[str, str], log: Path) -> AsyncIterator[str]:
    """Start the portal with `env` (DATABASE_URL, CLEARINGHOUSE_CACHE, ...); its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "portal", "--port", str(port)],
        env={**os.environ, **env}, cwd=REPO_ROOT, stdout=log.open("ab"),
        stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(300):  # up to about a minute for the process to listen
                assert process.poll() is None, log.read_text(errors="replace")[-3000:]
                try:
                    if (await client.get("/login")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"the portal never answered: {log.read_text()[-3000:]}")
        yield base
    finally:
        stop_process(process)


async def small_month(bootstrap: str, prefix: str, database_url: str
                      ) -> dict[str, dict[str, Any]]:
    """Three settlements of October 2026 between 长春 (220100) and 吉林 (220200) through the
    running filing, settlement and clearing services (the persons enrolled first), and the
    calendar to 2 November (daily reports and statements issued, nothing answered); the
    `settlement.completed` data by id."""
    from datetime import date

    from services.clearing import scheduler
    from shared import topics
    from tests.helpers import enrol, produce, read_topic
    from tests.integration.test_clearing_service import PERSONS, outpatient

    await enrol(bootstrap, prefix, [(p, a, "employee") for p, a in PERSONS], database_url)

    await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [
        outpatient("S1", "H220102001", "PJ1", "220200", "2026-10-03", "3000.00"),
        outpatient("S2", "H220102001", "PJ2", "220200", "2026-10-09", "1500.00"),
        outpatient("S3", "H220202001", "PC1", "220100", "2026-10-09", "800.00"),
    ])
    settled = await read_topic(bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                               until=lambda r: len(r) >= 3)
    completed = {e["data"]["settlement_id"]: e["data"] for e in (r.json() for r in settled)
                 if e["type"] == "settlement.completed"}
    assert set(completed) == {"S1", "S2", "S3"}, [r.json() for r in settled]
    await scheduler.advance(bootstrap, date(2026, 11, 2), prefix=prefix, start=date(2026, 10, 1))
    await read_topic(bootstrap, prefix + topics.CLEARING_RESULTS, timeout=90,
                     until=lambda rs: sum(r.json()["type"] == "clearing.statement_issued"
                                          for r in rs) >= 2)
    return completed


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     attempts: int = 300) -> None:
    """Until `check()` holds (the clearing service answers asynchronously); at most about a
    minute."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"never happened: {what}")
