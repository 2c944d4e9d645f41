"""Attacks on the broker's authentication and ACLs, against the real broker (SASL/SCRAM
and mutual TLS listeners, StandardAuthorizer, no ACL means no access).

Each test is one promise of docs/security.md: a participant cannot read what is not
addressed to it, cannot write where it has no business, and nobody gets in without
the right password or certificate.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)

from shared import topics
from shared.messaging import clients
from shared.messaging.clients import (
    AUDITOR,
    KafkaAuth,
    agency_principal,
    hospital_principal,
    service_principal,
    write_kcat_config,
)
from tests.helpers import create_topics, new_prefix

pytestmark = pytest.mark.infra

AGENCY, OTHER_AGENCY = "220100", "220200"
HOSPITAL, OTHER_HOSPITAL = "H220202001", "H220102001"


@pytest.fixture(scope="module")
def namespace(infra) -> str:  # type: ignore[no-untyped-def]
    if clients.kafka_auth().protocol == "PLAINTEXT":
        pytest.skip("the broker of this run has no authentication (env/testcontainers)")
    prefix = new_prefix()
    from infra.local import run_sync

    run_sync(create_topics(infra.kafka_bootstrap, prefix))
    return prefix


async def _read(bootstrap: str, topic: str, principal: str, **options: object) -> None:
    options = {"group_id": None, **options}
    consumer = clients.consumer(topic, bootstrap=bootstrap, principal=principal,
                                auto_offset_reset="earliest", request_timeout_ms=10000,
                                **options)
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=3000)
        await consumer.getmany(timeout_ms=1000)
    finally:
        await consumer.stop()


async def _write(bootstrap: str, topic: str, principal: str, idempotent: bool = True) -> None:
    producer = clients.producer(bootstrap, principal=principal, enable_idempotence=idempotent,
                                request_timeout_ms=10000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"x")
    finally:
        await producer.stop()


async def test_an_agency_reads_its_own_results_topic(infra, namespace) -> None:
    await _read(infra.kafka_bootstrap, namespace + topics.agency_results(AGENCY),
                agency_principal(AGENCY))


async def test_an_agency_cannot_read_another_agencys_results(infra, namespace) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(infra.kafka_bootstrap, namespace + topics.agency_results(OTHER_AGENCY),
                    agency_principal(AGENCY))


async def test_an_agency_cannot_read_the_shared_results_topic(infra, namespace) -> None:
    """clearing.results (every agency's results) is for the services and the auditor."""
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(infra.kafka_bootstrap, namespace + topics.CLEARING_RESULTS,
                    agency_principal(AGENCY))


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
async def test_kcat_as_an_agency_is_refused_another_agencys_results(
        infra, namespace, tmp_path: Path) -> None:
    bootstrap, protocol = ((infra.kafka_tls_bootstrap, "SSL") if infra.kafka_tls_bootstrap
                           else (infra.kafka_bootstrap, None))
    config = write_kcat_config(tmp_path / "agency.conf", bootstrap, agency_principal(AGENCY),
                               protocol)
    own = subprocess.run(["kcat", "-F", str(config), "-C", "-t",
                          namespace + topics.agency_results(AGENCY), "-o", "beginning", "-e",
                          "-q"], capture_output=True, text=True, timeout=60)
    assert own.returncode == 0, own.stderr
    other = subprocess.run(["kcat", "-F", str(config), "-C", "-t",
                            namespace + topics.agency_results(OTHER_AGENCY), "-o", "beginning",
                            "-e", "-q"], capture_output=True, text=True, timeout=60)
    assert other.returncode != 0
    assert "Topic authorization failed" in other.stderr, other.stderr


async def test_an_agency_cannot_use_another_agencys_consumer_group(infra, namespace) -> None:
    with pytest.raises(GroupAuthorizationFailedError):
        await _read(infra.kafka_bootstrap, namespace + topics.agency_results(AGENCY),
                    agency_principal(AGENCY),
                    group_id=f"{agency_principal(OTHER_AGENCY)}-reader")


@pytest.mark.parametrize("topic", [topics.CLEARING_SUBMISSIONS, topics.SETTLEMENT_EVENTS,
                                   topics.CLEARING_RESULTS, topics.FILING_EVENTS])
async def test_a_hospital_cannot_write_outside_its_topics(infra, namespace, topic) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await _write(infra.kafka_bootstrap, namespace + topic, hospital_principal(HOSPITAL))


async def test_a_hospital_writes_submissions_and_reads_only_its_own_outcomes(
        infra, namespace) -> None:
    await _write(infra.kafka_bootstrap, namespace + topics.SETTLEMENT_SUBMISSIONS,
                 hospital_principal(HOSPITAL))
    await _read(infra.kafka_bootstrap, namespace + topics.hospital_outcomes(HOSPITAL),
                hospital_principal(HOSPITAL))
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(infra.kafka_bootstrap, namespace + topics.hospital_outcomes(OTHER_HOSPITAL),
                    hospital_principal(HOSPITAL))
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(infra.kafka_bootstrap, namespace + topics.SETTLEMENT_EVENTS,
                    hospital_principal(HOSPITAL))


@pytest.mark.parametrize("topic", [topics.SETTLEMENT_SUBMISSIONS, topics.CLEARING_RESULTS,
                                   topics.FILING_COMMANDS])
async def test_the_auditor_reads_everything_and_writes_nothing(infra, namespace, topic) -> None:
    await _read(infra.kafka_bootstrap, namespace + topic, AUDITOR)
    with pytest.raises(TopicAuthorizationFailedError):
        await _write(infra.kafka_bootstrap, namespace + topic, AUDITOR, idempotent=False)
    # an idempotent producer is refused even earlier: it may write nowhere at all
    with pytest.raises(ClusterAuthorizationFailedError):
        await _write(infra.kafka_bootstrap, namespace + topic, AUDITOR)


async def test_a_service_cannot_write_another_services_output(infra, namespace) -> None:
    """The filing service publishes filing.events; it has no business on settlement.events
    or clearing.results (nor the settlement service on clearing.results)."""
    for who, topic in ((service_principal("filing"), topics.SETTLEMENT_EVENTS),
                       (service_principal("filing"), topics.CLEARING_RESULTS),
                       (service_principal("settlement"), topics.CLEARING_RESULTS)):
        with pytest.raises(TopicAuthorizationFailedError):
            await _write(infra.kafka_bootstrap, namespace + topic, who)


async def test_a_wrong_password_is_refused(infra, namespace, caplog) -> None:
    right = clients.kafka_auth(agency_principal(AGENCY))
    wrong = KafkaAuth(right.principal, right.password + "x", right.protocol, right.mechanism)
    consumer = __import__("aiokafka").AIOKafkaConsumer(
        namespace + topics.agency_results(AGENCY), bootstrap_servers=infra.kafka_bootstrap,
        group_id=None, request_timeout_ms=10000, **wrong.aiokafka())
    with pytest.raises((SaslAuthenticationFailed, KafkaConnectionError)):
        await consumer.start()
    await consumer.stop()
    # aiokafka logs the broker's answer and gives up bootstrapping
    assert "invalid credentials" in caplog.text


async def test_no_login_no_entry(infra, namespace) -> None:
    """A client without SASL on the authenticated listener gets nothing: the connection is
    dropped before any request is answered."""
    consumer = __import__("aiokafka").AIOKafkaConsumer(
        namespace + topics.SETTLEMENT_SUBMISSIONS, bootstrap_servers=infra.kafka_bootstrap,
        group_id=None, request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(consumer.start(), 30)
    await consumer.stop()


async def test_deleting_a_namespaces_topics_removes_their_acls(infra) -> None:
    """Every test and demo namespace leaves its topics' ACLs on the broker unless deleting
    the topics removes them too; they used to pile up (thousands per suite run) until
    every sync's describe was slow, and librdkafka crashed on the answer."""
    from infra.kafka import delete_topics
    from infra.participants import _admin, resource_acls

    if clients.kafka_auth().protocol == "PLAINTEXT":
        pytest.skip("the broker of this run has no authentication (env/testcontainers)")
    prefix = new_prefix()
    await create_topics(infra.kafka_bootstrap, prefix)
    results = prefix + topics.agency_results(AGENCY)
    probe = [g for g in _namespace_grants(prefix) if g.name == results]
    assert probe, "the namespace's sync grants the agency its results topic"
    admin = _admin(infra.kafka_bootstrap)
    assert await asyncio.to_thread(resource_acls, admin, probe)
    deleted = await delete_topics(infra.kafka_bootstrap, lambda n: n.startswith(prefix))
    assert results in deleted
    left = probe
    for _ in range(300):  # the broker applies the deletion from its metadata log
        left = await asyncio.to_thread(resource_acls, admin, probe)
        if not left:
            break
        await asyncio.sleep(0.1)
    assert left == []


def _namespace_grants(prefix: str):  # type: ignore[no-untyped-def]
    from infra.participants import namespace_grants

    return namespace_grants(prefix)
