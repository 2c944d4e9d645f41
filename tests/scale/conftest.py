"""The scale suite (tests/scale, marker ``scale``): the services with several instances on a
replicated three-broker Kafka, against one instance on one broker. ``-m "not scale"`` skips
it; ``.ci/run`` runs it (docs/operations.md says how long it takes).

The cluster runs from a cache folder of its own (``CLEARINGHOUSE_SCALE_CACHE``, default
``~/.cache/ch-cluster``) on ports of its own (``CLEARINGHOUSE_SCALE_KAFKA_PORT``, default
19192: nodes on 19192, 19202, 19212), so the shared single broker is untouched; it uses the
shared PostgreSQL server (each test a database of its own) and the installation's secrets
(copied once into its cache), so that one set of logins serves both Kafkas."""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = pathlib.Path(__file__).parent
BROKERS = 3


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.infra)
            item.add_marker(pytest.mark.scale)


@dataclass(frozen=True)
class Cluster:
    bootstrap: str
    cache: Path
    port: int


#: Variables the cluster's start sets in this process (partitions, ports); put back after.
_CLUSTER_VARIABLES = ("CLEARINGHOUSE_KAFKA_PORT", "CLEARINGHOUSE_PERSON_PARTITIONS",
                      "CLEARINGHOUSE_AGENCY_PARTITIONS")


@pytest.fixture(scope="session")
def cluster(infra) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    """The three-broker cluster (`clearinghouse infra up --brokers 3`'s Kafka), started or
    reused; its topics are made with 12 partitions and replication 3."""
    if infra.origin != "local":
        pytest.skip("the scale suite starts a local Kafka cluster beside the local servers")
    from infra import local
    from infra.kafka import node_ports
    from shared.messaging.clients import cache_dir

    cache = Path(os.environ.get("CLEARINGHOUSE_SCALE_CACHE",
                                str(Path.home() / ".cache" / "ch-cluster")))
    port = int(os.environ.get("CLEARINGHOUSE_SCALE_KAFKA_PORT", "19192"))
    installation = cache_dir() / "secrets"
    if not (cache / "secrets").exists():
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copytree(installation, cache / "secrets")
    saved = {v: os.environ.get(v) for v in _CLUSTER_VARIABLES}
    os.environ["CLEARINGHOUSE_KAFKA_PORT"] = str(port)
    try:
        bootstrap = local.up_kafka(cache, BROKERS)
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value
    assert bootstrap == ",".join(f"127.0.0.1:{node_ports(n, port, port + 1, port + 2).port}"
                                 for n in range(1, BROKERS + 1))
    yield Cluster(bootstrap, cache, port)
    from infra.kafka import delete_topics
    from infra.local import run_sync
    from tests.helpers import SESSION_PREFIXES

    prefixes = tuple(SESSION_PREFIXES)
    if prefixes and os.environ.get("CLEARINGHOUSE_KEEP_TEST_TOPICS") != "1":
        run_sync(delete_topics(bootstrap, lambda n: n.startswith(prefixes)))
