"""Who may do what on the broker: the Kafka ACLs of an installation, derived (purely) from
the reference data, the topic layout and the services' declared inputs and outputs.

Principals (``shared.messaging.clients``): ``svc-<service>`` for each service,
``hospital-<code>`` for each hospital or pharmacy, ``agency-<code>`` for each insuring
agency, ``auditor`` (reads everything, writes nothing) and ``admin`` (the operator's super
user, configured on the broker itself, never granted here).

- a service reads the topics it consumes, writes the topics it publishes and the
  ``.rejected`` twins of what it consumes, and uses only its own consumer group;
- a hospital writes ``settlement.submissions`` and ``filing.commands`` (emergency filings)
  and reads only ``settlement.events.<its code>``;
- an agency writes ``filing.commands``, ``clearing.submissions`` and
  ``reimbursement.claims`` and reads only ``clearing.results.<its code>`` and
  ``reimbursement.events.<its code>`` (and ``filing.events``, see docs/security.md);
- the auditor reads (and describes) every topic of the namespace.

Kafka grants nothing that is not listed (``allow.everyone.if.no.acl.found=false``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared import topics
from shared.messaging.clients import (
    AUDITOR,
    agency_principal,
    hospital_principal,
    service_principal,
)


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: `principal` may `operation` the `resource` named `name`
    (``literal``: exactly that name; ``prefixed``: every name that starts with it)."""

    principal: str
    resource: str  # topic | group
    pattern: str  # literal | prefixed
    name: str
    operation: str  # read | write | describe

    def __str__(self) -> str:
        star = "*" if self.pattern == "prefixed" else ""
        return f"User:{self.principal} {self.operation} {self.resource} {self.name}{star}"


@dataclass(frozen=True)
class ServiceTopics:
    consumes: Sequence[str]
    publishes: Sequence[str]


def _topic(principal: str, name: str, operation: str, pattern: str = "literal") -> Grant:
    return Grant(principal, "topic", pattern, name, operation)


def _group(principal: str, name: str, pattern: str = "literal") -> Grant:
    return Grant(principal, "group", pattern, name, "read")


def grants(*, hospitals: Iterable[str], agencies: Iterable[str],
           services: Mapping[str, ServiceTopics], topic_prefix: str = "",
           group_prefix: str = "clearinghouse") -> list[Grant]:
    """Every ACL of one namespace (topics named ``topic_prefix + name``), sorted."""
    hospitals, agencies = sorted(set(hospitals)), sorted(set(agencies))
    p = topic_prefix
    out: set[Grant] = set()
    for name, spec in services.items():
        who = service_principal(name)
        for topic in spec.consumes:
            out.add(_topic(who, p + topic, "read"))
            out.add(_topic(who, p + topics.rejected(topic), "write"))
        for topic in spec.publishes:
            out.add(_topic(who, p + topic, "write"))
            for addressed in topics.addressed_topics(topic, hospitals=hospitals,
                                                     agencies=agencies):
                out.add(_topic(who, p + addressed, "write"))
        out.add(_group(who, f"{group_prefix}.{name}"))
    # The clearing calendar's clock (`clearing advance`, `clearing scheduler`) runs as the
    # clearing service: it reads the end offsets of the cut topics and writes the days.
    if "clearing" in services:
        who = service_principal("clearing")
        out.add(_topic(who, p + topics.CLEARING_SCHEDULE, "write"))
    for code in hospitals:
        who = hospital_principal(code)
        out.add(_topic(who, p + topics.SETTLEMENT_SUBMISSIONS, "write"))
        out.add(_topic(who, p + topics.FILING_COMMANDS, "write"))
        out.add(_topic(who, p + topics.hospital_outcomes(code), "read"))
        out.add(_group(who, who, "prefixed"))
    for code in agencies:
        who = agency_principal(code)
        out.add(_topic(who, p + topics.FILING_COMMANDS, "write"))
        out.add(_topic(who, p + topics.CLEARING_SUBMISSIONS, "write"))
        out.add(_topic(who, p + topics.agency_results(code), "read"))
        # manual reimbursement: the agency's claims, and its own copy of the answers
        out.add(_topic(who, p + topics.REIMBURSEMENT_CLAIMS, "write"))
        out.add(_topic(who, p + topics.addressed(topics.REIMBURSEMENT_EVENTS, code), "read"))
        # Filing outcomes are keyed by person and not yet copied per agency: every agency
        # reads filing.events, as the contract says (docs/security.md, "What is not done").
        out.add(_topic(who, p + topics.FILING_EVENTS, "read"))
        out.add(_group(who, who, "prefixed"))
    if p:
        out.add(_topic(AUDITOR, p, "read", "prefixed"))
        out.add(_topic(AUDITOR, p, "describe", "prefixed"))
    else:
        out.add(_topic(AUDITOR, "*", "read"))
        out.add(_topic(AUDITOR, "*", "describe"))
    out.add(_group(AUDITOR, AUDITOR, "prefixed"))
    return sorted(out)


def principals(*, hospitals: Iterable[str], agencies: Iterable[str],
               services: Iterable[str]) -> list[str]:
    """Every principal that needs a Kafka login (besides ``admin``)."""
    return ([service_principal(s) for s in services]
            + [hospital_principal(h) for h in sorted(set(hospitals))]
            + [agency_principal(a) for a in sorted(set(agencies))] + [AUDITOR])
