"""Stopping commands: SIGTERM runs a command's clean-up as Ctrl-C does, and children started
with `die_with_parent` end when the process that started them is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from shared.config import REPO_ROOT
from tests.helpers import process_alive


def _wait_for(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout} s")


def test_sigterm_cancels_the_command_and_its_finally_runs(tmp_path: Path) -> None:
    started, cleaned = tmp_path / "started", tmp_path / "cleaned"
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from shared.running import Interrupted, run_cancellable

        async def main():
            try:
                Path({str(started)!r}).write_text("yes")
                await asyncio.sleep(60)
            finally:
                await asyncio.sleep(0.1)  # clean-up may await
                Path({str(cleaned)!r}).write_text("yes")

        try:
            run_cancellable(main())
        except Interrupted:
            sys.exit(130)
        sys.exit(0)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT)
    _wait_for(started)
    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 130
    assert cleaned.read_text() == "yes"


def test_a_child_started_with_die_with_parent_ends_when_its_parent_is_killed(
        tmp_path: Path) -> None:
    pid_file = tmp_path / "child"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        from pathlib import Path
        from shared.running import die_with_parent

        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                 preexec_fn=die_with_parent())
        Path({str(pid_file)!r}).write_text(str(child.pid))
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT)
    child = int(_wait_for(pid_file))
    assert process_alive(child)
    parent.kill()  # SIGKILL: no clean-up of its own can run
    parent.wait(10)
    deadline = time.monotonic() + 10
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert not process_alive(child), "the child outlived its killed parent"
    finally:
        if process_alive(child):
            os.kill(child, signal.SIGKILL)
