"""The backbone against a real broker and database: inbox, outbox, rejected records, crashes."""

from __future__ import annotations

import asyncio
import copy

import asyncpg
import orjson
import pytest

from shared import topics
from tests.helpers import (
    create_topics,
    new_prefix,
    produce,
    read_topic,
    service_process,
    stop_process,
)

pytestmark = pytest.mark.infra


def submitted(n: int, *, amount: object = "100.50") -> dict:
    return {
        "specversion": "1.0", "id": f"H220102001-{n:06d}", "source": "hospital/H220102001",
        "type": "settlement.submitted", "time": "2026-10-03T09:15:00+08:00",
        "data": {
            "settlement_id": f"S-{n:06d}", "hospital": "H220102001", "person_id": f"P{n % 7}",
            "insured_agency": "220200", "insurance_type": "employee", "visit_type": "outpatient",
            "visit_date": "2026-10-03", "settled_at": "2026-10-03T09:15:00+08:00",
            "emergency": False, "referral": False,
            "items": [{"code": "X1", "name": "consultation", "category": "A", "amount": amount}],
        },
    }


async def _effects(database_url: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "probe"})
    try:
        rows = await conn.fetch("SELECT source, id FROM effects")
        return [(r["source"], r["id"]) for r in rows]
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()


async def _wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.3)


async def test_crash_between_commit_and_publish_loses_and_duplicates_nothing(
    infra, fresh_database, tmp_path
) -> None:
    prefix = new_prefix()
    await create_topics(infra.kafka_bootstrap, prefix)
    bad = submitted(9999, amount=100.5)  # money as a JSON number: breaks the contract
    messages = [submitted(n) for n in range(40)]
    values = [orjson.dumps(m) for m in messages[:20]] + [orjson.dumps(bad)]
    values += [orjson.dumps(m) for m in messages[20:]]
    values += [orjson.dumps(m) for m in messages]  # every valid message delivered twice
    await produce(infra.kafka_bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS,
                  [("P", v) for v in values])
    env = {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap, "DATABASE_URL": fresh_database,
           "CLEARINGHOUSE_TOPIC_PREFIX": prefix}

    crashing = service_process("tests.integration.probe_service", env,
                               tmp_path / "probe-1.log", crash_after_commits=1)
    try:
        code = await asyncio.to_thread(crashing.wait, 90)
        assert code == 86, (tmp_path / "probe-1.log").read_text()
    finally:
        stop_process(crashing)
    committed = await _effects(fresh_database)
    assert committed, "the first batch should have committed before the crash"
    early = await read_topic(infra.kafka_bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                             until=lambda r: True, timeout=5)
    assert early == [], "nothing may be published before the crash: it was after the commit"

    restarted = service_process("tests.integration.probe_service", env, tmp_path / "probe-2.log")
    try:
        async def all_effects() -> bool:
            return len(await _effects(fresh_database)) >= 40
        await _wait_for(all_effects)
        published = await read_topic(
            infra.kafka_bootstrap, prefix + topics.SETTLEMENT_EVENTS,
            until=lambda r: len({x.json()["id"] for x in r}) >= 40)
        rejected = await read_topic(
            infra.kafka_bootstrap, prefix + topics.rejected(topics.SETTLEMENT_SUBMISSIONS),
            until=lambda r: len(r) >= 1)
        await asyncio.sleep(2)  # give a wrongly duplicated effect the time to show
        effects = await _effects(fresh_database)
    finally:
        stop_process(restarted)

    expected = {("hospital/H220102001", m["id"]) for m in messages}
    assert sorted(effects) == sorted(expected), "each event exactly one effect"
    ids = [r.json()["id"] for r in published]
    assert sorted(set(ids)) == sorted(f"probe:hospital/H220102001:{m['id']}" for m in messages)
    assert len(ids) == len(set(ids)), f"duplicates downstream: {len(ids) - len(set(ids))}"
    assert len(rejected) == 1
    assert rejected[0].value == orjson.dumps(bad), "the original bytes are kept"
    assert rejected[0].headers["reason-code"] == b"money_not_string"


