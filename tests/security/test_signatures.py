"""Signed submissions under attack, against real Kafka and PostgreSQL with the three
services running (docs/security.md, "Signed submissions").

Every attack is published as an outside party would, with a plain producer; the services
must forward it to ``<topic>.rejected`` with the reason code and answer the sender where
the contract names an error event. Revocation runs on a copy of the session's keys, so the
other tests keep theirs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared import inbound, participant_keys, topics
from shared.config import REPO_ROOT
from shared.participant_keys import Signer
from tests.helpers import (
    Read,
    Services,
    envelope,
    own_database,
    produce,
    read_topic,
    running_services,
)

pytestmark = pytest.mark.infra

HOSPITAL = "H220102001"  # 长春, level 3
OTHER_HOSPITAL = "H220104001"  # 长春, another hospital
REVOKED_HOSPITAL = "H220202001"  # 吉林市: its key is revoked in the revocation test
INSURED, CARE = "220200", "220100"


@dataclass
class Installation:
    bootstrap: str
    prefix: str
    database_url: str
    services: Services


async def _installation(infra: Any, logs: Path, **env: str) -> AsyncIterator[Installation]:
    # each service's role owns its schema (own_database prepares it)
    async with (own_database(infra.database_url) as database_url,
                running_services(infra.kafka_bootstrap, database_url, logs,
                                 "filing", "settlement", "clearing", **env) as services):
        yield Installation(infra.kafka_bootstrap, services.prefix, database_url, services)


@pytest.fixture(scope="module")
async def running(infra, tmp_path_factory) -> AsyncIterator[Installation]:
    """One installation for the attacks (each uses persons and ids of its own)."""
    async for installation in _installation(infra, tmp_path_factory.mktemp("security")):
        yield installation


def submission(settlement_id: str, person: str, *, hospital: str = HOSPITAL,
               amount: str = "300.00", source: str | None = None, id: str | None = None,
               insured: str = INSURED) -> bytes:
    return envelope("settlement.submitted", {
        "settlement_id": settlement_id, "hospital": hospital, "person_id": person,
        "insured_agency": insured, "insurance_type": "employee", "visit_type": "outpatient",
        "visit_date": "2026-10-03", "settled_at": "2026-10-03T09:15:00+08:00",
        "emergency": False, "referral": False,
        "items": [{"code": "EXAM", "name": "检查", "category": "A", "amount": amount}],
    }, id=id or f"{hospital}-{settlement_id}", source=source or f"hospital/{hospital}")


async def send(inst: Installation, topic: str, key: str, value: bytes,
               headers: list[tuple[str, bytes]]) -> None:
    """Publish one record with exactly these headers (what the attacker chose)."""
    from shared.messaging import clients

    producer = clients.producer(inst.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(inst.prefix + topic, value, key=key.encode(),
                                     headers=headers)
    finally:
        await producer.stop()


async def refused(inst: Installation, topic: str, event_id: str) -> Read:
    """The copy of the record with id `event_id` on ``<topic>.rejected``."""
    def found(records: list[Read]) -> bool:
        return any(r.json().get("id") == event_id for r in records)

    records = await read_topic(inst.bootstrap, inst.prefix + topics.rejected(topic),
                               until=found, timeout=90)
    return next(r for r in records if r.json().get("id") == event_id)


async def answers(inst: Installation, topic: str, until: Callable[[list[dict[str, Any]]], bool]
                  ) -> list[dict[str, Any]]:
    records = await read_topic(inst.bootstrap, inst.prefix + topic,
                               until=lambda rs: until([r.json() for r in rs]), timeout=90)
    return [r.json() for r in records]


def reason(record: Read) -> str:
    return record.headers["reason-code"].decode()


def _answered(events: list[dict[str, Any]], settlement_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["data"].get("settlement_id") == settlement_id]


async def test_a_hospital_publishing_as_another_hospital_is_signer_mismatch(running) -> None:
    # H220104001 signs with its own key a settlement that claims to come from H220102001.
    value = submission("SEC-FORGED", "P-SEC-1")
    await send(running, topics.SETTLEMENT_SUBMISSIONS, "P-SEC-1", value,
               inbound.signature_headers(value, source=f"hospital/{OTHER_HOSPITAL}"))
    copy = await refused(running, topics.SETTLEMENT_SUBMISSIONS, f"{HOSPITAL}-SEC-FORGED")
    assert reason(copy) == "signer_mismatch"
    assert copy.value == value  # the original bytes, kept
    events = await answers(running, topics.SETTLEMENT_EVENTS,
                           lambda es: bool(_answered(es, "SEC-FORGED")))
    [answer] = _answered(events, "SEC-FORGED")
    assert answer["type"] == "settlement.rejected"
    assert answer["data"]["reasons"][0]["code"] == "signer_mismatch"


async def test_an_amount_changed_after_signing_is_signature_invalid(running) -> None:
    value = submission("SEC-TAMPERED", "P-SEC-2", amount="300.00")
    headers = inbound.signature_headers(value)  # the hospital's genuine signature
    tampered = value.replace(b'"amount":"300.00"', b'"amount":"3000.00"')
    assert tampered != value
    await send(running, topics.SETTLEMENT_SUBMISSIONS, "P-SEC-2", tampered, headers)
    copy = await refused(running, topics.SETTLEMENT_SUBMISSIONS, f"{HOSPITAL}-SEC-TAMPERED")
    assert reason(copy) == "signature_invalid"
    assert b"3000.00" in copy.value


async def test_an_unsigned_submission_is_signature_missing(running) -> None:
    value = submission("SEC-UNSIGNED", "P-SEC-3")
    await send(running, topics.SETTLEMENT_SUBMISSIONS, "P-SEC-3", value, [])
    copy = await refused(running, topics.SETTLEMENT_SUBMISSIONS, f"{HOSPITAL}-SEC-UNSIGNED")
    assert reason(copy) == "signature_missing"


async def test_an_unsigned_filing_command_is_refused_and_answered(running) -> None:
    value = envelope("filing.requested", {
        "filing_id": "F-SEC-4", "person_id": "P-SEC-4", "insured_agency": INSURED,
        "insurance_type": "employee", "category": "relocated_retiree", "destination": CARE,
        "valid_from": "2026-10-01", "materials": ["credential", "relocation_proof"],
        "commitment": False, "channel": "online"},
        id="F-SEC-4", source=f"agency/{INSURED}", time="2026-09-30T10:00:00+08:00")
    await produce(running.bootstrap, running.prefix + topics.FILING_COMMANDS,
                  [("P-SEC-4", value)], sign=False)
    copy = await refused(running, topics.FILING_COMMANDS, "F-SEC-4")
    assert reason(copy) == "signature_missing"
    events = await answers(running, topics.FILING_EVENTS, lambda es: any(
        e["data"].get("filing_id") == "F-SEC-4" for e in es))
    [answer] = [e for e in events if e["data"].get("filing_id") == "F-SEC-4"]
    assert answer["type"] == "filing.rejected"
    assert answer["data"]["reasons"][0]["code"] == "signature_missing"


async def test_an_agency_confirming_for_another_agency_is_signer_mismatch(running) -> None:
    # 长春 (220100) signs, with its own key, a confirmation in the name of 吉林市 (220200).
    value = envelope("clearing.statement_confirmed", {"agency": INSURED, "cycle": "2026-10"},
                     id="SEC-CONFIRM", source=f"agency/{INSURED}",
                     time="2026-11-03T08:00:00+08:00")
    await send(running, topics.CLEARING_SUBMISSIONS, INSURED, value,
               inbound.signature_headers(value, source=f"agency/{CARE}"))
    copy = await refused(running, topics.CLEARING_SUBMISSIONS, "SEC-CONFIRM")
    assert reason(copy) == "signer_mismatch"
    results = await answers(running, topics.CLEARING_RESULTS, lambda es: any(
        e["type"] == "clearing.submission_rejected" and e["data"]["reasons"][0]["code"]
        == "signer_mismatch" for e in es))
    assert any(e["data"]["agency"] == INSURED for e in results
               if e["type"] == "clearing.submission_rejected")


async def test_a_replay_under_a_new_id_fails_and_the_same_bytes_again_have_no_effect(
        running) -> None:
    value = submission("SEC-REPLAY", "P-SEC-5")
    headers = inbound.signature_headers(value)
    # Genuine, then the same bytes again (a replay as is), then under a new id.
    replayed = value.replace(b'"id":"H220102001-SEC-REPLAY"', b'"id":"H220102001-SEC-REPLAY-2"')
    assert replayed != value
    for bytes_ in (value, value, replayed):
        await send(running, topics.SETTLEMENT_SUBMISSIONS, "P-SEC-5", bytes_, headers)
    copy = await refused(running, topics.SETTLEMENT_SUBMISSIONS, "H220102001-SEC-REPLAY-2")
    # The id is inside the signed bytes: a new id breaks the signature.
    assert reason(copy) == "signature_invalid"
    # A sentinel behind them on the same partition: once it is answered, all three were read.
    sentinel = submission("SEC-REPLAY-SENTINEL", "P-SEC-5")
    await send(running, topics.SETTLEMENT_SUBMISSIONS, "P-SEC-5", sentinel,
               inbound.signature_headers(sentinel))
    events = await answers(running, topics.SETTLEMENT_EVENTS,
                           lambda es: bool(_answered(es, "SEC-REPLAY-SENTINEL")))
    # The same bytes twice: the inbox drops the second, so one effect, not two; the one
    # under a new id is answered as refused (signature_invalid), and has no other effect.
    answered = _answered(events, "SEC-REPLAY")
    codes = sorted((e["data"].get("reasons") or [{"code": "-"}])[0]["code"] for e in answered)
    effects = [c for c in codes if c != "signature_invalid"]
    assert len(answered) == 2 and len(effects) == 1, answered
    rejected = await read_topic(running.bootstrap, running.prefix + topics.rejected(
        topics.SETTLEMENT_SUBMISSIONS), until=lambda rs: any(
            r.json()["id"] == "H220102001-SEC-REPLAY-2" for r in rs))
    assert [r.json()["id"] for r in rejected if "SEC-REPLAY" in r.json()["id"]] == [
        "H220102001-SEC-REPLAY-2"]


async def test_a_revoked_key_is_key_revoked_and_the_rotated_key_works(
        infra, session_keys: Path, tmp_path: Path) -> None:
    registry = tmp_path / "participant-keys.toml"
    secrets = tmp_path / "keys"
    shutil.copy(session_keys, registry)
    shutil.copytree(session_keys.parent / "keys", secrets)
    signer = Signer(registry, secrets)
    participant = f"hospital-{REVOKED_HOSPITAL}"
    old = participant_keys.read_registry(registry).current(participant)
    assert old is not None
    # Rotate, then revoke the old key with the command an operator uses.
    env = {"CLEARINGHOUSE_PARTICIPANT_KEYS": str(registry),
           "CLEARINGHOUSE_PARTICIPANT_SECRETS": str(secrets)}
    for argv in (["--rotate", participant], ["--revoke", old.kid]):
        subprocess.run([sys.executable, "-m", "cli", "participants", "keys", *argv],
                       env={**os.environ, **env}, cwd=REPO_ROOT, check=True,
                       capture_output=True)
    new = participant_keys.read_registry(registry).current(participant)
    assert new is not None and new.kid != old.kid
    async for inst in _installation(infra, tmp_path, **env):
        stolen = submission("SEC-REVOKED", "P-SEC-6", hospital=REVOKED_HOSPITAL,
                            insured=CARE)
        await send(inst, topics.SETTLEMENT_SUBMISSIONS, "P-SEC-6", stolen,
                   inbound.signature_headers(stolen, kid=old.kid, signer=signer))
        fresh = submission("SEC-ROTATED", "P-SEC-6", hospital=REVOKED_HOSPITAL, insured=CARE)
        await send(inst, topics.SETTLEMENT_SUBMISSIONS, "P-SEC-6", fresh,
                   inbound.signature_headers(fresh, signer=signer))
        copy = await refused(inst, topics.SETTLEMENT_SUBMISSIONS,
                             f"{REVOKED_HOSPITAL}-SEC-REVOKED")
        assert reason(copy) == "key_revoked"
        events = await answers(inst, topics.SETTLEMENT_EVENTS, lambda es: bool(
            _answered(es, "SEC-ROTATED")) and bool(_answered(es, "SEC-REVOKED")))
        [revoked] = _answered(events, "SEC-REVOKED")
        assert revoked["data"]["reasons"][0]["code"] == "key_revoked"
        [rotated] = _answered(events, "SEC-ROTATED")
        assert not any(r["code"].startswith(("signature", "key_", "signer")) for r in
                       rotated["data"].get("reasons", []))


async def test_the_audit_verifies_the_whole_log_after_the_attacks(running) -> None:
    """Run last in this module: every record that did not verify was refused (exit 0), the
    report counts them per reason, and a replay of the log refuses the same records."""
    await refused(running, topics.SETTLEMENT_SUBMISSIONS, "H220102001-SEC-REPLAY-2")
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "audit", "verify-signatures", "--json",
        "--prefix", running.prefix, cwd=REPO_ROOT, env={**os.environ,
                                                         "KAFKA_BOOTSTRAP_SERVERS":
                                                         running.bootstrap},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await done.communicate()
    assert done.returncode == 0, err.decode()[-2000:]
    report = orjson.loads(out)
    failures = {f["reason_code"]: f for f in report["failures"]}
    assert {"signer_mismatch", "signature_invalid", "signature_missing"} <= set(failures)
    assert all(f["status"] == "rejected" for f in report["failures"])
    assert report["verified"][topics.SETTLEMENT_SUBMISSIONS] >= 2

    # Replayed from the log, the refusals are the same refusals: the audit matches.
    replay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "audit", "replay", "--json", "--quiet",
        "--prefix", running.prefix, "--database-url", running.database_url, cwd=REPO_ROOT,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": running.bootstrap},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await replay.communicate()
    audit = orjson.loads(out)
    assert replay.returncode == 0 and audit["match"], (audit.get("differences"),
                                                        err.decode()[-2000:])

