"""Signing and verifying submissions (shared.signatures), and the auditor's check of a log
(tools.audit.signatures): pure functions over bytes, keys in memory, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from joserfc.jwk import OKPKey

from shared import inbound, signatures
from shared.events import Rejection
from shared.messaging.records import Record
from shared.signatures import KeyRegistry, PublicKey, participant_of, sign, verify
from tests.unit.test_events import SUBMITTED
from tools.audit.signatures import check, rejected_positions

T0 = datetime(2026, 10, 1, tzinfo=UTC)
SENT = datetime(2026, 10, 3, 1, 15, tzinfo=UTC)


def _key(participant: str, serial: int = 1, revoked_at: datetime | None = None
         ) -> tuple[OKPKey, PublicKey]:
    private = OKPKey.generate_key("Ed25519")
    public = PublicKey(participant, f"{participant}.{serial}",
                       str(private.as_dict(private=False)["x"]), T0, revoked_at)
    return private, public


HOSPITAL_KEY, HOSPITAL_PUBLIC = _key("hospital-H220102001")
OTHER_KEY, OTHER_PUBLIC = _key("hospital-H220104001")
REGISTRY = KeyRegistry([HOSPITAL_PUBLIC, OTHER_PUBLIC])
VALUE = inbound.envelope("settlement.submitted", {"settlement_id": "S1", "hospital": "H220102001"},
                         id="H220102001-S1", source="hospital/H220102001",
                         time="2026-10-03T09:15:00+08:00")


def _code(value: bytes, header: bytes | None, source: str = "hospital/H220102001",
          registry: KeyRegistry = REGISTRY, at: datetime = SENT) -> str:
    with pytest.raises(Rejection) as caught:
        verify(value, header, source, registry, at)
    return caught.value.code


def test_a_detached_jws_over_the_value_bytes_verifies() -> None:
    token = sign(VALUE, HOSPITAL_KEY, HOSPITAL_PUBLIC.kid)
    protected, payload, signature = token.split(".")
    assert payload == "" and protected and signature  # detached: <header>..<signature>
    assert verify(VALUE, token.encode(), "hospital/H220102001", REGISTRY, SENT) is HOSPITAL_PUBLIC


@pytest.mark.parametrize(("header", "code"), [
    (None, "signature_missing"),
    (b"not a jws", "signature_invalid"),
    (b"\xff\xfe", "signature_invalid"),
    (b"e30..AAAA", "signature_invalid"),  # {} as header: no alg, no kid
])
def test_missing_and_malformed_signatures(header: bytes | None, code: str) -> None:
    assert _code(VALUE, header) == code


def test_any_changed_byte_is_signature_invalid() -> None:
    token = sign(VALUE, HOSPITAL_KEY, HOSPITAL_PUBLIC.kid).encode()
    assert _code(VALUE.replace(b"S1", b"S2"), token) == "signature_invalid"
    assert _code(VALUE + b" ", token) == "signature_invalid"  # even insignificant whitespace
    new_id = VALUE.replace(b'"id":"H220102001-S1"', b'"id":"H220102001-S9"')
    assert _code(new_id, token) == "signature_invalid"  # a replay under a new id


def test_an_attached_payload_or_another_algorithm_is_signature_invalid() -> None:
    token = sign(VALUE, HOSPITAL_KEY, HOSPITAL_PUBLIC.kid)
    protected, _, signature = token.split(".")
    attached = f"{protected}.{signatures._b64(VALUE)}.{signature}".encode()
    assert _code(VALUE, attached) == "signature_invalid"
    hs = b"eyJhbGciOiJIUzI1NiIsImtpZCI6Imhvc3BpdGFsLUgyMjAxMDIwMDEuMSJ9..AAAA"
    assert _code(VALUE, hs) == "signature_invalid"


def test_an_unknown_kid_is_signature_invalid() -> None:
    stranger, public = _key("hospital-H999999001")
    token = sign(VALUE, stranger, public.kid).encode()
    assert _code(VALUE, token) == "signature_invalid"


def test_a_signature_by_another_participant_is_signer_mismatch() -> None:
    token = sign(VALUE, OTHER_KEY, OTHER_PUBLIC.kid).encode()
    assert _code(VALUE, token) == "signer_mismatch"
    # A kid claimed with a key that is not its own does not verify at all.
    forged = sign(VALUE, OTHER_KEY, HOSPITAL_PUBLIC.kid).encode()
    assert _code(VALUE, forged) == "signature_invalid"


def test_revocation_counts_from_the_moment_of_revocation() -> None:
    revoked_at = SENT + timedelta(days=1)
    private, public = _key("hospital-H220102001", 2, revoked_at)
    registry = KeyRegistry([public])
    token = sign(VALUE, private, public.kid).encode()
    # Appended to the log before the revocation: still verifies, years later.
    assert verify(VALUE, token, "hospital/H220102001", registry, SENT) is public
    assert _code(VALUE, token, registry=registry, at=revoked_at) == "key_revoked"
    assert _code(VALUE, token, registry=registry, at=revoked_at + timedelta(1)) == "key_revoked"


def test_the_current_key_is_the_newest_one_not_revoked() -> None:
    _, first = _key("agency-220100", 1)
    _, second = _key("agency-220100", 2)
    later = PublicKey(second.participant, second.kid, second.public_key, T0 + timedelta(1))
    assert KeyRegistry([first, later]).current("agency-220100") == later
    revoked = PublicKey(later.participant, later.kid, later.public_key, later.valid_from, SENT)
    assert KeyRegistry([first, revoked]).current("agency-220100") == first


@pytest.mark.parametrize(("source", "participant"), [
    ("hospital/H220102001", "hospital-H220102001"), ("agency/220100", "agency-220100"),
    ("service/settlement", None), ("hospital/", None), ("H220102001", None),
])
def test_participant_of_source(source: str, participant: str | None) -> None:
    assert participant_of(source) == participant


def _record(offset: int, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
    return Record("settlement.submissions", 0, offset, b"P1", value, headers,
                  timestamp_ms=int(SENT.timestamp() * 1000))


def test_the_audit_fails_only_for_accepted_records_that_do_not_verify() -> None:
    signed_value = orjson.dumps(SUBMITTED)
    good = _record(0, signed_value, ((signatures.HEADER,
                                      sign(signed_value, HOSPITAL_KEY,
                                           HOSPITAL_PUBLIC.kid).encode()),))
    unsigned = _record(1, signed_value.replace(b"000123", b"000124"))
    garbage = _record(2, b"not json")
    refused = Record("settlement.submissions.rejected", 0, 0, b"P1", unsigned.value, (
        ("reason-code", b"signature_missing"), ("original-topic", b"settlement.submissions"),
        ("original-partition", b"0"), ("original-offset", b"1")))
    report = check([good, unsigned, garbage], rejected_positions([refused]), REGISTRY)
    assert report.ok and report.verified["settlement.submissions"] == 1
    assert report.failures == {("signature_missing", "rejected"): 1}
    assert report.undecodable == 1
    # The same log where the services accepted the unsigned record (signatures were off).
    report = check([good, unsigned], set(), REGISTRY)
    assert not report.ok
    assert [f["reason_code"] for f in report.accepted_failures] == ["signature_missing"]


def test_the_signature_codes_and_header_are_documented() -> None:
    from shared.config import REPO_ROOT

    text = (REPO_ROOT / "shared" / "signatures.py").read_text()
    import re
    codes = set(re.findall(r'_rejection\(value, "([a-z_]+)"', text))
    assert codes == {"signature_missing", "signature_invalid", "signer_mismatch", "key_revoked"}
    documented = (REPO_ROOT / "docs" / "reason-codes.md").read_text()
    assert all(f"| `{code}` |" in documented for code in codes)
    for service in ("filing", "settlement", "clearing"):
        asyncapi = orjson.loads((REPO_ROOT / "docs" / "asyncapi" / f"{service}.json").read_bytes())
        assert any(signatures.HEADER in str(m.get("headers", ""))
                   for m in asyncapi["components"]["messages"].values()), service
