"""Test fixtures: real Kafka and PostgreSQL addresses, from (in order) the environment,
testcontainers where a Docker engine answers, or `clearinghouse infra up`."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from shared.config import REPO_ROOT
from shared.db import drop_database
from shared.db.roles import roles_file


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    database_url: str
    origin: str
    #: The broker's mutual-TLS listener (KAFKA_TLS_BOOTSTRAP_SERVERS in env mode).
    kafka_tls_bootstrap: str | None = None


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """Addresses of a real broker and database for the whole session."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL"):
        yield Infra(os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"], "env",
                    os.environ.get("KAFKA_TLS_BOOTSTRAP_SERVERS"))
        return
    if os.environ.get("CLEARINGHOUSE_TESTCONTAINERS", "1") == "1" and _docker_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with KafkaContainer().with_kraft() as kafka, PostgresContainer(driver=None) as pg:
            from infra.kafka import ensure_topics
            from infra.local import run_sync

            bootstrap = kafka.get_bootstrap_server()
            run_sync(ensure_topics(bootstrap))
            yield Infra(bootstrap, pg.get_connection_url(), "testcontainers")
        return
    from infra.local import resolve_cache_dir, up

    addresses = up()
    # The database roles' passwords stay where `up` wrote them, also for the processes a
    # test starts with a CLEARINGHOUSE_CACHE of its own (shared.db.roles).
    os.environ.setdefault("CLEARINGHOUSE_PG_ROLES_FILE",
                          str(roles_file(resolve_cache_dir())))
    yield from _tidy(Infra(addresses.kafka_bootstrap, addresses.database_url, "local",
                           addresses.kafka_tls_bootstrap))


#: Test namespaces older than this are leftovers of sessions that did not end cleanly.
STALE_AFTER_SECONDS = 6 * 3600


def _tidy(infra: Infra) -> Iterator[Infra]:
    """Keep the local broker small: every test makes its own topics, and a broker with
    tens of thousands of partitions takes minutes to start. Leftovers of earlier sessions
    are deleted before, and this session's topics after."""
    from infra.kafka import delete_topics
    from infra.local import run_sync
    from tests.helpers import SESSION_PREFIXES, stale_test_topic

    now = time.time()
    run_sync(delete_topics(infra.kafka_bootstrap,
                           lambda n: stale_test_topic(n, now, STALE_AFTER_SECONDS)))
    run_sync(_drop_stale_databases(infra.database_url, now))
    yield infra
    if os.environ.get("CLEARINGHOUSE_KEEP_TEST_TOPICS") != "1":
        prefixes = tuple(SESSION_PREFIXES)
        run_sync(delete_topics(infra.kafka_bootstrap, lambda n: n.startswith(prefixes)))


async def _drop_stale_databases(url: str, now: float) -> None:
    """Databases of tests that did not get to drop them (a killed session)."""
    from tests.helpers import stale_test_database

    admin = await asyncpg.connect(url)
    try:
        for row in await admin.fetch("SELECT datname FROM pg_database"):
            if stale_test_database(row["datname"], now, STALE_AFTER_SECONDS):
                await drop_database(admin, row["datname"])
    finally:
        await admin.close()


@pytest.fixture
async def fresh_database(infra: Infra) -> AsyncIterator[str]:
    """A database of its own for one test, dropped afterwards."""
    from tests.helpers import own_database

    async with own_database(infra.database_url) as url:
        yield url


@pytest.fixture(scope="module")
async def module_database(infra: Infra) -> AsyncIterator[str]:
    """A database of its own for one test module (its module-scoped fixtures and the tests
    that share them), dropped after the module's last test."""
    from tests.helpers import own_database

    async with own_database(infra.database_url) as url:
        yield url


@pytest.fixture(scope="session", autouse=True)
def session_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A key pair for every participant of the reference data, generated for this session
    into a directory of its own; the services the tests start (which inherit the
    environment) verify against it, and the tests' publishers sign with it."""
    from shared import participant_keys as keys

    directory = tmp_path_factory.mktemp("participant-keys")
    registry = directory / "participant-keys.toml"
    secrets = directory / "keys"
    saved = {name: os.environ.get(name) for name in KEY_VARIABLES}
    os.environ["CLEARINGHOUSE_PARTICIPANT_KEYS"] = str(registry)
    os.environ["CLEARINGHOUSE_PARTICIPANT_SECRETS"] = str(secrets)
    keys.ensure_key_pairs([*keys.participants(REPO_ROOT / "reference"),
                           *KEY_HOLDERS_OUTSIDE_THE_REFERENCE])
    yield registry
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


KEY_VARIABLES = ("CLEARINGHOUSE_PARTICIPANT_KEYS", "CLEARINGHOUSE_PARTICIPANT_SECRETS")
#: Senders with a registered key but unknown to the reference data, so that the business
#: rules' refusals of them (``unknown_hospital``) stay testable behind the signature check.
KEY_HOLDERS_OUTSIDE_THE_REFERENCE = ("hospital-H229999001",)


@pytest.fixture(scope="session")
def repo_root() -> str:
    return str(REPO_ROOT)
