"""The portal as a user runs it (`clearinghouse serve portal` in its own process), for the
portal's API and browser tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from shared.config import REPO_ROOT
from tests.helpers import stop_process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_user(env: dict[str, str], login: str, password: str) -> None:
    """`clearinghouse portal users add LOGIN --password-stdin`, as an operator would."""
    done = subprocess.run([sys.executable, "-m", "services.cli", "portal", "users", "add",
                           login, "--password-stdin"], input=password + "\n", text=True,
                          env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr


@contextlib.asynccontextmanager
async def running_portal(env: dict[str, str], log: Path) -> AsyncIterator[str]:
    """Start the portal with `env` (DATABASE_URL, CLEARINGHOUSE_CACHE, ...); its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "portal", "--port", str(port)],
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
