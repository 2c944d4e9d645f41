"""What flows through the backbone: records read from Kafka and events to publish."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.events import Envelope, encode
from shared.topics import (
    ADDRESSEE_HEADER,
    CLEARING_RESULTS,
    REIMBURSEMENT_EVENTS,
    SETTLEMENT_EVENTS,
    addressee_known,
)


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as read, bytes untouched (a rejected record is forwarded as is)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    #: The broker's timestamp (ms since the epoch): a deterministic time for answers to
    #: records whose own time could not be read.
    timestamp_ms: int = 0

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A record whose value parsed into a contract event."""

    record: Record
    event: Envelope[Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.event.source, self.event.id)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event (or a rejected record) to publish through the outbox."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def event(cls, topic: str, key: str, event: Envelope[Any]) -> Outgoing:
        """The event, with an ``addressee`` header where its topic has a copy per addressee
        (shared.topics.ADDRESSED): the agency of a clearing result, the hospital of a
        settlement outcome."""
        headers: tuple[tuple[str, str], ...] = (("content-type", "application/cloudevents+json"),)
        addressee = _addressee(topic, key, event)
        if addressee:
            headers += ((ADDRESSEE_HEADER, addressee),)
        return cls(topic=topic, key=key.encode(), value=encode(event), headers=headers)


def _addressee(topic: str, key: str, event: Envelope[Any]) -> str | None:
    if topic == CLEARING_RESULTS:
        code = key
    elif topic == SETTLEMENT_EVENTS:
        code = getattr(event.data, "hospital", None)
    elif topic == REIMBURSEMENT_EVENTS:
        code = getattr(event.data, "insured_agency", None)
    else:
        return None
    return code if code and addressee_known(topic, code) else None
