"""Supervision (监管): a care-place agency stops direct settlement for a person found in
serious violation, and lifts the stop. The same two types are commands on
``filing.commands`` (sent by the care-place agency, signed) and, once accepted, events on
``filing.events`` that the settlement service folds (docs/filing.md, "Supervision")."""

from __future__ import annotations

from pydantic import AwareDatetime

from shared.events.base import Code, Payload, RegionCode, Text


class SupervisionImposed(Payload):
    """From `effective` on, no direct settlement for `person_id` at the hospitals of
    `care_agency`'s region."""

    TYPE = "filing.supervision_imposed"
    person_id: Code
    care_agency: RegionCode
    effective: AwareDatetime
    reason: Text
    #: The agency's own reference of the case (a file number), echoed in refusals.
    case_id: Code | None = None


class SupervisionLifted(Payload):
    """From `effective` on, direct settlement is allowed again."""

    TYPE = "filing.supervision_lifted"
    person_id: Code
    care_agency: RegionCode
    effective: AwareDatetime
    reason: Text | None = None
    case_id: Code | None = None


SUPERVISION_EVENTS: tuple[type[Payload], ...] = (SupervisionImposed, SupervisionLifted)
