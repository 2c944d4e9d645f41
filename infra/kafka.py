"""Local Apache Kafka (KRaft) run as detached ``java kafka.Kafka`` processes from jars that
Maven resolves (no Docker): one combined broker+controller node (the default), or a cluster
of N such nodes whose controllers form one quorum (``clearinghouse infra up --brokers 3``).

Layout under the cache folder: ``kafka-libs/`` (the jars), ``kafka/server.properties``,
``kafka/data/`` (the log: retention is unlimited, the log is the record),
``logs/kafka.log`` and ``pids/kafka.pid``; the nodes 2..N of a cluster the same under
``kafka-<n>/``, ``logs/kafka-<n>.log``, ``pids/kafka-<n>.pid``, and ``kafka-cluster.json``
(how many nodes, the cluster id) beside them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra import (
    InfraError,
    log_tail,
    pid_alive,
    port_open,
    read_pid,
    read_port,
    secrets,
    spawn_detached,
    stop_pid,
)
from infra.secrets import write_private
from shared.messaging import clients as kafka_clients
from shared.messaging.clients import ADMIN
from shared.topics import TopicSpec, all_topics

KAFKA_VERSION = "4.1.1"
POM = Path(__file__).with_name("kafka-pom.xml")
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
PROBE_TOPIC = "infra.probe"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: The heap: a test suite's namespaces hold some 10,000 partitions at their peak (every
#: namespace has a topic per agency and per hospital; each session's are deleted when it
#: ends), and 512 MB ran out at about 9,400 (the broker exits on OutOfMemoryError).
JVM_OPTS = [
    "-Xmx1536m",
    "-Xms512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]
#: Kafka error codes that mean "fine" when creating topics: none, TOPIC_ALREADY_EXISTS.
_CREATE_OK = {0, 36}


#: Ports of node n of a cluster: the first node's ports plus NODE_PORT_STEP * (n - 1).
NODE_PORT_STEP = 10
#: The replication of topics on a cluster of 3 or more nodes, and the in-sync replicas a
#: write with acks=all needs: one node may be lost without losing a record or a write.
CLUSTER_REPLICATION = 3
CLUSTER_MIN_INSYNC = 2


@dataclass(frozen=True)
class KafkaServer:
    pid: int
    port: int
    bootstrap: str
    #: Every node's pid (one for a single broker), by node id.
    pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class NodePorts:
    """The listeners of one node: clients (SASL), controllers, clients with mutual TLS."""

    node: int
    port: int
    controller_port: int
    tls_port: int


def node_ports(node: int, port: int, controller_port: int, tls_port: int) -> NodePorts:
    """Node `node`'s ports, the first node's shifted by ``NODE_PORT_STEP`` per node."""
    step = NODE_PORT_STEP * (node - 1)
    return NodePorts(node, port + step, controller_port + step, tls_port + step)


@dataclass(frozen=True)
class _Paths:
    libs: Path
    root: Path
    data: Path
    properties: Path
    log: Path
    pid: Path

    @classmethod
    def of(cls, cache: Path, node: int = 1) -> _Paths:
        """Node 1 keeps the single broker's layout; node n lives under ``kafka-<n>``."""
        name = "kafka" if node == 1 else f"kafka-{node}"
        root = cache / name
        return cls(
            cache / "kafka-libs",
            root,
            root / "data",
            root / "server.properties",
            cache / "logs" / f"{name}.log",
            cache / "pids" / f"{name}.pid",
        )


def cluster_file(cache: Path) -> Path:
    return cache / "kafka-cluster.json"


def cluster_size(cache: Path) -> int:
    """How many nodes the Kafka of this cache was made with (1 when never a cluster)."""
    try:
        return int(json.loads(cluster_file(cache).read_text())["brokers"])
    except (OSError, ValueError, KeyError):
        return 1


