"""The one supervisor's environment of a service process (no process is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.supervisor import Deployment, Supervisor, instance_name, service_environment

DEPLOYMENT = Deployment(kafka_bootstrap_servers="k:1", database_url="postgresql://d/x",
                        topic_prefix="t1.", reference_dir=Path("/ref"), group_prefix="g")


def test_a_service_gets_the_deployment_and_its_own_principal() -> None:
    env = service_environment("clearing", DEPLOYMENT, parent={"PATH": "/bin"})
    assert env == {"PATH": "/bin", "KAFKA_BOOTSTRAP_SERVERS": "k:1",
                   "DATABASE_URL": "postgresql://d/x", "CLEARINGHOUSE_TOPIC_PREFIX": "t1.",
                   "CLEARINGHOUSE_REFERENCE_DIR": "/ref", "CLEARINGHOUSE_GROUP_PREFIX": "g",
                   "KAFKA_PRINCIPAL": "svc-clearing", "PYTHONUNBUFFERED": "1"}


def test_what_the_deployment_leaves_open_is_inherited() -> None:
    env = service_environment("filing", Deployment(topic_prefix="t2."),
                              parent={"KAFKA_BOOTSTRAP_SERVERS": "mine:9", "DATABASE_URL": "u"})
    assert (env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"]) == ("mine:9", "u")
    assert env["CLEARINGHOUSE_TOPIC_PREFIX"] == "t2."


def test_a_password_for_another_principal_is_not_passed_on() -> None:
    parent = {"KAFKA_PRINCIPAL": "admin", "KAFKA_SASL_PASSWORD": "secret"}
    env = service_environment("settlement", parent=parent)
    assert env["KAFKA_PRINCIPAL"] == "svc-settlement" and "KAFKA_SASL_PASSWORD" not in env
    own = service_environment("settlement", parent={"KAFKA_PRINCIPAL": "svc-settlement",
                                                    "KAFKA_SASL_PASSWORD": "its own"})
    assert own["KAFKA_SASL_PASSWORD"] == "its own"


def test_a_module_that_is_no_service_gets_no_principal_and_extra_variables_win() -> None:
    env = service_environment("tests.integration.probe_service", DEPLOYMENT,
                              parent={"KAFKA_PRINCIPAL": "admin"}, DATABASE_URL="other")
    assert env["KAFKA_PRINCIPAL"] == "admin" and env["DATABASE_URL"] == "other"


def test_instances_are_named_after_their_service() -> None:
    assert [instance_name("clearing", n) for n in (1, 2, 3)] == [
        "clearing", "clearing-2", "clearing-3"]


def test_unknown_services_and_no_instances_are_refused_before_anything_starts() -> None:
    supervisor = Supervisor(DEPLOYMENT)
    with pytest.raises(ValueError, match="unknown service 'billing'"):
        supervisor.start("billing")
    with pytest.raises(ValueError, match="instances must be 1 or more"):
        supervisor.start("filing", instances=0)
    assert supervisor.processes == {}
