"""The broker's ACLs as a pure function of the reference data and the services' inputs and
outputs (shared/acls.py), and how a client finds its credentials (shared/messaging/clients)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared import topics
from shared.acls import Grant, ServiceTopics, grants, principals
from shared.messaging import clients

SERVICES = {
    "filing": ServiceTopics((topics.FILING_COMMANDS, topics.CLEARING_SCHEDULE),
                            (topics.FILING_EVENTS,)),
    "settlement": ServiceTopics((topics.SETTLEMENT_SUBMISSIONS, topics.FILING_EVENTS),
                                (topics.SETTLEMENT_EVENTS,)),
    "clearing": ServiceTopics((topics.SETTLEMENT_EVENTS, topics.CLEARING_SUBMISSIONS,
                               topics.CLEARING_SCHEDULE), (topics.CLEARING_RESULTS,)),
}


def _grants(prefix: str = "") -> set[Grant]:
    return set(grants(hospitals=["H1", "H2"], agencies=["A1", "A2"], services=SERVICES,
                      topic_prefix=prefix, group_prefix="g"))


def _may(all_grants: set[Grant], who: str, operation: str, topic: str) -> bool:
    return any(g.principal == who and g.operation == operation and g.resource == "topic"
               and (g.name == topic or g.name == "*"
                    or (g.pattern == "prefixed" and topic.startswith(g.name)))
               for g in all_grants)


def test_an_agency_reads_only_its_own_results() -> None:
    g = _grants("p.")
    assert _may(g, "agency-A1", "read", "p.clearing.results.A1")
    assert not _may(g, "agency-A1", "read", "p.clearing.results.A2")
    assert not _may(g, "agency-A1", "read", "p.clearing.results")
    assert _may(g, "agency-A1", "write", "p.clearing.submissions")
    assert _may(g, "agency-A1", "write", "p.filing.commands")
    assert not _may(g, "agency-A1", "write", "p.settlement.submissions")


def test_a_hospital_writes_submissions_and_reads_only_its_own_outcomes() -> None:
    g = _grants("p.")
    assert _may(g, "hospital-H1", "write", "p.settlement.submissions")
    assert _may(g, "hospital-H1", "write", "p.filing.commands")
    assert _may(g, "hospital-H1", "read", "p.settlement.events.H1")
    for topic in ("p.settlement.events.H2", "p.settlement.events", "p.clearing.results.A1"):
        assert not _may(g, "hospital-H1", "read", topic)
    for topic in ("p.clearing.submissions", "p.settlement.events", "p.clearing.results"):
        assert not _may(g, "hospital-H1", "write", topic)


def test_services_use_their_own_topics_and_group() -> None:
    g = _grants("p.")
    assert _may(g, "svc-settlement", "write", "p.settlement.events.H2")
    assert _may(g, "svc-settlement", "write", "p.settlement.submissions.rejected")
    assert not _may(g, "svc-settlement", "write", "p.clearing.results")
    assert not _may(g, "svc-filing", "read", "p.settlement.submissions")
    assert _may(g, "svc-clearing", "write", "p.clearing.results.A2")
    assert _may(g, "svc-clearing", "write", "p.clearing.schedule")
    groups = {(x.principal, x.name) for x in g if x.resource == "group"}
    assert ("svc-filing", "g.filing") in groups and ("svc-filing", "g.clearing") not in groups


def test_the_auditor_reads_everything_of_its_namespace_and_writes_nothing() -> None:
    g = _grants("p.")
    assert _may(g, "auditor", "read", "p.clearing.results")
    assert not _may(g, "auditor", "read", "q.clearing.results")
    assert not any(x.principal == "auditor" and x.operation == "write" for x in g)
    production = _grants("")
    assert _may(production, "auditor", "read", "clearing.results")


def test_nothing_is_granted_to_anyone_unnamed_and_admin_needs_no_grant() -> None:
    named = set(principals(hospitals=["H1", "H2"], agencies=["A1", "A2"],
                           services=list(SERVICES)))
    assert {x.principal for x in _grants("p.")} == named
    assert clients.ADMIN not in named


def test_credentials_come_from_the_file_and_never_show(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "kafka-credentials.json"
    path.write_text(json.dumps({"principals": {"agency-A1": {"password": "s3cret-pw"},
                                               "admin": {"password": "adm1n-pw"}}}))
    monkeypatch.setenv("CLEARINGHOUSE_KAFKA_CREDENTIALS", str(path))
    for name in ("KAFKA_PRINCIPAL", "KAFKA_SASL_PASSWORD", "KAFKA_SECURITY_PROTOCOL",
                 "KAFKA_SASL_MECHANISM"):
        monkeypatch.delenv(name, raising=False)
    auth = clients.kafka_auth("agency-A1")
    assert (auth.protocol, auth.mechanism, auth.password) == (
        "SASL_PLAINTEXT", "SCRAM-SHA-512", "s3cret-pw")
    assert "s3cret-pw" not in repr(auth)
    assert clients.kafka_auth().principal == "admin"
    assert clients.kafka_auth().mechanism == "PLAIN"
    with pytest.raises(clients.CredentialsError) as missing:
        clients.kafka_auth("agency-A9")
    assert "s3cret" not in str(missing.value) and "adm1n" not in str(missing.value)


def test_without_any_credentials_a_client_connects_without_authentication(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CLEARINGHOUSE_KAFKA_CREDENTIALS", str(tmp_path / "none.json"))
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL", raising=False)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    assert clients.kafka_auth("svc-filing").aiokafka() == {}


def test_a_kcat_configuration_is_private(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "kafka-credentials.json"
    path.write_text(json.dumps({"principals": {"hospital-H1": {"password": "pw"}}}))
    monkeypatch.setenv("CLEARINGHOUSE_KAFKA_CREDENTIALS", str(path))
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL", raising=False)
    config = clients.write_kcat_config(tmp_path / "h.conf", "127.0.0.1:1", "hospital-H1")
    assert config.stat().st_mode & 0o777 == 0o600
    assert "sasl.username=hospital-H1" in config.read_text()


def test_an_events_source_names_its_principal() -> None:
    assert clients.principal_of_source("hospital/H220202001") == "hospital-H220202001"
    assert clients.principal_of_source("agency/220100") == "agency-220100"
    with pytest.raises(ValueError):
        clients.principal_of_source("scheduler/calendar")
