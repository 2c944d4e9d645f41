"""The filing query model: each person's filings and benefit status, a pure fold over
``filing.events``.

The settlement service folds ``filing.events`` into one `PersonFilings` per person and
asks `in_force` and `benefit_status` for the date of a settlement. The filing service
folds the same events into the same state to decide commands, so both sides always agree
on which filing is in force. Every date is a business date of Asia/Shanghai.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from shared import enrolment as registry
from shared.business_time import business_date
from shared.enrolment import Enrolment
from shared.events.base import Payload
from shared.events.enrolment import ENROLMENT_EVENTS
from shared.events.filing import (
    BenefitStatus,
    BenefitStatusChanged,
    FilingCategory,
    FilingDestinationChanged,
    FilingEmergencyReviewed,
    FilingExpired,
    FilingExtended,
    FilingMaterialsOverdue,
    FilingMaterialsSupplied,
    FilingRegistered,
    FilingRevoked,
)

_FORMAT = 1


@dataclass(frozen=True)
class DestinationSpan:
    """Where a filing points from `effective` on (the first one from valid_from)."""

    effective: date
    destination: str
    destination_hospital: str | None


@dataclass(frozen=True)
class Filing:
    """One registered filing and everything that happened to it since."""

    filing_id: str
    insured_agency: str
    insurance_type: str
    category: FilingCategory
    emergency_visit: str | None
    commitment: bool
    channel: str
    requested_on: date
    valid_from: date
    #: Last day in force (inclusive); None: until revoked, or until discharge (emergency).
    valid_until: date | None
    materials: tuple[str, ...]
    #: Commitment filing: from this day on it stops counting until the materials arrive.
    materials_due: date | None
    materials_supplied_on: date | None
    materials_overdue: bool
    destinations: tuple[DestinationSpan, ...]
    #: First day no longer in force because of a revocation.
    revoked_from: date | None = None
    #: First day no longer in force because valid_until passed (filing.expired seen).
    expired_on: date | None = None
    #: The insuring agency's review (核定) of an emergency filing: None while not reviewed.
    emergency_approved: bool | None = None

    def ends(self) -> date | None:
        """The first day this filing is no longer in force, or None while it is open-ended."""
        after_validity = None if self.valid_until is None else self.valid_until + timedelta(1)
        ends = [d for d in (after_validity, self.revoked_from) if d is not None]
        return min(ends) if ends else None

    def covers(self, at: date) -> bool:
        """In force on `at` by its dates alone (what overlap checks compare)."""
        ends = self.ends()
        return self.valid_from <= at and (ends is None or at < ends)

    def counts_on(self, at: date) -> bool:
        """In force on `at` and not held back by overdue commitment materials."""
        return self.covers(at) and not self.materials_withheld_on(at)

    def materials_withheld_on(self, at: date) -> bool:
        if self.materials_due is None or at < self.materials_due:
            return False
        return self.materials_supplied_on is None or at < self.materials_supplied_on

    def destination_on(self, at: date) -> DestinationSpan:
        current = self.destinations[0]
        for span in self.destinations[1:]:
            if span.effective <= at:
                current = span
        return current


@dataclass(frozen=True)
class BenefitChange:
    """A benefit status set by the insuring agency, effective from a date."""

    insured_agency: str
    status: BenefitStatus
    effective: date


@dataclass(frozen=True)
class FilingInForce:
    """The answer to "which filing covers this person on this date?"."""

    filing_id: str
    insured_agency: str
    category: FilingCategory
    destination: str
    destination_hospital: str | None
    valid_from: date
    valid_until: date | None
    emergency_visit: str | None
    emergency_approved: bool | None = None


@dataclass(frozen=True)
class PersonFilings:
    """One person's filings (in registration order), benefit changes (in arrival order) and
    enrolment registry (`shared.enrolment`)."""

    person_id: str | None = None
    filings: tuple[Filing, ...] = ()
    benefit_changes: tuple[BenefitChange, ...] = ()
    enrolment: Enrolment = Enrolment()

    def filing(self, filing_id: str) -> Filing | None:
        return next((f for f in self.filings if f.filing_id == filing_id), None)

    def to_json(self) -> str:
        """Compact, deterministic JSON for a database row."""
        document: dict[str, Any] = {"format": _FORMAT, "person_id": self.person_id,
                                    "filings": [_filing_to_dict(f) for f in self.filings],
                                    "benefit_changes": [{"insured_agency": c.insured_agency,
                                                         "status": c.status.value,
                                                         "effective": c.effective.isoformat()}
                                                        for c in self.benefit_changes]}
        if not self.enrolment.empty():  # absent before any enrolment: earlier rows unchanged
            document["enrolment"] = self.enrolment.to_dict()
        # The same text as json.dumps(..., ensure_ascii=False, sort_keys=True,
        # separators=(",", ":")) wrote before (ASCII keys, no floats), in a fraction of the time.
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_json(cls, text: str) -> PersonFilings:
        document = orjson.loads(text)
        if document.get("format") != _FORMAT:
            raise ValueError(f"stored filing state has format {document.get('format')!r}; "
                             f"this code reads format {_FORMAT}: rebuild it from filing.events")
        return cls(
            person_id=document["person_id"],
            filings=tuple(_filing_from_dict(f) for f in document["filings"]),
            benefit_changes=tuple(BenefitChange(c["insured_agency"], BenefitStatus(c["status"]),
                                                date.fromisoformat(c["effective"]))
                                  for c in document["benefit_changes"]),
            enrolment=(Enrolment.from_dict(document["enrolment"]) if "enrolment" in document
                       else Enrolment()),
        )


def fold(state: PersonFilings, event: Payload, event_time: datetime | None = None
         ) -> PersonFilings:
    """Apply one ``filing.events`` payload. Other payloads (filing.rejected) change nothing;
    events about a filing the state does not know are ignored, as are repeated registrations.
    `event_time` dates a materials supply that carries no ``supplied_on``."""
    if isinstance(event, ENROLMENT_EVENTS):
        return replace(state, person_id=state.person_id or getattr(event, "person_id", None),
                       enrolment=registry.fold(state.enrolment, event))
    match event:
        case FilingRegistered():
            if state.filing(event.filing_id) is not None:
                return state
            return replace(state, person_id=state.person_id or event.person_id,
                           filings=state.filings + (_registered(event),))
        case BenefitStatusChanged():
            change = BenefitChange(event.insured_agency, event.status, event.effective)
            return replace(state, person_id=state.person_id or event.person_id,
                           benefit_changes=state.benefit_changes + (change,))
        case FilingRevoked():
            return _update(state, event.filing_id, revoked_from=event.effective)
        case FilingExtended():
            return _update(state, event.filing_id, valid_until=event.valid_until, expired_on=None)
        case FilingExpired():
            return _update(state, event.filing_id, expired_on=event.expired_on)
        case FilingEmergencyReviewed():
            return _update(state, event.filing_id, emergency_approved=event.approved)
        case FilingMaterialsOverdue():
            return _update(state, event.filing_id, materials_overdue=True)
        case FilingMaterialsSupplied():
            filing = state.filing(event.filing_id)
            if filing is None:
                return state
            supplied_on = event.supplied_on or (event_time and business_date(event_time))
            if supplied_on is None:
                raise ValueError(f"filing.materials_supplied for {event.filing_id} has no "
                                 "supplied_on and no event time to date it")
            materials = tuple(sorted(set(filing.materials) | {m.value for m in event.materials}))
            return _update(state, event.filing_id, materials=materials,
                           materials_supplied_on=supplied_on)
        case FilingDestinationChanged():
            filing = state.filing(event.filing_id)
            if filing is None:
                return state
            span = DestinationSpan(event.effective, event.destination, event.destination_hospital)
            return _update(state, event.filing_id, destinations=filing.destinations + (span,))
    return state


def in_force(state: PersonFilings, at: date, insured_agency: str | None = None
             ) -> FilingInForce | None:
    """One filing that counts for a settlement on `at` (optionally of one insuring agency),
    the one registered last, or None. Filings of kinds the policy lets coexist may be in
    force together: settlement asks `filings_in_force` for all of them."""
    found = filings_in_force(state, at, insured_agency)
    return found[-1] if found else None


def filings_in_force(state: PersonFilings, at: date, insured_agency: str | None = None
                     ) -> list[FilingInForce]:
    """Every filing that counts for a settlement on `at` (optionally of one insuring
    agency), in registration order: a long-term filing and a referral or emergency one may
    both be in force (shared.reference `FilingPolicy.coexisting`)."""
    found = []
    for filing in state.filings:
        if filing.counts_on(at) and insured_agency in (None, filing.insured_agency):
            where = filing.destination_on(at)
            found.append(FilingInForce(
                filing_id=filing.filing_id, insured_agency=filing.insured_agency,
                category=filing.category, destination=where.destination,
                destination_hospital=where.destination_hospital, valid_from=filing.valid_from,
                valid_until=filing.valid_until, emergency_visit=filing.emergency_visit,
                emergency_approved=filing.emergency_approved,
            ))
    return found


def benefit_status(state: PersonFilings, at: date, insured_agency: str | None = None
                   ) -> BenefitStatus:
    """The status on `at`: the latest effective change (later arrival wins a tie); termination
    is final, so a termination effective by `at` wins over everything; active by default."""
    changes = [c for c in state.benefit_changes
               if c.effective <= at and insured_agency in (None, c.insured_agency)]
    if any(c.status is BenefitStatus.TERMINATED for c in changes):
        return BenefitStatus.TERMINATED
    if not changes:
        return BenefitStatus.ACTIVE
    return max(enumerate(changes), key=lambda pair: (pair[1].effective, pair[0]))[1].status


def _registered(event: FilingRegistered) -> Filing:
    return Filing(
        filing_id=event.filing_id, insured_agency=event.insured_agency,
        insurance_type=event.insurance_type.value, category=event.category,
        emergency_visit=event.emergency_visit, commitment=event.commitment,
        channel=event.channel.value, requested_on=event.requested_on,
        valid_from=event.valid_from, valid_until=event.valid_until,
        materials=tuple(sorted({m.value for m in event.materials})),
        materials_due=event.materials_due, materials_supplied_on=None, materials_overdue=False,
        destinations=(DestinationSpan(event.valid_from, event.destination,
                                      event.destination_hospital),),
    )


def _update(state: PersonFilings, filing_id: str, **changes: Any) -> PersonFilings:
    filings = tuple(replace(f, **changes) if f.filing_id == filing_id else f
                    for f in state.filings)
    return replace(state, filings=filings)


_DATES = ("requested_on", "valid_from", "valid_until", "materials_due", "materials_supplied_on",
          "revoked_from", "expired_on")


def _filing_to_dict(filing: Filing) -> dict[str, Any]:
    document: dict[str, Any] = {k: getattr(filing, k) for k in filing.__dataclass_fields__}
    for key in _DATES:
        document[key] = document[key] and document[key].isoformat()
    document["category"] = filing.category.value
    document["materials"] = list(filing.materials)
    document["destinations"] = [[s.effective.isoformat(), s.destination, s.destination_hospital]
                                for s in filing.destinations]
    if filing.emergency_approved is None:  # absent until reviewed: earlier rows unchanged
        del document["emergency_approved"]
    return document


def _filing_from_dict(document: dict[str, Any]) -> Filing:
    values = dict(document)
    for key in _DATES:
        values[key] = values[key] and date.fromisoformat(values[key])
    values["category"] = FilingCategory(values["category"])
    values["materials"] = tuple(values["materials"])
    values["destinations"] = tuple(DestinationSpan(date.fromisoformat(e), d, h)
                                   for e, d, h in values["destinations"])
    return Filing(**values)
