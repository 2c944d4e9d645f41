"""`clearinghouse bench` started without the local servers says so, before creating anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from shared.config import REPO_ROOT


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once the socket is closed


def test_bench_without_servers_names_what_is_missing_and_how_to_start_it() -> None:
    kafka, postgres = _closed_port(), _closed_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
           "DATABASE_URL": f"postgresql://someone:secret@127.0.0.1:{postgres}/nothing"}
    done = subprocess.run([sys.executable, "-m", "cli", "bench", "--quick"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"PostgreSQL at postgresql://someone:***@127.0.0.1:{postgres}/nothing" in done.stderr
    assert "secret" not in done.stderr
    assert f"Kafka at 127.0.0.1:{kafka} does not answer" in done.stderr
    assert "clearinghouse infra up" in done.stderr
    assert not done.stdout.strip()
