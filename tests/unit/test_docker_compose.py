"""docker-compose.yml cannot run here (no Docker engine); check it agrees with the code."""

from __future__ import annotations

from urllib.parse import urlparse

import yaml

from services.registry import SERVICES
from shared.config import DEFAULT_DATABASE_URL, DEFAULT_KAFKA, REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in COMPOSE["services"][service]["environment"].items()}


def test_every_service_runs_from_the_one_image_with_serve() -> None:
    for name in SERVICES:
        service = COMPOSE["services"][name]
        assert service["command"] == ["serve", name]
        assert service["build"] == "."
        assert "healthcheck" in service
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_kafka_is_apache_kafka_in_kraft_mode_with_unlimited_retention() -> None:
    kafka = COMPOSE["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _env("kafka")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_LOG_RETENTION_HOURS"] == "-1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "healthcheck" in kafka


def test_service_addresses_point_at_the_compose_servers() -> None:
    kafka_env = _env("kafka")
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    listeners = dict(part.split("://") for part in advertised)
    pg_env = _env("postgres")
    for name in (*SERVICES, "topics"):
        env = _env(name)
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == listeners["CLIENT"]
        url = urlparse(env["DATABASE_URL"])
        assert url.hostname == "postgres" and url.port == 5432
        assert url.username == pg_env["POSTGRES_USER"]
        assert url.password == pg_env["POSTGRES_PASSWORD"]
        assert url.path.lstrip("/") == pg_env["POSTGRES_DB"]


def test_host_ports_match_the_local_defaults() -> None:
    """The compose system answers on the same host addresses as `clearinghouse infra up`."""
    kafka_port = DEFAULT_KAFKA.rsplit(":", 1)[1]
    assert f"{kafka_port}:{kafka_port}" in COMPOSE["services"]["kafka"]["ports"]
    host_listener = _env("kafka")["KAFKA_ADVERTISED_LISTENERS"].split("HOST://")[1]
    assert host_listener.endswith(f":{kafka_port}")
    pg_port = urlparse(DEFAULT_DATABASE_URL).port
    assert f"{pg_port}:5432" in COMPOSE["services"]["postgres"]["ports"]
    default = urlparse(DEFAULT_DATABASE_URL)
    pg_env = _env("postgres")
    assert (default.username, default.password, default.path.lstrip("/")) == (
        pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"])


def test_the_image_ships_the_reference_data_the_services_load() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "COPY reference ./reference" in dockerfile
    assert _env("filing")["CLEARINGHOUSE_REFERENCE_DIR"] == "/app/reference"


def test_the_compose_broker_authenticates_and_authorises_every_client() -> None:
    env = _env("kafka")
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"
    for name in SERVICES:
        assert _env(name)["KAFKA_PRINCIPAL"] == f"svc-{name}"
    assert "participants sync" in " ".join(COMPOSE["services"]["topics"]["entrypoint"])


# ---- docker-compose.cluster.yml: the three-node option ------------------------------------

CLUSTER = yaml.safe_load((REPO_ROOT / "docker-compose.cluster.yml").read_text())
NODES = ("kafka", "kafka-2", "kafka-3")


def _cluster_env(service: str) -> dict[str, str]:
    """The environment of `service` once the override is merged over docker-compose.yml
    (compose merges environment mappings key by key)."""
    base = COMPOSE["services"].get(service, {}).get("environment", {})
    over = CLUSTER["services"][service]["environment"]
    return {k: str(v) for k, v in {**base, **over}.items()}


def test_cluster_has_three_nodes_in_one_controller_quorum() -> None:
    voters = {_cluster_env(n)["KAFKA_CONTROLLER_QUORUM_VOTERS"] for n in NODES}
    assert voters == {"1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert sorted(_cluster_env(n)["KAFKA_NODE_ID"] for n in NODES) == ["1", "2", "3"]
    for node in NODES:
        env = _cluster_env(node)
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert f"CLIENT://{node}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        # the single broker's static quorum setting would contradict the voters
        assert "KAFKA_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS" not in env
    volumes = {CLUSTER["services"][n]["volumes"][0].split(":")[0] for n in NODES}
    assert len(volumes) == 3, "every node keeps its log on a volume of its own"
    host_ports = [p for n in NODES for p in CLUSTER["services"][n].get("ports", [])]
    assert host_ports == ["19102:19102", "19112:19112"]  # node 1 keeps 19092 (the base file)


def test_cluster_replicates_like_infra_up_brokers_3() -> None:
    from infra import kafka

    local = dict(line.split("=", 1) for line in kafka.server_properties(
        REPO_ROOT, 19092, 19093, tls_port=19094, admin_password="x",
        broker_pem=REPO_ROOT, ca_pem=REPO_ROOT, node_id=1,
        voters=[kafka.node_ports(n, 19092, 19093, 19094) for n in (1, 2, 3)]
    ).splitlines()[2:])
    for node in NODES:
        env = _cluster_env(node)
        for key in ("default.replication.factor", "min.insync.replicas",
                    "offsets.topic.replication.factor", "transaction.state.log.min.isr",
                    "authorizer.class.name", "super.users", "inter.broker.listener.name",
                    "sasl.mechanism.inter.broker.protocol", "allow.everyone.if.no.acl.found"):
            assert env["KAFKA_" + key.upper().replace(".", "_")] == local[key], (node, key)
        assert env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].count("PLAINTEXT") == 3
        assert "SSL" not in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].replace("SASL_", "")
    assert local["default.replication.factor"] == "3" and local["min.insync.replicas"] == "2"


def test_cluster_services_know_every_broker() -> None:
    for name in (*SERVICES, "topics"):
        env = _cluster_env(name)
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092,kafka-2:9092,kafka-3:9092"
        assert env["CLEARINGHOUSE_PERSON_PARTITIONS"] == "12"
        assert set(CLUSTER["services"][name]["depends_on"]) == set(NODES)
