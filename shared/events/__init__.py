"""Every event of the contract, the envelope, and the codec between bytes and models.

`decode` turns a Kafka record value into a typed `Envelope` or raises
`Rejection` with a documented reason code (docs/reason-codes.md); `encode`
turns an envelope back into bytes. Which types may travel on which topic is
fixed by `PAYLOADS_BY_TOPIC`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from shared import topics
from shared.events import clearing, enrolment, filing, settlement
from shared.events.base import SPECVERSION, Envelope, Payload, Reason
from shared.money import money_message

__all__ = [
    "Envelope", "Payload", "Reason", "Rejection", "PAYLOADS_BY_TOPIC", "decode", "decoder",
    "encode",
    "make_event", "derived_id", "envelope_type", "MAX_MESSAGE_BYTES",
]

#: Values larger than this are refused before parsing.
MAX_MESSAGE_BYTES = 1_000_000


def _by_type(*models: type[Payload]) -> dict[str, type[Payload]]:
    return {m.TYPE: m for m in models}


PAYLOADS_BY_TOPIC: dict[str, dict[str, type[Payload]]] = {
    topics.FILING_COMMANDS: _by_type(
        filing.FilingRequested, filing.RevokeFiling, filing.ExtendFiling,
        filing.SupplyMaterials, filing.ChangeDestination, filing.ChangeBenefitStatus,
        filing.ReviewEmergency, *enrolment.ENROLMENT_EVENTS,
    ),
    topics.FILING_EVENTS: _by_type(
        filing.FilingRegistered, filing.FilingRejected, filing.FilingRevoked,
        filing.FilingExtended, filing.FilingExpired, filing.FilingMaterialsOverdue,
        filing.FilingMaterialsSupplied, filing.FilingDestinationChanged,
        filing.BenefitStatusChanged, filing.FilingEmergencyReviewed,
        *enrolment.ENROLMENT_EVENTS,
    ),
    topics.SETTLEMENT_SUBMISSIONS: _by_type(
        settlement.SettlementSubmitted, settlement.RefundRequested,
    ),
    topics.SETTLEMENT_EVENTS: _by_type(
        settlement.SettlementCompleted, settlement.SettlementRejected,
        settlement.SettlementRefunded, settlement.RefundRejected,
    ),
    topics.CLEARING_SUBMISSIONS: _by_type(
        clearing.DailyReportConfirmed, clearing.DailyReportDisputed,
        clearing.StatementConfirmed, clearing.StatementDisputed, clearing.RemittanceReported,
    ),
    topics.CLEARING_RESULTS: _by_type(
        clearing.DailyReport, clearing.StatementIssued, clearing.NetTransferInstruction,
        clearing.DifferenceNotice, clearing.RemittanceOverdue, clearing.CycleClosed,
        clearing.SubmissionRejected, clearing.DisputeOpened, clearing.DisputeCorrected,
        clearing.DisputeResolved,
    ),
    topics.CLEARING_SCHEDULE: _by_type(clearing.DayStarted),
}


#: ``Envelope[P]`` of every payload type, held here: pydantic's own cache of parametrised
#: generics holds them weakly, so without a strong reference the garbage collector drops
#: them and the next ``Envelope[P]`` builds the class again (about 5 ms each time, many
#: times a minute in a busy service).
_ENVELOPES: dict[type[Payload], type[Envelope[Any]]] = {
    payload: Envelope[payload]  # type: ignore[valid-type]
    for payloads in PAYLOADS_BY_TOPIC.values() for payload in payloads.values()
}


def envelope_type(payload: type[Payload]) -> type[Envelope[Any]]:
    """``Envelope[payload]``, built once per payload type and kept."""
    cls = _ENVELOPES.get(payload)
    if cls is None:
        cls = _ENVELOPES[payload] = Envelope[payload]  # type: ignore[valid-type]
    return cls


class Rejection(Exception):
    """A record that cannot be accepted: a stable reason code and a message for the sender."""

    def __init__(self, code: str, message: str, document: dict[str, Any] | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        #: The JSON object as far as it could be read, to address an error event to the sender.
        self.document = document or {}

    @property
    def reason(self) -> Reason:
        return Reason(code=self.code, message=self.message[:500])


def _reason_from(error: ValidationError) -> tuple[str, str]:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    kind = first["type"]
    message = f"{where}: {money_message(first) or first['msg']}"
    if kind in {"money_not_string", "money_format", "money_negative", "amounts_do_not_add_up"}:
        return kind, message
    if kind == "missing":
        return "missing_field", message
    if kind == "timezone_aware":
        return "time_without_offset", message
    if kind.startswith(("date_", "datetime_")):
        return "invalid_date", message
    return "invalid_field", message


def decode(topic: str, raw: bytes | None) -> Envelope[Any]:
    """Parse and validate one record value of `topic`, or raise `Rejection`."""
    return _decode(topic, raw, PAYLOADS_BY_TOPIC)


#: ``decode``'s signature: (topic, record value) → envelope, or `Rejection`.
Decoder = Callable[[str, bytes | None], Envelope[Any]]


def decoder(views: Mapping[tuple[str, str], type[Payload]]) -> Decoder:
    """A `decode` that reads the given (topic, type) pairs as another payload class: a
    subclass of the contract's that validates less of what its reader ignores (the clearing
    service's view of ``settlement.completed`` leaves the bill's items unchecked)."""
    by_topic = {topic: dict(payloads) for topic, payloads in PAYLOADS_BY_TOPIC.items()}
    for (topic, kind), view in views.items():
        contract = PAYLOADS_BY_TOPIC[topic][kind]
        if not issubclass(view, contract) or kind != view.TYPE:
            raise TypeError(f"{view.__name__} is not a view of {contract.__name__} ({kind})")
        by_topic[topic][kind] = view
        envelope_type(view)

    def decode_view(topic: str, raw: bytes | None) -> Envelope[Any]:
        return _decode(topic, raw, by_topic)

    return decode_view


def _decode(topic: str, raw: bytes | None,
            payloads_by_topic: Mapping[str, Mapping[str, type[Payload]]]) -> Envelope[Any]:
    if raw is None:
        raise Rejection("empty_value", "the record has no value")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Rejection("too_large", f"the value has {len(raw)} bytes; at most {MAX_MESSAGE_BYTES}")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejection("not_utf8", "the value is not UTF-8 text") from exc
        raise Rejection("not_json", f"the value is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise Rejection("not_an_object", "a CloudEvents envelope must be a JSON object")
    kind = document.get("type")
    if not isinstance(kind, str):
        raise Rejection("missing_type", "the envelope has no `type` string", document)
    payload = payloads_by_topic.get(topic, {}).get(kind)
    if payload is None:
        raise Rejection("unknown_type", f"type {kind!r} is not accepted on topic {topic!r}",
                        document)
    if not isinstance(document.get("data"), dict):
        raise Rejection("missing_field", "data: the envelope has no `data` object", document)
    try:
        return _ENVELOPES[payload].model_validate_json(raw)
    except ValidationError as exc:
        code, message = _reason_from(exc)
        if exc.errors()[0]["loc"][:1] != ("data",):
            code = "bad_envelope" if code == "invalid_field" else code
        raise Rejection(code, message, document) from exc


def encode(event: Envelope[Any]) -> bytes:
    """Serialise an envelope: structured-mode CloudEvents JSON, money as strings, no nulls.

    Serialised in one step by pydantic-core (no intermediate dict): the same bytes as
    ``orjson.dumps(event.model_dump(mode="json", exclude_none=True))``, which earlier versions
    used (tests/unit/test_events_codec.py holds the two side by side)."""
    return event.__pydantic_serializer__.to_json(event, exclude_none=True)


def make_event(
    payload: Payload,
    *,
    id: str,
    source: str,
    time: datetime,
    subject: str | None = None,
    correlationid: str | None = None,
    causationid: str | None = None,
) -> Envelope[Any]:
    """Wrap a payload in an envelope. Time and id come from the cause, never the clock,
    so that replaying the log yields byte-identical events."""
    return envelope_type(type(payload))(
        specversion=SPECVERSION, id=id, source=source, type=payload.TYPE, time=time,
        subject=subject, data=payload, correlationid=correlationid, causationid=causationid,
    )


def derived_id(*parts: str) -> str:
    """A deterministic event id from its cause: readable when short, hashed when long."""
    joined = ":".join(parts)
    if len(joined) <= 120:
        return joined
    return parts[0] + ":" + hashlib.sha256(joined.encode()).hexdigest()[:40]