def _cluster_id(cache: Path, brokers: int) -> str:
    """The cluster id every node of a cluster is formatted with, made once."""
    path = cluster_file(cache)
    try:
        document = json.loads(path.read_text())
        if int(document["brokers"]) == brokers:
            return str(document["cluster_id"])
        raise InfraError(f"{cache} holds a Kafka of {document['brokers']} nodes, not "
                         f"{brokers}; use another CLEARINGHOUSE_CACHE (or delete its kafka*)")
    except (OSError, ValueError, KeyError):
        pass
    if (_Paths.of(cache).data / "meta.properties").exists():
        raise InfraError(f"{cache} holds a single Kafka broker's log; a cluster needs a cache "
                         f"of its own (CLEARINGHOUSE_CACHE=… and CLEARINGHOUSE_KAFKA_PORT=…)")
    cluster_id = _kafka_uuid()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"brokers": brokers, "cluster_id": cluster_id}) + "\n")
    return cluster_id


def bootstrap_address(port: int) -> str:
    return f"127.0.0.1:{port}"


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise InfraError("java not found (Kafka 4.x needs Java 17+): run infra/install.sh")
    return java


def resolve_libs(cache: Path) -> Path:
    """Copy the broker's jars into ``<cache>/kafka-libs`` with Maven, unless a previous
    run of the same POM already did (a marker named after the POM's hash)."""
    libs = _Paths.of(cache).libs
    marker = libs / f".resolved-{hashlib.sha256(POM.read_bytes()).hexdigest()[:16]}"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError(
            "mvn not found (needed once to fetch the Kafka jars): run infra/install.sh"
        )
    if libs.exists():
        shutil.rmtree(libs)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        raise InfraError(
            f"resolving the Kafka jars failed ({' '.join(cmd)}):\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    marker.touch()
    return libs


def _jaas_plain(password: str) -> str:
    """The broker's own PLAIN login (inter-broker and controller traffic) and the one PLAIN
    user it accepts: ``admin``, the operator's super user. Everyone else uses SCRAM."""
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    return ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{ADMIN}" password="{quoted}" user_{ADMIN}="{quoted}";')


def server_properties(data: Path, port: int, controller_port: int, *, tls_port: int,
                      admin_password: str, broker_pem: Path, ca_pem: Path,
                      node_id: int = 1, voters: Sequence[NodePorts] = ()) -> str:
    """The broker's configuration: one KRaft node that is broker and controller, with
    authentication on every listener and the StandardAuthorizer (no ACL: no access).
    With `voters` (every node of a cluster, this one included) the node is `node_id` of a
    cluster whose controllers are one quorum of those voters; topics are replicated to
    ``CLUSTER_REPLICATION`` nodes and a write needs ``CLUSTER_MIN_INSYNC`` of them. The
    brokers talk to each other on ``CLIENT`` as ``admin`` (PLAIN), authenticated as any
    client is.

    - ``CLIENT`` (``port``): SASL_PLAINTEXT; participants and services log in with
      SCRAM-SHA-512, the operator's ``admin`` with PLAIN (a static user of this file,
      so that it exists before any SCRAM credential does);
    - ``TLS`` (``tls_port``): TLS with client certificates (mutual TLS), both issued by this
      installation's CA; the principal is the certificate's CN (``hospital-H220202001``).
      For clients whose SCRAM does not work with Kafka 4 (librdkafka before 2.6.1, such as
      Debian 12's kcat: the broker's RFC 5802 nonce check, CVE-2024-56128);
    - ``CONTROLLER``: SASL_PLAINTEXT, PLAIN, ``admin`` only (the broker's own traffic).
    """
    jaas = _jaas_plain(admin_password)
    replication = str(min(CLUSTER_REPLICATION, len(voters))) if len(voters) > 1 else "1"
    min_insync = str(CLUSTER_MIN_INSYNC) if replication != "1" else "1"
    quorum = ({"controller.quorum.voters": ",".join(
                   f"{v.node}@127.0.0.1:{v.controller_port}" for v in voters)}
              if len(voters) > 1 else
              {"controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}"})
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "listeners": (f"CLIENT://127.0.0.1:{port},TLS://127.0.0.1:{tls_port},"
                      f"CONTROLLER://127.0.0.1:{controller_port}"),
        "advertised.listeners": f"CLIENT://127.0.0.1:{port},TLS://127.0.0.1:{tls_port}",
        "listener.security.protocol.map": (
            "CLIENT:SASL_PLAINTEXT,TLS:SSL,CONTROLLER:SASL_PLAINTEXT"),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "CLIENT",
        **quorum,
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.client.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
        "listener.name.client.plain.sasl.jaas.config": jaas,
        "listener.name.client.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.tls.ssl.keystore.type": "PEM",
        "listener.name.tls.ssl.keystore.location": str(broker_pem),
        "listener.name.tls.ssl.truststore.type": "PEM",
        "listener.name.tls.ssl.truststore.location": str(ca_pem),
        "listener.name.tls.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN}",
        "log.dirs": str(data),
        "num.partitions": "1",
        "default.replication.factor": replication,
        "min.insync.replicas": min_insync,
        "offsets.topic.replication.factor": replication,
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_insync,
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_insync,
        "share.coordinator.state.topic.num.partitions": "10",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.retention.hours": "-1",
        "log.retention.ms": "-1",
        "log.retention.bytes": "-1",
        "message.max.bytes": str(MAX_MESSAGE_BYTES),
        "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
    }
    lines = ["# Generated by infra/kafka.py; rewritten on every start. Holds a password:",
             "# mode 0600, never copy it into the repository."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _kafka_uuid() -> str:
    """A random cluster id as Kafka prints it (base64url, 22 chars, not starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _java_cmd(libs: Path, main: str, *args: str) -> list[str]:
    return [
        _java(),
        *JVM_OPTS,
        "-cp",
        f"{libs}/*",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        main,
        *args,
    ]


def _format_storage(paths: _Paths, cluster_id: str | None = None) -> None:
    """Format the KRaft storage once (``meta.properties`` marks a formatted log dir): a
    standalone controller for a single node, else a node of the static quorum of
    `cluster_id` (``controller.quorum.voters`` in its properties)."""
    if (paths.data / "meta.properties").exists():
        return
    if paths.data.exists():
        shutil.rmtree(paths.data)
    mode = ["--standalone", "-t", _kafka_uuid()] if cluster_id is None else ["-t", cluster_id]
    cmd = _java_cmd(
        paths.libs,
        "kafka.tools.StorageTool",
        "format",
        *mode,
        "-c",
        str(paths.properties),
    )
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InfraError(f"formatting Kafka storage failed:\n{done.stdout}\n{done.stderr}")


def running(cache: Path, node: int = 1) -> tuple[int, int] | None:
    """(pid, port) of the broker (node `node` of a cluster) started from this cache, if it
    is alive."""
    paths = _Paths.of(cache, node)
    pid = read_pid(paths.pid, str(paths.properties))
    port = read_port(paths.pid)
    return None if pid is None or port is None else (pid, port)


def start(cache: Path, port: int, controller_port: int, tls_port: int | None = None,
          brokers: int = 1) -> KafkaServer:
    """Start the broker, or the `brokers` nodes of a cluster (resolving jars and formatting
    storage on first use), reusing any node already running from this cache. Does not
    wait for readiness. `port`, `controller_port`, `tls_port` are the first node's; node n
    listens ``NODE_PORT_STEP * (n - 1)`` above them."""
    if brokers < 1:
        raise InfraError(f"a Kafka needs 1 or more brokers, not {brokers}")
    tls_port = tls_port or port + 2
    nodes = [node_ports(n, port, controller_port, tls_port) for n in range(1, brokers + 1)]
    cluster_id = _cluster_id(cache, brokers) if brokers > 1 else None
    if brokers == 1 and cluster_size(cache) > 1:
        raise InfraError(f"{cache} holds a Kafka cluster of {cluster_size(cache)} nodes; "
                         f"start it with --brokers {cluster_size(cache)}")
    pids = [start_node(cache, node, nodes, cluster_id) for node in nodes]
    bootstrap = ",".join(bootstrap_address(node.port) for node in nodes)
    return KafkaServer(pids[0], port, bootstrap, tuple(pids))


def start_node(cache: Path, node: NodePorts, voters: Sequence[NodePorts] = (),
               cluster_id: str | None = None) -> int:
    """Start one node (or find it running); returns its pid. `voters`: every node of its
    cluster (none for a single broker)."""
    current = running(cache, node.node)
    if current is not None:
        return current[0]
    paths = _Paths.of(cache, node.node)
    for p in (node.port, node.controller_port, node.tls_port):
        if port_open(p):
            raise InfraError(
                f"port {p} is already in use by a process not started from "
                f"{cache}; set CLEARINGHOUSE_KAFKA_PORT / "
                f"CLEARINGHOUSE_KAFKA_CONTROLLER_PORT to free ports"
            )
    libs = resolve_libs(cache)
    paths.root.mkdir(parents=True, exist_ok=True)
    ca_pem, broker_pem = secrets.ensure_tls(cache)
    cluster = list(voters) if len(voters) > 1 else []
    write_private(paths.properties, server_properties(
        paths.data, node.port, node.controller_port, tls_port=node.tls_port,
        admin_password=secrets.admin_password(cache), broker_pem=broker_pem, ca_pem=ca_pem,
        node_id=node.node, voters=cluster))
    _format_storage(paths, cluster_id if cluster else None)
    cmd = _java_cmd(libs, "kafka.Kafka", str(paths.properties))
    cmd.insert(1, f"-Dkafka.logs.dir={paths.log.parent}")
    return spawn_detached(cmd, paths.log, paths.pid, cwd=paths.root, port=node.port)


def stop(cache: Path, timeout: float = 60.0) -> int | None:
    """Stop the broker (every node of a cluster) started from this cache (SIGTERM:
    controlled shutdown, then SIGKILL). Returns the first pid it stopped, or None if none
    was running."""
    stopped = []
    for node in range(cluster_size(cache), 0, -1):
        paths = _Paths.of(cache, node)
        current = running(cache, node)
        if current is not None:
            stop_pid(current[0], signal.SIGTERM, timeout)
            stopped.append(current[0])
        paths.pid.unlink(missing_ok=True)
    return stopped[-1] if stopped else None


def log_file(cache: Path, node: int = 1) -> Path:
    return _Paths.of(cache, node).log


def _topic_config(name: str) -> dict[str, str]:
    config = {"retention.ms": "-1", "retention.bytes": "-1"}
    if name.endswith(".rejected"):
        config["max.message.bytes"] = str(MAX_MESSAGE_BYTES)
    return config


async def _create(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> list[str]:
    """Create ``topics``; already existing ones are fine. Returns the names created."""
    if not topics:
        return []
    response = await admin.create_topics(topics)
    created, failed = [], []
    for name, code, *rest in response.topic_errors:
        if code == 0:
            created.append(name)
        elif code not in _CREATE_OK:
            failed.append(f"{name}: error {code} {rest[0] if rest else ''}")
    if failed:
        raise InfraError("creating topics failed: " + "; ".join(failed))
    return created


async def broker_count(admin: AIOKafkaAdminClient) -> int:
    """How many brokers the cluster has registered."""
    cluster = await admin.describe_cluster()
    return len(cluster.get("brokers", []))


def replication_for(brokers: int) -> int:
    """Replication of a topic on `brokers` brokers: 1 on one, ``CLUSTER_REPLICATION`` (or
    all of them, if fewer) on a cluster."""
    return min(CLUSTER_REPLICATION, max(1, brokers))


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec] | None = None, *,
                        replication: int | None = None) -> list[str]:
    """Create every topic of ``shared.topics.all_topics()`` (or ``specs``) that is missing:
    replicated `replication` times (default: `replication_for` the cluster's brokers, so 1
    on a single broker and 3 on a cluster), unlimited retention. Idempotent; returns the
    names it created.

    Raises InfraError if an existing topic has another partition count than the spec
    (co-partitioning of person-keyed topics depends on it).
    """
    wanted = list(all_topics() if specs is None else specs)
    admin = kafka_clients.admin(bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        if replication is None:
            replication = replication_for(await broker_count(admin))
        created = await _create(
            admin,
            [
                NewTopic(s.name, s.partitions, replication, topic_configs=_topic_config(s.name))
                for s in wanted
                if s.name not in existing
            ],
        )
        described = await admin.describe_topics([s.name for s in wanted])
        counts = {t["topic"]: len(t["partitions"]) for t in described}
        wrong = [
            f"{s.name} has {counts.get(s.name)} partitions, expected {s.partitions}"
            for s in wanted
            if s.name not in created and counts.get(s.name) != s.partitions
        ]
        if wrong:
            raise InfraError("existing topics do not match shared/topics.py: " + "; ".join(wrong))
        return created
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, wanted: Callable[[str], bool]) -> list[str]:
    """Delete every topic whose name ``wanted`` accepts, in requests of 500 names (a broker
    may hold thousands of leftovers), and the ACLs on exactly those topics (a namespace's
    sync made them; left behind they pile up with every test and demo run); returns the
    names deleted."""
    from infra.participants import delete_topic_acls

    admin = kafka_clients.admin(bootstrap, request_timeout_ms=60000)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if wanted(n)]
        for start in range(0, len(names), 500):
            await admin.delete_topics(names[start:start + 500], timeout_ms=60000)
    finally:
        await admin.close()
    await asyncio.to_thread(delete_topic_acls, bootstrap, names)
    return names


async def _probe_once(bootstrap: str) -> None:
    admin = kafka_clients.admin(bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        if PROBE_TOPIC not in await admin.list_topics():
            # one replica, writable with acks=all whatever the cluster's min.insync.replicas
            await _create(admin, [NewTopic(PROBE_TOPIC, 1, 1, topic_configs={
                "retention.ms": "3600000", "min.insync.replicas": "1"})])
    finally:
        await admin.close()
    producer = kafka_clients.producer(bootstrap, enable_idempotence=True, request_timeout_ms=10000
    )
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(PROBE_TOPIC, b"probe"), 15)
    finally:
        await producer.stop()


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """aiokafka logs every refused connection as an error; while waiting, that is noise."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def wait_ready(
    bootstrap: str,
    timeout: float = 60.0,
    cache: Path | None = None,
    pid: int | None = None,
    ceiling: float = 1800.0,
) -> None:
    """Wait until an idempotent producer can write to the probe topic. A metadata answer
    alone is not enough: right after start the coordinators may still be loading.

    ``timeout`` is how long the broker may go without visible progress: while its log
    keeps growing (a broker with many partitions logs each one it loads, which takes
    minutes for tens of thousands), the wait goes on, up to ``ceiling`` seconds in all.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    log = log_file(cache) if cache is not None else None
    last_size = _size(log)
    deadline = started + timeout
    problem = f"not ready within {timeout:.0f} s"
    while loop.time() < deadline:
        if pid is not None and not pid_alive(pid):
            problem = f"exited during start-up (pid {pid})"
            break
        try:
            with _quiet_aiokafka():
                await asyncio.wait_for(_probe_once(bootstrap), max(1.0, deadline - loop.time()))
            return
        except Exception as error:  # noqa: BLE001 - any failure means "not yet"
            waited = loop.time() - started
            problem = (f"not ready after {waited:.0f} s, the last {timeout:.0f} s without "
                       f"progress in its log (last error: {error!r})")
            await asyncio.sleep(0.5)
        size = _size(log)
        if size != last_size:
            last_size = size
            deadline = min(loop.time() + timeout, started + ceiling)
    where = f"log {log}" if log is not None else "log unknown"
    tail = log_tail(log) if log is not None else ""
    raise InfraError(f"Kafka at {bootstrap} {problem}; {where}, tail:\n{tail}")


async def wait_brokers(bootstrap: str, brokers: int, timeout: float = 120.0) -> None:
    """Wait until `brokers` brokers are registered (topics replicated to all of them can
    only be made then)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = 0
    while True:
        try:
            with _quiet_aiokafka():
                admin = kafka_clients.admin(bootstrap, request_timeout_ms=10000)
                await admin.start()
                try:
                    seen = await broker_count(admin)
                finally:
                    await admin.close()
            if seen >= brokers:
                return
        except Exception:  # noqa: BLE001 - not yet
            pass
        if loop.time() > deadline:
            raise InfraError(f"Kafka at {bootstrap}: {seen} of {brokers} brokers registered "
                             f"after {timeout:.0f} s")
        await asyncio.sleep(0.5)


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0
