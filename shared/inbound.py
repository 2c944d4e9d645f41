"""The one builder of inbound CloudEvents: what a hospital or an agency sends.

Every outside-party publisher of the project (the demo, the bench, the fault workload,
the tests' helpers) builds its records here, so the envelope's form and the signature
have one place each:

- `envelope` writes the value bytes as an outside party would (structured-mode
  CloudEvents JSON, fields in the contract's order, no nulls);
- `signature_headers` signs those bytes for the participant named in their ``source``
  (the ``ce-jws`` header, shared.signatures);
- `inbound` does both and returns an `InboundRecord` ready for any Kafka producer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from shared import signatures
from shared.participant_keys import KeyFileError, Signer

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

_signer = Signer()


def envelope(type_: str, data: dict[str, Any], *, id: str, source: str, time: str,
             subject: str | None = None, **extensions: Any) -> bytes:
    """A CloudEvents 1.0 envelope in structured JSON mode, as an outside party writes it.
    `time` is RFC 3339 with an offset; ``None`` subjects and extensions are left out."""
    document: dict[str, Any] = {"specversion": SPECVERSION, "id": id, "source": source,
                                "type": type_, "time": time}
    if subject is not None:
        document["subject"] = subject
    document["datacontenttype"] = CONTENT_TYPE
    document["data"] = data
    document.update({k: v for k, v in extensions.items() if v is not None})
    return orjson.dumps(document)


def settlement_submitted(*, settlement_id: str, hospital: str, person_id: str,
                         insured_agency: str, insurance_type: str, visit_type: str,
                         settled_at: str, items: list[dict[str, str]],
                         admitted_on: str | None = None, discharged_on: str | None = None,
                         visit_date: str | None = None, disease_code: str | None = None,
                         emergency: bool = False, referral: bool = False,
                         personal_account_request: str | None = None,
                         resettles: str | None = None) -> dict[str, Any]:
    """The data of a hospital's ``settlement.submitted`` (CONTRACT.md), fields in the
    contract's order, optional ones left out when None: the one shape every workload (the
    demo's province, the bench's, the fault tests') sends."""
    data: dict[str, Any] = {
        "settlement_id": settlement_id, "hospital": hospital, "person_id": person_id,
        "insured_agency": insured_agency, "insurance_type": insurance_type,
        "visit_type": visit_type, "disease_code": disease_code, "admitted_on": admitted_on,
        "discharged_on": discharged_on, "visit_date": visit_date, "settled_at": settled_at,
        "emergency": emergency, "referral": referral, "items": items,
        "personal_account_request": personal_account_request, "resettles": resettles}
    return {k: v for k, v in data.items() if v is not None}


def refund_requested(*, refund_id: str, settlement_id: str, hospital: str, person_id: str,
                     reason: str, refunded_at: str) -> dict[str, Any]:
    """The data of a hospital's ``settlement.refund_requested`` (CONTRACT.md)."""
    return {"refund_id": refund_id, "settlement_id": settlement_id, "hospital": hospital,
            "person_id": person_id, "reason": reason, "refunded_at": refunded_at}


def signature_headers(value: bytes, *, source: str | None = None, kid: str | None = None,
                      signer: Signer | None = None, required: bool = True
                      ) -> list[tuple[str, bytes]]:
    """The ``ce-jws`` header for `value`, signed as the participant of `source` (default:
    the ``source`` inside the value). Empty when signatures are switched off; empty too,
    unless `required`, when the value names no participant with a key (deliberately bad
    input in tests)."""
    if not signatures.enabled():
        return []
    if source is None:
        try:
            document = orjson.loads(value)
            source = document.get("source") if isinstance(document, dict) else None
        except orjson.JSONDecodeError:
            source = None
        if not isinstance(source, str):
            if required:
                raise KeyFileError("the value has no `source` naming its signer")
            return []
    try:
        token = (signer or _signer).sign(value, source, kid)
    except KeyFileError:
        if required:
            raise
        return []
    return [(signatures.HEADER, token.encode("ascii"))]


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """One record as an outside party publishes it: topic, key, value and headers."""

    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default=())


def inbound(topic: str, key: str, type_: str, data: dict[str, Any], *, id: str, source: str,
            time: str, subject: str | None = None, signer: Signer | None = None
            ) -> InboundRecord:
    """Build and sign one inbound event."""
    value = envelope(type_, data, id=id, source=source, time=time, subject=subject)
    return InboundRecord(topic, key, value,
                         tuple(signature_headers(value, source=source, signer=signer)))
