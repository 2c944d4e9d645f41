"""`clearinghouse serve all` starts the three services as processes that log JSON lines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest

from shared.config import REPO_ROOT
from tests.helpers import create_topics, new_prefix

pytestmark = pytest.mark.infra


async def test_serve_all_starts_three_services_logging_json(infra, fresh_database, tmp_path):
    prefix = new_prefix()
    await create_topics(infra.kafka_bootstrap, prefix)
    log = tmp_path / "serve-all.log"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
           "DATABASE_URL": fresh_database, "CLEARINGHOUSE_TOPIC_PREFIX": prefix}
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve", "all"],
                               env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=log.open("wb"))
    ready: set[str] = set()
    try:
        for _ in range(120):
            await asyncio.sleep(0.5)
            lines = [line for line in log.read_text(errors="replace").splitlines() if line]
            ready = {json.loads(line)["service"] for line in lines
                     if '"service.ready"' in line}
            if len(ready) == 3 or process.poll() is not None:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    assert ready == {"filing", "settlement", "clearing"}, log.read_text()[-3000:]
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    not_json = []
    for line in lines:
        try:
            entry = json.loads(line)
            assert "event" in entry and "level" in entry
        except (ValueError, AssertionError):
            not_json.append(line)
    assert not not_json, f"log lines that are not JSON: {not_json[:5]}"
    assert code == 0
