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
