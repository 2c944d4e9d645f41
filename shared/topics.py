"""Topic names of the contract (CONTRACT.md) and the project's internal topics.

All person-keyed topics share one partition count so that a person's filings,
submissions and settlements land on the same partition number everywhere
(co-partitioned), and a consumer of several of them sees one person in order.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass

FILING_COMMANDS = "filing.commands"
FILING_EVENTS = "filing.events"
SETTLEMENT_SUBMISSIONS = "settlement.submissions"
SETTLEMENT_EVENTS = "settlement.events"
CLEARING_SUBMISSIONS = "clearing.submissions"
CLEARING_RESULTS = "clearing.results"
#: Internal: the clearing calendar's schedule events (time is an event).
CLEARING_SCHEDULE = "clearing.schedule"
#: Extension: agencies' manual reimbursement claims, and the settlement service's answers.
REIMBURSEMENT_CLAIMS = "reimbursement.claims"
REIMBURSEMENT_EVENTS = "reimbursement.events"

PERSON_KEYED = (FILING_COMMANDS, FILING_EVENTS, SETTLEMENT_SUBMISSIONS, SETTLEMENT_EVENTS)
AGENCY_KEYED = (CLEARING_SUBMISSIONS, CLEARING_RESULTS)
INTERNAL = (CLEARING_SCHEDULE,)
CONTRACT_TOPICS = PERSON_KEYED + AGENCY_KEYED
#: Extensions keyed by person id (co-partitioned with the contract's person-keyed topics).
EXTENSION_PERSON_KEYED = (REIMBURSEMENT_CLAIMS, REIMBURSEMENT_EVENTS)

#: Topics that consumers read and that therefore have a ``.rejected`` twin.
CONSUMED = (FILING_COMMANDS, FILING_EVENTS, SETTLEMENT_SUBMISSIONS, SETTLEMENT_EVENTS,
            CLEARING_SUBMISSIONS, CLEARING_SCHEDULE, REIMBURSEMENT_CLAIMS)


#: Topics whose events are also published on a topic per addressee (Kafka ACLs cannot
#: filter by key, so that a participant may read only what is addressed to it):
#: ``clearing.results.<agency>``, ``settlement.events.<hospital>`` and
#: ``reimbursement.events.<agency>`` (the insuring agency of a claim). The ``addressee``
#: header of an outgoing event names the code; the outbox relay publishes both copies.
ADDRESSED = (CLEARING_RESULTS, SETTLEMENT_EVENTS, REIMBURSEMENT_EVENTS)
ADDRESSEE_HEADER = "addressee"


def addressed(topic: str, code: str) -> str:
    """The addressee's own copy of `topic`: ``clearing.results.220100``."""
    return f"{topic}.{code}"


def agency_results(code: str) -> str:
    return addressed(CLEARING_RESULTS, code)


def hospital_outcomes(code: str) -> str:
    return addressed(SETTLEMENT_EVENTS, code)


def addressed_topics(topic: str, *, hospitals: Iterable[str], agencies: Iterable[str]
                     ) -> list[str]:
    """Every addressee's copy of `topic` (none for a topic that is not addressed)."""
    if topic == CLEARING_RESULTS:
        return [agency_results(a) for a in sorted(set(agencies))]
    if topic == SETTLEMENT_EVENTS:
        return [hospital_outcomes(h) for h in sorted(set(hospitals))]
    if topic == REIMBURSEMENT_EVENTS:
        return [addressed(REIMBURSEMENT_EVENTS, a) for a in sorted(set(agencies))]
    return []


def rejected(topic: str) -> str:
    """The dead-letter twin of a topic: every unparseable or invalid record goes there."""
    return f"{topic}.rejected"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


def person_partitions() -> int:
    return int(os.environ.get("CLEARINGHOUSE_PERSON_PARTITIONS", "6"))


def agency_partitions() -> int:
    """Partitions of the agency-keyed topics (3; 12 on a local cluster, infra.local)."""
    return int(os.environ.get("CLEARINGHOUSE_AGENCY_PARTITIONS", "3"))


def participants(reference_dir: str | None = None) -> tuple[list[str], list[str]]:
    """(hospital codes, agency codes) of the reference data (the addressees)."""
    from shared.config import load_settings
    from shared.reference import load_reference

    data = load_reference(reference_dir or load_settings().reference_dir)
    return sorted(data.hospitals), sorted(data.agencies)


@functools.lru_cache(maxsize=8)
def _addressees(reference_dir: str) -> dict[str, frozenset[str]]:
    hospitals, agencies = participants(reference_dir)
    return {CLEARING_RESULTS: frozenset(agencies), SETTLEMENT_EVENTS: frozenset(hospitals),
            REIMBURSEMENT_EVENTS: frozenset(agencies)}


def addressee_known(topic: str, code: str) -> bool:
    """Whether `code` has its own copy of `topic` (a hospital or agency of the reference
    data): a copy is never addressed to a code a sender made up, whose topic does not
    exist (the relay would wait for it forever)."""
    from shared.config import load_settings

    return code in _addressees(str(load_settings().reference_dir)).get(topic, ())


def all_topics(prefix: str = "", reference_dir: str | None = None) -> list[TopicSpec]:
    """Every topic the system uses, with its partition count. Retention is unlimited.

    `prefix` namespaces a whole installation on a shared broker (tests, demo runs);
    production uses the contract's names as they are. The addressed copies are made for
    every hospital and agency of the reference data.
    """
    n = person_partitions()
    specs = [TopicSpec(t, n) for t in PERSON_KEYED + EXTENSION_PERSON_KEYED]
    specs += [TopicSpec(t, agency_partitions()) for t in AGENCY_KEYED]
    specs += [TopicSpec(t, 1) for t in INTERNAL]
    specs += [TopicSpec(rejected(t), 1) for t in CONSUMED]
    hospitals, agencies = participants(reference_dir)
    for topic in ADDRESSED:
        specs += [TopicSpec(t, 1) for t in addressed_topics(topic, hospitals=hospitals,
                                                              agencies=agencies)]
    return [TopicSpec(prefix + s.name, s.partitions) for s in specs]
