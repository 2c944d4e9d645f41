"""The audit's comparison of published events (`tools.audit.compare`) without a database:
dead-letter topics compared whatever the replay rebuilt, a second rebuilt copy of an event
reported, records that are no JSON document reported rather than abort, and the errors the
command answers with exit 2."""

from __future__ import annotations

import argparse
import asyncio

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError

from shared import topics
from shared.db import RolesError
from shared.messaging.records import Record
from tools.audit import cli, compare, replay

DEAD = topics.rejected(topics.FILING_COMMANDS)
HEADERS = (("original-topic", b"filing.commands"), ("original-partition", b"0"),
           ("original-offset", b"7"), ("reason-code", b"SCHEMA"), ("reason", b"bad"))


def _event(id_: str, amount: str = "1.00") -> bytes:
    return orjson.dumps({"id": id_, "type": "filing.accepted", "data": {"amount": amount}})


def _dead_letter() -> Record:
    return Record(DEAD, 0, 0, b"P1", b"{not json", HEADERS)


def test_a_dead_letter_record_published_live_but_not_rebuilt_differs() -> None:
    result = compare.Comparison()
    compare.compare_published([], {DEAD: [_dead_letter()]}, compare.OUTPUT_TOPICS, result)
    assert [(d.where, d.field) for d in result.differences] == [(DEAD, "copies")]
    assert [t.topic for t in result.topics if not t.match] == [DEAD]


def test_empty_dead_letter_topics_are_not_listed() -> None:
    result = compare.Comparison()
    compare.compare_published([], {}, compare.OUTPUT_TOPICS, result)
    assert not result.differences
    assert {t.topic for t in result.topics} == set(compare.OUTPUT_TOPICS)


def test_the_command_compares_a_dead_letter_topic_the_replay_did_not_rebuild() -> None:
    async def published(topic: str) -> list[Record]:
        return [_dead_letter()] if topic == DEAD else []

    chains = (0, 0, [], None)
    report = asyncio.run(cli._compare(published, [], [], chains, chains, 0))  # noqa: SLF001
    assert report["match"] is False
    assert [(d["where"], d["field"]) for d in report["differences"]] == [(DEAD, "copies")]


def test_a_second_rebuilt_copy_of_an_event_differs() -> None:
    topic = topics.FILING_EVENTS
    live = [Record(topic, 0, 0, b"P1", _event("e1"))]
    rebuilt = [compare.Rebuilt(topic, b"P1", _event("e1"), ()),
               compare.Rebuilt(topic, b"P1", _event("e1", "2.00"), ())]
    result = compare.Comparison()
    compare.compare_events(topic, rebuilt, live, result)
    assert [(d.key, d.field) for d in result.differences] == [({"id": "e1"}, "rebuilt twice")]
    assert not result.topics[0].match
    # the same bytes twice differ too: the live system published the event once
    result = compare.Comparison()
    compare.compare_events(topic, [rebuilt[0], rebuilt[0]], live, result)
    assert [d.field for d in result.differences] == ["rebuilt twice"]


@pytest.mark.parametrize("value", [b"", b"not json"])
def test_a_record_on_an_output_topic_that_is_no_json_is_reported(value: bytes) -> None:
    topic = topics.SETTLEMENT_EVENTS
    result = compare.Comparison()
    compare.compare_events(topic, [], [Record(topic, 1, 5, b"P1", value)], result)
    assert [(d.key, d.kind, d.live) for d in result.differences] == [
        ({"id": f"{topic}/1@5"}, "only_live", value.decode())]


def _args() -> argparse.Namespace:
    return argparse.Namespace(prefix="p.", database_url=None, order="inbox", keep=False,
                              merge_limit=replay.MERGE_LIMIT, processes="auto", groups=0,
                              in_memory=False, resume=None, stop_after=None, json=True,
                              quiet=True)


@pytest.mark.parametrize("error", [
    KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 1)]"),
    RolesError("no password for database role 'ch_auditor'"),
    replay.RebuildDied("the settlement rebuild process ended without an answer (exit code -9)"),
])
def test_errors_of_the_environment_end_with_exit_2_and_a_message(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        error: Exception) -> None:
    async def failing(**_: object) -> None:
        raise error

    monkeypatch.setattr(cli, "run_audit", failing)
    assert cli._replay(_args()) == 2  # noqa: SLF001
    assert f"audit replay failed: {error}" in " ".join(capsys.readouterr().err.split())


def test_a_bug_still_ends_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing(**_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "run_audit", failing)
    with pytest.raises(RuntimeError, match="a bug"):
        cli._replay(_args())  # noqa: SLF001
