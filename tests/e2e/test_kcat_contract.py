"""The contract is language-neutral: a hospital and an agency using nothing but kcat.

The agency files with kcat, the hospital settles with kcat, and both read the results
with kcat, each logged in as itself (a kcat configuration file as README.md shows) and
each signing its submissions with openssl and the shell (no project code computes the
signature); the services run as processes against the real broker and database.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from shared import participant_keys, topics
from shared.messaging.clients import (
    AUDITOR,
    agency_principal,
    hospital_principal,
    write_kcat_config,
)
from tests.helpers import ENROLMENT_TYPES, running_services, wait_enrolled

pytestmark = [pytest.mark.infra,
              pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed"),
              pytest.mark.skipif(shutil.which("openssl") is None,
                                 reason="openssl is not installed")]

PERSON = "P-KCAT-1"
HOSPITAL = "H220202001"  # 吉林市中心医院, level 3, 吉林市昌邑区


#: The hospital's or agency's signature with the shell's tools only: the detached JWS
#: (RFC 7515 appendix F) of the value bytes, EdDSA by `openssl pkeyutl -rawin` with the
#: participant's PEM private key, base64url by `base64 | tr`, sent as kcat's `-H ce-jws=…`.
SIGN_AND_PRODUCE = r"""
set -euo pipefail
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
header=$(printf '%s' "{\"alg\":\"EdDSA\",\"kid\":\"$KID\"}" | b64url)
payload=$(printf '%s' "$VALUE" | b64url)
input=$(mktemp)  # Ed25519 signs in one shot: openssl 3.0 wants a file, not a pipe
trap 'rm -f "$input"' EXIT
printf '%s.%s' "$header" "$payload" > "$input"
signature=$(openssl pkeyutl -sign -rawin -inkey "$PRIVATE_KEY" -in "$input" | b64url)
printf '%s\n' "$VALUE" | kcat -F "$CONFIG" -P -t "$TOPIC" -k "$KEY" \
    -H "ce-jws=$header..$signature"
"""


def kcat_produce(config: Path, topic: str, key: str, document: dict) -> None:
    """Publish `document` with kcat, signed by the participant its `source` names."""
    value = json.dumps(document, ensure_ascii=False)
    kind, _, code = document["source"].partition("/")
    kid = participant_keys.read_registry().current(f"{kind}-{code}").kid
    env = {**os.environ, "VALUE": value, "KID": kid, "CONFIG": str(config), "TOPIC": topic,
           "KEY": key, "PRIVATE_KEY": str(participant_keys.private_key_file(kid))}
    subprocess.run(["bash", "-c", SIGN_AND_PRODUCE], env=env, check=True, timeout=30)


def kcat_enrol(config: Path, topic: str, person: str, insurance_type: str, *, id: str,
               agency: str = "220100", effective: str = "2026-01-01") -> None:
    """The insuring `agency`'s ``person.enrolled`` of `person` (参保登记), with kcat."""
    kcat_produce(config, topic, person, {
        "specversion": "1.0", "id": id, "source": f"agency/{agency}",
        "type": "person.enrolled", "time": "2026-09-01T08:00:00+08:00",
        "data": {"person_id": person, "insured_agency": agency,
                 "insurance_type": insurance_type, "effective": effective}})


def kcat_config(infra, tmp_path: Path, principal: str) -> Path:  # type: ignore[no-untyped-def]
    """The kcat configuration a participant keeps for itself. Debian 12's kcat links
    librdkafka 2.0.2, whose SCRAM Kafka 4 refuses (fixed in librdkafka 2.6.1): it logs in
    with its client certificate on the TLS listener where the broker has one."""
    bootstrap, protocol = ((infra.kafka_tls_bootstrap, "SSL") if infra.kafka_tls_bootstrap
                           else (infra.kafka_bootstrap, None))
    return write_kcat_config(tmp_path / f"{principal}.conf", bootstrap, principal, protocol)


def kcat_read(config: Path, topic: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(
            ["kcat", "-F", str(config), "-C", "-t", topic, "-o", "beginning", "-e", "-q",
             "-f", "%s\n"], capture_output=True, timeout=30, check=True)
        lines = [line for line in result.stdout.decode().splitlines() if line.strip()]
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.5)


