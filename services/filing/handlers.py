"""The filing service's handler: parse → load state → decide → store state and outbox.

Commands arrive on ``filing.commands`` keyed by person; the clearing calendar's
``calendar.day_started`` (``clearing.schedule``) triggers expiries and overdue
materials. Everything one batch decides commits in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog

from services.filing import store
from services.filing.domain import reasons
from services.filing.domain.decisions import decide, expire
from services.filing.domain.state import PersonFilingState, empty, fold_all
from services.filing.domain.supervision import decide_supervision
from shared import topics
from shared.business_time import business_date
from shared.config import Settings
from shared.events import Envelope, Rejection, derived_id, make_event
from shared.events.base import Payload
from shared.events.clearing import DayStarted
from shared.events.enrolment import ENROLMENT_EVENTS
from shared.events.filing import FilingRejected, FilingRequested
from shared.events.supervision import SupervisionImposed, SupervisionLifted
from shared.logging import bind_event
from shared.messaging.processing import refusal_copies
from shared.messaging.records import Incoming, Outgoing, Record
from shared.reference import ReferenceData, load_reference

log = structlog.get_logger(__name__)
SOURCE = "service/filing"

#: Refusals of bad input (codes that name nothing known), also kept on the .rejected topic.
INPUT_REFUSALS = frozenset({"unknown_insured_agency", "unknown_destination",
                            "unknown_hospital", "unknown_care_agency", "source_mismatch"})


class FilingHandler:
    def __init__(self, reference: ReferenceData):
        self.reference = reference

    async def handle(self, conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[Outgoing]:
        persons = {_person_of(i) for i in batch if i.record.topic == topics.FILING_COMMANDS}
        states = await store.load_persons(conn, [p for p in persons if p])
        # Every filing id of the batch claimed in one statement, first claim first.
        owners = await store.claim_filing_ids(conn, [
            (i.event.data.filing_id, person) for i in batch
            if isinstance(i.event.data, FilingRequested) and (person := _person_of(i))])
        changed: dict[str, PersonFilingState] = {}
        out: list[Outgoing] = []
        for incoming in batch:
            bind_event(incoming.event.id, incoming.event.correlationid)
            if isinstance(incoming.event.data, DayStarted):
                out += await self._start_day(conn, incoming.event, states, changed)
                continue
            person = _person_of(incoming)
            if not person:
                out += _answer(incoming.event, "", [FilingRejected(
                    filing_id=getattr(incoming.event.data, "filing_id", None),
                    reasons=[reasons.PERSON_REQUIRED()],
                    command_type=incoming.event.type)])
                continue
            state = changed.get(person) or states.get(person) or empty(person)
            events = self._decide(owners, state, incoming.event, person)
            changed[person] = fold_all(state, events)
            out += _answer(incoming.event, person, events)
            out += refusal_copies(incoming.record, events, INPUT_REFUSALS)
        await store.save_persons(conn, changed)
        return out

    def _decide(self, owners: dict[str, str], state: PersonFilingState,
                event: Envelope[Any], person: str) -> list[Payload]:
        command = event.data
        if isinstance(command, FilingRequested) and owners.get(command.filing_id) != person:
            return [FilingRejected(
                filing_id=command.filing_id, person_id=person, command_type=command.TYPE,
                reasons=[reasons.DUPLICATE_FILING_ID(filing_id=command.filing_id)])]
        if isinstance(command, SupervisionImposed | SupervisionLifted):
            events = decide_supervision(state, command, event.source, self.reference)
        else:
            events = decide(state, command, business_date(event.time), self.reference)
        for payload in events:
            # Enrolment comes in bulk (hundreds of thousands of rows): one line each at debug.
            emit = log.debug if isinstance(payload, ENROLMENT_EVENTS) else log.info
            emit(payload.TYPE, person_id=person, filing_id=getattr(payload, "filing_id", None))
        return events

    async def _start_day(self, conn: asyncpg.Connection, event: Envelope[Any],
                         states: dict[str, PersonFilingState],
                         changed: dict[str, PersonFilingState]) -> list[Outgoing]:
        day = event.data.date
        if not await store.start_day(conn, day):
            return []
        out: list[Outgoing] = []
        # Persons changed earlier in this transaction are saved first, so that the day sees
        # their deadlines as it would if they had come in a transaction of their own.
        await store.save_persons(conn, changed)
        due = await store.persons_due(conn, day)
        loaded = await store.load_persons(conn, [p for p in due if p not in changed])
        for person in due:
            state = changed.get(person) or loaded.get(person) or states.get(person)
            if state is None:
                continue
            events = expire(state, day)
            changed[person] = fold_all(state, events)
            out += _answer(event, person, events)
        log.info("calendar.day_started", date=str(day), filings_due=len(out))
        return out

    async def observe(self, conn: asyncpg.Connection, records: Sequence[Record]) -> list[Outgoing]:
        return []

    def answer_rejection(self, record: Record, rejection: Rejection) -> list[Outgoing]:
        """A command that broke the contract still gets its filing.rejected."""
        data = rejection.document.get("data")
        data = data if isinstance(data, dict) else {}
        person = data.get("person_id") if isinstance(data.get("person_id"), str) else None
        person = person or (record.key.decode("utf-8", "replace") if record.key else None)
        filing_id = data.get("filing_id") if isinstance(data.get("filing_id"), str) else None
        try:
            payload = FilingRejected(filing_id=filing_id, person_id=person,
                                     reasons=[rejection.reason],
                                     command_type=str(rejection.document.get("type"))[:100])
        except Exception:  # identifiers too malformed to echo back
            payload = FilingRejected(reasons=[rejection.reason])
            person = None
        answer = make_event(payload, id=derived_id("filing.rejected", record.position),
                            source=SOURCE, time=record.time, subject=person)
        return [Outgoing.event(topics.FILING_EVENTS, person or "", answer)]


def _person_of(incoming: Incoming) -> str:
    person = getattr(incoming.event.data, "person_id", None)
    if person:
        return str(person)
    return incoming.record.key.decode("utf-8", "replace") if incoming.record.key else ""


def _answer(cause: Envelope[Any], person: str, events: list[Payload]) -> list[Outgoing]:
    return [
        Outgoing.event(topics.FILING_EVENTS, person, make_event(
            payload, id=derived_id("filing", cause.source, cause.id, person, str(n)), source=SOURCE,
            time=cause.time, subject=person, correlationid=cause.correlationid or cause.id,
            causationid=cause.id))
        for n, payload in enumerate(events)
    ]


async def make_handler(pool: asyncpg.Pool, settings: Settings) -> FilingHandler:
    return FilingHandler(load_reference(settings.reference_dir))