async def test_rejected_record_does_not_stop_the_consumer(infra, fresh_database, tmp_path) -> None:
    prefix = new_prefix()
    await create_topics(infra.kafka_bootstrap, prefix)
    env = {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap, "DATABASE_URL": fresh_database,
           "CLEARINGHOUSE_TOPIC_PREFIX": prefix}
    probe = service_process("tests.integration.probe_service", env, tmp_path / "probe.log")
    try:
        bad_values = [b"\xff\xfenot utf-8", b"{not json", b"[]", orjson.dumps({"type": "x"}),
                      orjson.dumps({"id": "1"})]
        three = copy.deepcopy(submitted(2))
        three["data"]["items"][0]["amount"] = "1.005"
        bad_values.append(orjson.dumps(three))
        await produce(infra.kafka_bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS,
                      [(None, v) for v in bad_values] + [("P", orjson.dumps(submitted(1)))])
        rejected = await read_topic(
            infra.kafka_bootstrap, prefix + topics.rejected(topics.SETTLEMENT_SUBMISSIONS),
            until=lambda r: len(r) >= len(bad_values))
        published = await read_topic(infra.kafka_bootstrap, prefix + topics.SETTLEMENT_EVENTS,
                                     until=lambda r: len(r) >= 1)
    finally:
        stop_process(probe)
    codes = sorted(r.headers["reason-code"].decode() for r in rejected)
    assert codes == sorted(["not_utf8", "not_json", "not_an_object", "unknown_type",
                            "missing_type", "money_format"])
    assert {r.value for r in rejected} == set(bad_values)
    assert published[0].json()["data"]["settlement_id"] == "S-000001"


async def test_relay_deletes_exactly_the_rows_it_sent(fresh_database) -> None:
    """Several instances write the outbox at once, so `seq` order is not commit order: a
    row with a lower seq may commit while the relay publishes a batch read before it. The
    relay must delete the rows it sent, not every row up to the batch's last seq (that
    deleted the late row unpublished)."""
    from shared.messaging.outbox import OutboxRelay

    setup = await asyncpg.connect(fresh_database)
    late = await asyncpg.connect(fresh_database)
    relay_conn = await asyncpg.connect(fresh_database)
    try:
        await setup.execute("CREATE SCHEMA relaytest; CREATE TABLE relaytest.outbox ("
                            "seq bigserial PRIMARY KEY, topic text NOT NULL, key bytea, "
                            "value bytea NOT NULL, headers jsonb NOT NULL DEFAULT '[]')")
        await relay_conn.execute("SET search_path = relaytest")
        slow = late.transaction()
        await slow.start()  # an instance's transaction: seq 1, not committed yet
        await late.execute("INSERT INTO relaytest.outbox (topic, value) VALUES ('t', 'late')")
        await setup.execute("INSERT INTO relaytest.outbox (topic, value) VALUES ('t', 'early')")
        sent: list[bytes] = []

        async def publish(topic: str, value: bytes, key: bytes | None,
                          headers: dict[str, str]) -> asyncio.Future[None]:
            sent.append(value)
            if slow is not None and value == b"early":
                await slow.commit()  # commits while the relay is publishing its batch
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        relay = OutboxRelay(fresh_database, "relaytest", publish)
        assert await relay.drain(relay_conn) == 1
        assert sent == [b"early"]
        left = [r["value"] for r in await setup.fetch("SELECT value FROM relaytest.outbox")]
        assert left == [b"late"], "the row committed during the publish must stay to be sent"
        assert await relay.drain(relay_conn) == 1
        assert sent == [b"early", b"late"]
        assert await setup.fetchval("SELECT count(*) FROM relaytest.outbox") == 0
    finally:
        for conn in (setup, late, relay_conn):
            await conn.close()
