"""Topic names of the contract (CONTRACT.md) and the project's internal topics.

All person-keyed topics share one partition count so that a person's filings,
submissions and settlements land on the same partition number everywhere
(co-partitioned), and a consumer of several of them sees one person in order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FILING_COMMANDS = "filing.commands"
FILING_EVENTS = "filing.events"
SETTLEMENT_SUBMISSIONS = "settlement.submissions"
SETTLEMENT_EVENTS = "settlement.events"
CLEARING_SUBMISSIONS = "clearing.submissions"
CLEARING_RESULTS = "clearing.results"
#: Internal: the clearing calendar's schedule events (time is an event).
CLEARING_SCHEDULE = "clearing.schedule"

PERSON_KEYED = (FILING_COMMANDS, FILING_EVENTS, SETTLEMENT_SUBMISSIONS, SETTLEMENT_EVENTS)
AGENCY_KEYED = (CLEARING_SUBMISSIONS, CLEARING_RESULTS)
INTERNAL = (CLEARING_SCHEDULE,)
CONTRACT_TOPICS = PERSON_KEYED + AGENCY_KEYED

#: Topics that consumers read and that therefore have a ``.rejected`` twin.
CONSUMED = (FILING_COMMANDS, FILING_EVENTS, SETTLEMENT_SUBMISSIONS, SETTLEMENT_EVENTS,
            CLEARING_SUBMISSIONS, CLEARING_SCHEDULE)


def rejected(topic: str) -> str:
    """The dead-letter twin of a topic: every unparseable or invalid record goes there."""
    return f"{topic}.rejected"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


def person_partitions() -> int:
    return int(os.environ.get("CLEARINGHOUSE_PERSON_PARTITIONS", "6"))


def all_topics(prefix: str = "") -> list[TopicSpec]:
    """Every topic the system uses, with its partition count. Retention is unlimited.

    `prefix` namespaces a whole installation on a shared broker (tests, demo runs);
    production uses the contract's names as they are.
    """
    n = person_partitions()
    specs = [TopicSpec(t, n) for t in PERSON_KEYED]
    specs += [TopicSpec(t, 3) for t in AGENCY_KEYED]
    specs += [TopicSpec(t, 1) for t in INTERNAL]
    specs += [TopicSpec(rejected(t), 1) for t in CONSUMED]
    return [TopicSpec(prefix + s.name, s.partitions) for s in specs]