async def test_agency_and_hospital_with_plain_kcat(infra, fresh_database, tmp_path) -> None:
    agency = kcat_config(infra, tmp_path, agency_principal("220100"))
    hospital = kcat_config(infra, tmp_path, hospital_principal(HOSPITAL))
    auditor = kcat_config(infra, tmp_path, AUDITOR)
    async with running_services(infra.kafka_bootstrap, fresh_database, tmp_path,
                                "filing", "settlement") as services:
        prefix = services.prefix
        # The agency enrols the person (参保登记) before filing for them.
        kcat_enrol(agency, prefix + topics.FILING_COMMANDS, PERSON, "resident",
                   id="agency-220100-0000")
        kcat_produce(agency, prefix + topics.FILING_COMMANDS, PERSON, {
            "specversion": "1.0", "id": "agency-220100-0001", "source": "agency/220100",
            "type": "filing.requested", "time": "2026-10-01T08:00:00+08:00",
            "data": {"filing_id": "F-KCAT-1", "person_id": PERSON, "insured_agency": "220100",
                     "insurance_type": "resident", "category": "referral",
                     "destination": "220200", "destination_hospital": HOSPITAL,
                     "valid_from": "2026-10-01",
                     "materials": ["credential", "referral_certificate"],
                     "commitment": False, "channel": "offline"}})
        filings = [e for e in await asyncio.to_thread(
            kcat_read, agency, prefix + topics.FILING_EVENTS, 2)
            if e["type"] not in ENROLMENT_TYPES]
        assert filings[0]["type"] == "filing.registered", filings
        await wait_enrolled(fresh_database, [PERSON])
        await asyncio.sleep(1.0)
        kcat_produce(hospital, prefix + topics.SETTLEMENT_SUBMISSIONS, PERSON, {
            "specversion": "1.0", "id": "H220202001-000001", "source": f"hospital/{HOSPITAL}",
            "type": "settlement.submitted", "time": "2026-10-03T09:15:00+08:00",
            "data": {"settlement_id": "S-KCAT-1", "hospital": HOSPITAL, "person_id": PERSON,
                     "insured_agency": "220100", "insurance_type": "resident",
                     "visit_type": "inpatient", "admitted_on": "2026-10-01",
                     "discharged_on": "2026-10-03", "settled_at": "2026-10-03T09:15:00+08:00",
                     "emergency": False, "referral": True,
                     "items": [{"code": "BED", "name": "床位费", "category": "A",
                                "amount": "3000.00"}]}})
        # and one that breaks the contract: money as a JSON number
        kcat_produce(hospital, prefix + topics.SETTLEMENT_SUBMISSIONS, PERSON, {
            "specversion": "1.0", "id": "H220202001-000002", "source": f"hospital/{HOSPITAL}",
            "type": "settlement.submitted", "time": "2026-10-03T09:20:00+08:00",
            "data": {"settlement_id": "S-KCAT-2", "hospital": HOSPITAL, "person_id": PERSON,
                     "insured_agency": "220100", "insurance_type": "resident",
                     "visit_type": "outpatient", "visit_date": "2026-10-03",
                     "settled_at": "2026-10-03T09:20:00+08:00", "emergency": False,
                     "referral": False,
                     "items": [{"code": "REG", "name": "挂号", "category": "A", "amount": 12.5}]}})
        results = await asyncio.to_thread(
            kcat_read, hospital, prefix + topics.hospital_outcomes(HOSPITAL), 2)
        rejected = await asyncio.to_thread(
            kcat_read, auditor, prefix + topics.rejected(topics.SETTLEMENT_SUBMISSIONS), 1)
    completed = next(e for e in results if e["type"] == "settlement.completed")["data"]
    assert completed["settlement_id"] == "S-KCAT-1"
    assert completed["tier"] == 2  # referral across cities: Jilin 2022 tier 2
    for field in ("total", "fund_pay", "account_pay", "cash_pay", "cleared_amount"):
        assert isinstance(completed[field], str) and completed[field].count(".") == 1
    from decimal import Decimal
    parts = sum(Decimal(completed[f]) for f in ("fund_pay", "account_pay", "cash_pay"))
    assert parts == Decimal(completed["total"]) == Decimal("3000.00")
    answer = next(e for e in results if e["type"] == "settlement.rejected")["data"]
    assert answer["settlement_id"] == "S-KCAT-2"
    assert answer["reasons"][0]["code"] == "money_not_string"
    assert rejected[0]["data"]["settlement_id"] == "S-KCAT-2"  # the original bytes
