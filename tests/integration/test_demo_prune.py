"""Old demo runs are removed when a new one starts: only the newest `keep` stay."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from aiokafka.admin import NewTopic

from shared.db import drop_database
from shared.messaging import clients as kafka_clients
from tests.conftest import Infra
from tools.demo.run import prune

pytestmark = pytest.mark.infra

STAMPS = ["20260101000001", "20260101000002", "20260101000003"]


async def test_prune_keeps_the_newest_runs(infra: Infra, tmp_path) -> None:
    family = f"prune{uuid.uuid4().hex[:8]}"
    admin = kafka_clients.admin(infra.kafka_bootstrap)
    await admin.start()
    conn = await asyncpg.connect(infra.database_url)
    try:
        await admin.create_topics([NewTopic(f"{family}.{s}.{t}", 1, 1)
                                   for s in STAMPS for t in ("a", "b")])
        for stamp in STAMPS[:2]:  # the newest run has topics only: a run that failed early
            await conn.execute(f'CREATE DATABASE "{family}_{stamp}"')
            (tmp_path / family / stamp).mkdir(parents=True)

        removed = await prune(infra.kafka_bootstrap, infra.database_url, tmp_path, keep=2,
                              family=family)

        assert removed == STAMPS[:1]
        left = sorted(n for n in await admin.list_topics() if n.startswith(family))
        assert left == [f"{family}.{s}.{t}" for s in STAMPS[1:] for t in ("a", "b")]
        databases = {r["datname"] for r in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{family}%")}
        assert databases == {f"{family}_{STAMPS[1]}"}
        assert not (tmp_path / family / STAMPS[0]).exists()
        assert (tmp_path / family / STAMPS[1]).exists()

        assert await prune(infra.kafka_bootstrap, infra.database_url, tmp_path, keep=0,
                           family=family) == STAMPS[1:]
        assert not [n for n in await admin.list_topics() if n.startswith(family)]
    finally:
        leftovers = [n for n in await admin.list_topics() if n.startswith(family)]
        if leftovers:
            await admin.delete_topics(leftovers)
        for stamp in STAMPS:
            await drop_database(conn, f"{family}_{stamp}")
        await conn.close()
        await admin.close()
