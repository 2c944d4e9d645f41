"""infra/kafka.py's settings for one broker and for a cluster (`infra up --brokers 3`)."""

from __future__ import annotations

from pathlib import Path

from infra import kafka


def _properties(**options: object) -> dict[str, str]:
    text = kafka.server_properties(Path("/data"), 19092, 19093, tls_port=19094,
                                   admin_password="secret", broker_pem=Path("/b.pem"),
                                   ca_pem=Path("/ca.pem"), **options)  # type: ignore[arg-type]
    return dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))


def test_one_broker_is_a_standalone_node_with_replication_1() -> None:
    props = _properties()
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "controller.quorum.voters" not in props
    assert props["default.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"


def test_node_ports_step_by_ten() -> None:
    assert kafka.node_ports(1, 19192, 19193, 19194) == kafka.NodePorts(1, 19192, 19193, 19194)
    assert kafka.node_ports(3, 19192, 19193, 19194) == kafka.NodePorts(3, 19212, 19213, 19214)


def test_a_cluster_node_votes_in_one_quorum_and_replicates_three_times() -> None:
    voters = [kafka.node_ports(n, 19192, 19193, 19194) for n in (1, 2, 3)]
    props = _properties(node_id=2, voters=voters)
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19193,2@127.0.0.1:19203,3@127.0.0.1:19213")
    assert "controller.quorum.bootstrap.servers" not in props
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor",
                "share.coordinator.state.topic.replication.factor"):
        assert props[key] == "3", key
    for key in ("min.insync.replicas", "transaction.state.log.min.isr",
                "share.coordinator.state.topic.min.isr"):
        assert props[key] == "2", key
    # security exactly as one broker's: authenticated listeners, inter-broker included
    single = _properties()
    for key in ("listener.security.protocol.map", "inter.broker.listener.name",
                "sasl.mechanism.inter.broker.protocol", "authorizer.class.name",
                "super.users", "allow.everyone.if.no.acl.found",
                "listener.name.tls.ssl.client.auth", "listener.name.client.plain.sasl.jaas.config"):
        assert props[key] == single[key], key
    assert props["inter.broker.listener.name"] == "CLIENT"
    assert props["listener.security.protocol.map"].startswith("CLIENT:SASL_PLAINTEXT")


def test_replication_follows_the_cluster_size() -> None:
    assert [kafka.replication_for(n) for n in (0, 1, 2, 3, 5)] == [1, 1, 2, 3, 3]


def test_a_cache_remembers_its_cluster(tmp_path: Path) -> None:
    assert kafka.cluster_size(tmp_path) == 1
    first = kafka._cluster_id(tmp_path, 3)  # noqa: SLF001
    assert kafka._cluster_id(tmp_path, 3) == first  # noqa: SLF001 - every node, one id
    assert kafka.cluster_size(tmp_path) == 3


def test_a_cluster_bootstrap_is_one_address_per_broker() -> None:
    from shared.messaging.broker import bootstrap_list

    assert bootstrap_list("127.0.0.1:19192, 127.0.0.1:19202,127.0.0.1:19212") == [
        "127.0.0.1:19192", "127.0.0.1:19202", "127.0.0.1:19212"]
    assert bootstrap_list("127.0.0.1:19092") == ["127.0.0.1:19092"]


def test_a_single_brokers_cache_is_not_turned_into_a_cluster(tmp_path: Path) -> None:
    import pytest

    from infra import InfraError

    data = tmp_path / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("node.id=1\n")
    with pytest.raises(InfraError, match="single Kafka broker"):
        kafka._cluster_id(tmp_path, 3)  # noqa: SLF001
    assert kafka.cluster_size(tmp_path) == 1
