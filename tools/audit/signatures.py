"""``clearinghouse audit verify-signatures``: does every accepted submission carry its
sender's signature?

Reads every signed topic of a namespace (filing.commands, settlement.submissions,
clearing.submissions) and their ``.rejected`` twins from the beginning, as the auditor,
and verifies each record's ``ce-jws`` header against the participant key registry exactly
as the services do (shared.signatures; a revocation counts from the moment it was made, so
records appended before it still verify). A record is *accepted* when no copy of it is on
the ``.rejected`` twin. Exit status 1 when any accepted record does not verify.
docs/security.md, "Signed submissions".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared import participant_keys, signatures, topics
from shared.events import Rejection, decode
from shared.messaging.clients import AUDITOR
from shared.messaging.records import Record


@dataclass
class SignatureReport:
    """Counts per topic and per reason; ``accepted_failures`` lists what must not be."""

    records: Counter[str] = field(default_factory=Counter)
    verified: Counter[str] = field(default_factory=Counter)
    #: (reason code, "accepted" | "rejected") -> count
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    accepted_failures: list[dict[str, Any]] = field(default_factory=list)
    #: Records that are not contract events at all (refused by the contract, not signed).
    undecodable: int = 0

    @property
    def ok(self) -> bool:
        return not self.accepted_failures

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": dict(self.records), "verified": dict(self.verified),
                "failures": [{"reason_code": code, "status": status, "count": n}
                             for (code, status), n in sorted(self.failures.items())],
                "undecodable": self.undecodable,
                "accepted_failures": self.accepted_failures[:1000]}


def rejected_positions(records: list[Record]) -> set[tuple[str, int, int]]:
    """Positions (topic, partition, offset) that the services forwarded to ``.rejected``."""
    positions = set()
    for record in records:
        headers = {name: value.decode("utf-8", "replace") for name, value in record.headers}
        try:
            positions.add((headers["original-topic"], int(headers["original-partition"]),
                           int(headers["original-offset"])))
        except (KeyError, ValueError):
            continue
    return positions


def check(records: list[Record], rejected: set[tuple[str, int, int]],
          registry: signatures.KeyRegistry) -> SignatureReport:
    """Verify every record of the signed topics (pure: the log and the registry in hand)."""
    report = SignatureReport()
    for record in records:
        report.records[record.topic] += 1
        try:
            event = decode(record.topic, record.value)
        except Rejection:
            report.undecodable += 1
            continue
        try:
            signatures.verify(record.value or b"", signatures.header_value(record.headers),
                              event.source, registry, record.time)
        except Rejection as failure:
            accepted = (record.topic, record.partition, record.offset) not in rejected
            report.failures[(failure.code, "accepted" if accepted else "rejected")] += 1
            if accepted:
                report.accepted_failures.append({
                    "position": record.position, "source": event.source, "id": event.id,
                    "reason_code": failure.code, "reason": failure.message[:300]})
            continue
        report.verified[record.topic] += 1
    return report


async def verify_log(bootstrap: str, prefix: str) -> SignatureReport:
    from tools.audit.replay import read_log

    names = sorted(signatures.SIGNED_TOPICS)
    log = await read_log(bootstrap, prefix, [*names, *(topics.rejected(t) for t in names)],
                         principal=AUDITOR)
    submitted: list[Record] = []
    refused: list[Record] = []
    for (topic, _), records in sorted(log.partitions.items()):
        (submitted if topic in signatures.SIGNED_TOPICS else refused).extend(records)
    return check(submitted, rejected_positions(refused),
                 participant_keys.read_registry(participant_keys.registry_file()))
