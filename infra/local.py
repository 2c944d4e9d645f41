"""Start, stop and inspect the local infrastructure: one PostgreSQL server and one
Apache Kafka broker (or a cluster of several: ``up --brokers 3``), run as detached
processes from a cache folder (no Docker).

    python -m infra.local up [--brokers N] | down | status

``up`` is idempotent: servers already running from the cache folder (pid file plus
a live check) are reused. ``down`` stops exactly the processes recorded in the pid
files. Cache folder: ``$CLEARINGHOUSE_CACHE`` or ``~/.cache/clearinghouse``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Coroutine, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from infra import InfraError, cmdline, kafka, port_open, postgres
from shared.db.pool import redact_url
from shared.db.roles import roles_file

T = TypeVar("T")

DEFAULT_KAFKA_PORT = 19092
DEFAULT_PG_PORT = 15432
#: Partitions of the contract's topics on a cluster (``up --brokers 3``): enough to spread
#: the work of several instances of each service over the brokers. One broker keeps
#: shared.topics' defaults (6 person-keyed, 3 agency-keyed).
CLUSTER_PARTITIONS = 12


@dataclass(frozen=True)
class Addresses:
    kafka_bootstrap: str
    database_url: str
    #: The mutual-TLS listener (client certificates; for librdkafka clients older than
    #: 2.6.1, whose SCRAM Kafka 4 refuses). None where the servers are not ours.
    kafka_tls_bootstrap: str | None = None


def resolve_cache_dir(cache: Path | None = None) -> Path:
    """``cache`` if given, else ``$CLEARINGHOUSE_CACHE``, else ``~/.cache/clearinghouse``."""
    if cache is not None:
        return Path(cache).expanduser().resolve()
    env = os.environ.get("CLEARINGHOUSE_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "clearinghouse"
    return base.expanduser().resolve()


def _port(var: str, default: int) -> int:
    value = os.environ.get(var)
    return int(value) if value else default


def kafka_port() -> int:
    return _port("CLEARINGHOUSE_KAFKA_PORT", DEFAULT_KAFKA_PORT)


def controller_port() -> int:
    return _port("CLEARINGHOUSE_KAFKA_CONTROLLER_PORT", kafka_port() + 1)


def tls_port() -> int:
    return _port("CLEARINGHOUSE_KAFKA_TLS_PORT", kafka_port() + 2)


def pg_port() -> int:
    return _port("CLEARINGHOUSE_PG_PORT", DEFAULT_PG_PORT)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, also when called inside a running event
    loop (e.g. from an async pytest fixture): then it runs on a fresh loop in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """Serialise up/down of one cache folder across processes (e.g. parallel test workers)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "infra.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(cache_dir: Path | None = None, brokers: int | None = None) -> Addresses:
    """Start PostgreSQL and Kafka (or reuse the running ones), wait until both are ready,
    create the role, database and topics. Returns where to reach them. `brokers`: how many
    Kafka nodes (default: as many as this cache was first made with, else 1)."""
    cache = resolve_cache_dir(cache_dir)
    with _locked(cache):
        brokers = brokers or kafka.cluster_size(cache)
        # The broker boots in the background while PostgreSQL starts and is waited for.
        broker = _start_kafka(cache, brokers)
        pg = postgres.start(cache, pg_port())
        _prepare_kafka(cache, broker, brokers)
        return Addresses(kafka_bootstrap=broker.bootstrap, database_url=pg.url,
                         kafka_tls_bootstrap=kafka.bootstrap_address(tls_port()))


def up_kafka(cache_dir: Path | None = None, brokers: int | None = None) -> str:
    """Only Kafka of the cache folder (e.g. a test's cluster beside the shared PostgreSQL):
    up, ready, topics and logins made, as `up` does. Returns the bootstrap servers."""
    cache = resolve_cache_dir(cache_dir)
    with _locked(cache):
        brokers = brokers or kafka.cluster_size(cache)
        broker = _start_kafka(cache, brokers)
        _prepare_kafka(cache, broker, brokers)
        return broker.bootstrap


def _start_kafka(cache: Path, brokers: int) -> kafka.KafkaServer:
    """Start the nodes. On a cluster the topics get ``CLUSTER_PARTITIONS`` partitions (unless
    CLEARINGHOUSE_PERSON_PARTITIONS / CLEARINGHOUSE_AGENCY_PARTITIONS say otherwise)."""
    use_secrets_of(cache)
    if brokers > 1:
        os.environ.setdefault("CLEARINGHOUSE_PERSON_PARTITIONS", str(CLUSTER_PARTITIONS))
        os.environ.setdefault("CLEARINGHOUSE_AGENCY_PARTITIONS", str(CLUSTER_PARTITIONS))
    return kafka.start(cache, kafka_port(), controller_port(), tls_port(), brokers=brokers)


