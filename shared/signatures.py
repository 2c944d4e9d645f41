"""Signed submissions: a detached JWS (EdDSA, Ed25519) over a record's value bytes.

Pure functions, no I/O: `sign` makes the header value a participant sends, `verify`
checks it against a `KeyRegistry` and raises `Rejection` with one of the reason codes of
docs/reason-codes.md (``signature_missing``, ``signature_invalid``, ``signer_mismatch``,
``key_revoked``). The signed bytes are the record's value exactly as sent: the id, the
source, the time and the data are all inside them, so no field can be changed (or an id
replaced) without breaking the signature. docs/security.md, "Signed submissions".

The cryptography is joserfc's (over `cryptography`); nothing here computes a signature.
"""

from __future__ import annotations

import base64
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from shared import topics
from shared.events import Rejection

#: The Kafka header that carries the signature (value: a JWS in compact form with the
#: payload detached, RFC 7515 appendix F: ``<protected header>..<signature>``).
HEADER = "ce-jws"
ALGORITHM = "EdDSA"
#: Topics whose records participants sign and the services verify. The services' own
#: outputs and the clearing calendar (clearing.schedule) are not signed by participants.
SIGNED_TOPICS = frozenset({topics.FILING_COMMANDS, topics.SETTLEMENT_SUBMISSIONS,
                           topics.CLEARING_SUBMISSIONS, topics.REIMBURSEMENT_CLAIMS})
#: ``source`` prefixes of participants and the participant ids they name.
_KINDS = {"hospital/": "hospital-", "agency/": "agency-"}

# RFC 9864 deprecates the polymorphic "EdDSA" in favour of "Ed25519"; the contract's
# participants sign with "EdDSA" (what every JOSE library still speaks). Same algorithm.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", module="joserfc")


def enabled() -> bool:
    """Signing and verification are on unless ``CLEARINGHOUSE_SIGNATURES=off`` (only for
    the bench's cost comparison: docs/benchmarks.md)."""
    return os.environ.get("CLEARINGHOUSE_SIGNATURES", "on").strip().lower() != "off"


def participant_of(source: str) -> str | None:
    """``hospital/H220202001`` → ``hospital-H220202001``, ``agency/220100`` →
    ``agency-220100`` (the same names as the Kafka principals); None for other sources."""
    for prefix, kind in _KINDS.items():
        if source.startswith(prefix) and len(source) > len(prefix):
            return kind + source[len(prefix):]
    return None


@dataclass(frozen=True)
class PublicKey:
    """One registered key: who holds it, since when, and from when it no longer counts."""

    participant: str
    kid: str
    #: The Ed25519 public key, base64url without padding (a JWK's ``x``).
    public_key: str
    valid_from: datetime
    revoked_at: datetime | None = None

    def revoked_for(self, at: datetime) -> bool:
        return self.revoked_at is not None and at >= self.revoked_at

    def jwk(self) -> OKPKey:
        return OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": self.public_key})


class KeyRegistry:
    """The public keys of all participants, by ``kid`` (imported once each)."""

    def __init__(self, keys: Iterable[PublicKey] = ()):
        self.keys: dict[str, PublicKey] = {k.kid: k for k in keys}
        self._imported: dict[str, OKPKey] = {}

    def get(self, kid: str) -> PublicKey | None:
        return self.keys.get(kid)

    def jwk(self, kid: str) -> OKPKey:
        key = self._imported.get(kid)
        if key is None:
            key = self._imported[kid] = self.keys[kid].jwk()
        return key

    def of(self, participant: str) -> list[PublicKey]:
        return sorted((k for k in self.keys.values() if k.participant == participant),
                      key=lambda k: (k.valid_from, k.kid))

    def current(self, participant: str) -> PublicKey | None:
        """The newest key of `participant` that is not revoked."""
        live = [k for k in self.of(participant) if k.revoked_at is None]
        return live[-1] if live else None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign(value: bytes, private_key: OKPKey, kid: str) -> str:
    """The detached compact JWS of `value` (the record's value bytes) under `kid`."""
    token = jws.serialize_compact({"alg": ALGORITHM, "kid": kid}, value, private_key,
                                  algorithms=[ALGORITHM])
    protected, _, signature = token.split(".")
    return f"{protected}..{signature}"


def header_value(headers: Iterable[tuple[str, bytes]]) -> bytes | None:
    """The signature header of a record, if any (the last one, as Kafka clients read it)."""
    found = None
    for name, value in headers:
        if name == HEADER:
            found = value
    return found


def _rejection(value: bytes, code: str, message: str) -> Rejection:
    """A refusal carrying the envelope as read, to address the sender's error event."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        document = {}
    return Rejection(code, message, document if isinstance(document, dict) else {})


def _protected(token: str) -> Mapping[str, Any]:
    encoded = token.split(".", 1)[0]
    header = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    if not isinstance(header, dict):
        raise ValueError("the protected header is not a JSON object")
    return header


def verify(value: bytes, signature: bytes | None, source: str, registry: KeyRegistry,
           appended_at: datetime) -> PublicKey:
    """Check the signature of one record whose envelope names `source`; return the key that
    signed it, or raise `Rejection`.

    `appended_at` is when the record entered the log (its Kafka timestamp): a key revoked at
    or before that moment no longer counts; records appended before the revocation keep
    verifying, years later, which is what an auditor needs (docs/security.md)."""
    if signature is None:
        raise _rejection(value, "signature_missing",
                         f"the record has no {HEADER} header: sign the value bytes with the "
                         f"participant's key (docs/security.md)")
    try:
        token = signature.decode("ascii")
        protected, payload, encoded_signature = token.split(".")
        header = _protected(token)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _rejection(value, "signature_invalid",
                         f"the {HEADER} header is not a detached compact JWS "
                         f"(<header>..<signature>): {type(exc).__name__}") from None
    kid = header.get("kid")
    if payload:
        raise _rejection(value, "signature_invalid", f"the {HEADER} JWS must be detached (an "
                         "empty payload part): the signed bytes are the record's value")
    if header.get("alg") != ALGORITHM:
        raise _rejection(value, "signature_invalid",
                         f"the JWS alg is {header.get('alg')!r}; {ALGORITHM!r} is required")
    key = registry.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise _rejection(value, "signature_invalid",
                         f"the JWS kid {kid!r} is not a registered participant key")
    try:
        jws.deserialize_compact(f"{protected}.{_b64(value)}.{encoded_signature}",
                                registry.jwk(key.kid), algorithms=[ALGORITHM])
    except (JoseError, ValueError) as exc:
        raise _rejection(value, "signature_invalid",
                         f"the signature under kid {key.kid!r} does not verify over the "
                         f"record's value bytes ({type(exc).__name__})") from None
    claimed = participant_of(source)
    if claimed != key.participant:
        raise _rejection(value, "signer_mismatch",
                         f"source {source!r} is not the signer: kid {key.kid!r} belongs to "
                         f"{key.participant!r}")
    if key.revoked_for(appended_at):
        assert key.revoked_at is not None
        raise _rejection(value, "key_revoked",
                         f"kid {key.kid!r} was revoked at {key.revoked_at.isoformat()}, before "
                         f"the record entered the log ({appended_at.isoformat()})")
    return key


def record_time(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
