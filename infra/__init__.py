"""Local infrastructure for development and tests: a real PostgreSQL server and a
real Apache Kafka broker run as plain, detached processes (no Docker).

Entry points are in :mod:`infra.local` (``up``/``down``/``status``). This module
holds the small process helpers that :mod:`infra.kafka` and :mod:`infra.postgres`
share: detached spawning, pid files, liveness checks and graceful stopping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Popen objects of servers started by this process, kept so that Python neither warns
#: "subprocess is still running" when they would be garbage-collected nor loses them.
_CHILDREN: list[subprocess.Popen[bytes]] = []


class InfraError(RuntimeError):
    """A local server could not be set up, started or reached."""


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process. Reaps it if it is our own child."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid`` (empty if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def read_port(pid_file: Path) -> int | None:
    """The port recorded next to the pid in ``pid_file`` (see :func:`spawn_detached`)."""
    try:
        return int(pid_file.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def read_pid(pid_file: Path, marker: str) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive and its command line
    contains ``marker`` (guards against a recycled pid); otherwise None."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid_alive(pid) and any(marker in part for part in cmdline(pid)):
        return pid
    return None


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


#: A server's log past this size at its start is moved aside (one old copy kept): the
#: broker logs every topic created and deleted, and tests make many.
LOG_ROTATE_BYTES = 64 * 1024 * 1024


def rotate_log(log_file: Path, max_bytes: int = LOG_ROTATE_BYTES) -> bool:
    """Move ``log_file`` to ``<name>.1`` (replacing an older one) if it is over
    ``max_bytes``; True if it did."""
    try:
        if log_file.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    os.replace(log_file, log_file.with_name(log_file.name + ".1"))
    return True


def spawn_detached(
    cmd: Sequence[str],
    log_file: Path,
    pid_file: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    port: int | None = None,
) -> int:
    """Start ``cmd`` in its own session (it outlives the caller), stdout and stderr
    appended to ``log_file``, and record "<pid> <port>" in ``pid_file``.
    ``user`` (root only) runs it as that user and group."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(log_file)
    with open(log_file, "ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"\n=== {stamp} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN.append(proc)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{proc.pid} {port or ''}\n")
    return proc.pid


def stop_pid(pid: int, graceful: signal.Signals, timeout: float) -> bool:
    """Send ``graceful``, wait up to ``timeout`` seconds, then SIGKILL.
    Returns True if it stopped gracefully."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, graceful)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return False


def log_tail(log_file: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return f"(no log at {log_file})"
    return "\n".join(text.splitlines()[-lines:])