def _prepare_kafka(cache: Path, broker: kafka.KafkaServer, brokers: int) -> None:
    """Wait until every node is ready, then make the topics (replication 3 on a cluster)
    and the installation's logins and ACLs."""
    run_sync(kafka.wait_ready(broker.bootstrap, cache=cache, pid=broker.pid))
    if brokers > 1:
        run_sync(kafka.wait_brokers(broker.bootstrap, brokers))
    run_sync(kafka.ensure_topics(broker.bootstrap))
    from infra import participants

    run_sync(participants.sync(broker.bootstrap, cache=cache))


def use_secrets_of(cache: Path) -> None:
    """Make this process's Kafka clients find the credentials of `cache` (when it is not
    the default one, and nothing else was configured)."""
    from infra.secrets import credentials_path

    os.environ.setdefault("CLEARINGHOUSE_KAFKA_CREDENTIALS", str(credentials_path(cache)))


def down(cache_dir: Path | None = None) -> None:
    """Stop the servers started from the cache folder (gracefully, then SIGKILL).
    Data stays in the cache folder; delete it to start from scratch."""
    cache = resolve_cache_dir(cache_dir)
    with _locked(cache):
        kafka.stop(cache)
        postgres.stop(cache)


def status(cache_dir: Path | None = None) -> dict[str, Any]:
    """What runs from the cache folder: pids, addresses, log files, and ``ok`` when both
    servers are alive and listening."""
    cache = resolve_cache_dir(cache_dir)
    pg = postgres.running(cache)
    broker = kafka.running(cache)
    nodes = kafka.cluster_size(cache)
    pg_info = {
        "running": pg is not None and port_open(pg[1]),
        "pid": pg[0] if pg else None,
        "database_url": postgres.database_url(pg[1] if pg else pg_port()),
        "log": str(cache / "logs" / "postgres.log"),
    }
    kafka_info: dict[str, Any] = {
        "running": broker is not None and port_open(broker[1]),
        "pid": broker[0] if broker else None,
        "bootstrap": kafka.bootstrap_address(broker[1] if broker else kafka_port()),
        "log": str(kafka.log_file(cache)),
    }
    if nodes > 1:
        brokers: list[dict[str, Any]] = []
        kafka_info["brokers"] = brokers
        for node in range(1, nodes + 1):
            found = kafka.running(cache, node)
            port = kafka.node_ports(node, kafka_port(), controller_port(), tls_port()).port
            brokers.append({
                "node": node, "pid": found[0] if found else None,
                "running": found is not None and port_open(found[1]),
                "bootstrap": kafka.bootstrap_address(found[1] if found else port),
                "log": str(kafka.log_file(cache, node))})
        kafka_info["running"] = all(b["running"] for b in brokers)
        kafka_info["bootstrap"] = ",".join(b["bootstrap"] for b in brokers)
    return {
        "ok": bool(pg_info["running"] and kafka_info["running"]),
        "cache_dir": str(cache),
        "postgres": pg_info,
        "kafka": kafka_info,
    }


def addresses_from_env_or_up() -> Addresses:
    """``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` when both are set (servers run
    elsewhere, e.g. by CI), otherwise the local servers from :func:`up`."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    url = os.environ.get("DATABASE_URL")
    if bootstrap and url:
        return Addresses(kafka_bootstrap=bootstrap, database_url=url)
    return up()


def process_command_line(pid: int) -> list[str]:
    """The command line of a server process (for checks such as "is this kafka.Kafka")."""
    return cmdline(pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--brokers", type=int, default=None, metavar="N",
                        help="Kafka nodes (up only; default: as the cache was made, else 1)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            addresses = up(args.cache_dir, args.brokers)
            print(json.dumps(asdict(addresses) | {
                "database_url": redact_url(addresses.database_url),
                "database_roles_file": str(roles_file(resolve_cache_dir(args.cache_dir)))},
                indent=2))
        elif args.command == "down":
            down(args.cache_dir)
            print("stopped")
        else:
            report = status(args.cache_dir)
            shown = {**report, "postgres": {**report["postgres"], "database_url": redact_url(
                report["postgres"]["database_url"])}}
            print(json.dumps(shown, indent=2))
            return 0 if report["ok"] else 1
    except InfraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
