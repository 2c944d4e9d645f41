"""The settlement service's handler: parse → load state → decide → store state and outbox.

Reads hospitals' ``settlement.submissions`` and, co-partitioned by person, the filing
service's ``filing.events`` (folded into the filing query model). Publishes
``settlement.completed``, ``settlement.rejected``, ``settlement.refunded`` and
``settlement.refund_rejected`` on ``settlement.events``.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog

from services.settlement import store
from services.settlement.domain import reasons
from services.settlement.domain.accumulators import Held, Outcome, PersonState, evolve
from services.settlement.domain.decisions import care_date, decide_refund, decide_settlement
from services.settlement.facts import Facts
from shared import filing_view, topics
from shared.config import Settings
from shared.events import Envelope, Rejection, derived_id, make_event
from shared.events.base import Payload, Reason
from shared.events.settlement import (
    RefundRejected,
    RefundRequested,
    SettlementRejected,
    SettlementSubmitted,
)
from shared.filing_view import PersonFilings
from shared.logging import bind_event, log_enabled
from shared.messaging.processing import refusal_copies
from shared.messaging.records import Incoming, Outgoing, Record
from shared.reference import load_reference

log = structlog.get_logger(__name__)
SOURCE = "service/settlement"

#: Refusals of bad input (codes that name nothing known, a hospital sending for another),
#: also kept on settlement.submissions.rejected; other refusals are decisions only.
INPUT_REFUSALS = frozenset({reasons.UNKNOWN_HOSPITAL, reasons.UNKNOWN_INSURED_AGENCY,
                            reasons.SOURCE_MISMATCH})


class SettlementHandler:
    def __init__(self, facts: Facts):
        self.facts = facts

    async def handle(self, conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[Outgoing]:
        persons = {str(i.event.data.person_id) for i in batch
                   if getattr(i.event.data, "person_id", None)}
        states = await store.load_persons(conn, persons)
        views = await store.load_views(conn, persons)
        # Every settlement id of the batch claimed in one statement, first claim first.
        owners = await store.claim_settlement_ids(conn, [
            (data.hospital, data.settlement_id, data.person_id) for data, source in (
                (i.event.data, i.event.source) for i in batch)
            if isinstance(data, SettlementSubmitted) and source == f"hospital/{data.hospital}"])
        changed_states: dict[str, PersonState] = {}
        changed_views: dict[str, PersonFilings] = {}
        out: list[Outgoing] = []
        outcomes_by_type: Counter[str] = Counter()
        for incoming in batch:
            event, data = incoming.event, incoming.event.data
            bind_event(event.id, event.correlationid)
            person = getattr(data, "person_id", None)
            if not person:  # a filing.rejected without a person changes no view
                continue
            if incoming.record.topic == topics.FILING_EVENTS:
                view = views.get(person) or PersonFilings(person_id=person)
                views[person] = changed_views[person] = filing_view.fold(view, data, event.time)
                continue
            state = states.get(person) or PersonState.empty(person)
            outcomes, state = self._decide(owners, state, event, views.get(person))
            states[person] = changed_states[person] = state
            outcomes_by_type.update(
                o.TYPE if not isinstance(o, Held) else "settlement.refund_held" for o in outcomes)
            out += _answer(event, person, [o for o in outcomes if not isinstance(o, Held)])
            out += refusal_copies(incoming.record, outcomes[:1], INPUT_REFUSALS)
        await store.save_persons(conn, changed_states)
        await store.save_views(conn, changed_views)
        if outcomes_by_type or changed_views:
            log.info("settlement.batch", events=len(batch), outcomes=dict(outcomes_by_type),
                     filing_views=len(changed_views))
        return out

    def _decide(self, owners: dict[tuple[str, str], str], state: PersonState,
                event: Envelope[Any], view: PersonFilings | None
                ) -> tuple[list[Outcome], PersonState]:
        """The outcomes of one event, and the person's state with them applied in order."""
        data = event.data
        if event.source != f"hospital/{data.hospital}":
            # An impersonation says nothing about the named hospital: the state stays.
            reason = Reason(code=reasons.SOURCE_MISMATCH, message=(
                f"sent by {event.source} for hospital {data.hospital}: a hospital may only "
                f"send its own settlements, with source hospital/{data.hospital}"))
            sender = event.source.removeprefix("hospital/")
            return [_refused(data, reason, hospital=sender if _is_code(sender) else None)], state
        if isinstance(data, RefundRequested):
            outcome = decide_refund(state, data)
            _log(outcome)
            return [outcome], evolve(state, outcome)
        assert isinstance(data, SettlementSubmitted)
        if owners.get((data.hospital, data.settlement_id)) != data.person_id:
            refused = _refused(data, Reason(code=reasons.DUPLICATE_SETTLEMENT_ID, message=(
                f"hospital {data.hospital} already used settlement id {data.settlement_id} "
                "for another person; use a new settlement_id")), hospital=data.hospital)
            return [refused], evolve(state, refused)
        decided = decide_settlement(state, data, self.facts.context(
            data, view, care_date(state, data)))
        _log(decided)
        outcomes: list[Outcome] = [decided]
        state = evolve(state, decided)
        for held in state.held_for(data.settlement_id):  # refunds that arrived first
            outcome = decide_refund(state, held)
            state = evolve(state, outcome)
            outcomes.append(outcome)
            _log(outcome)
        return outcomes, state

    async def observe(self, conn: asyncpg.Connection, records: Sequence[Record]) -> list[Outgoing]:
        return []

    def answer_rejection(self, record: Record, rejection: Rejection) -> list[Outgoing]:
        """A submission that broke the contract still gets its error event, if it can be named."""
        data = rejection.document.get("data")
        data = data if isinstance(data, dict) else {}
        kind = rejection.document.get("type")
        fields = {k: data.get(k) for k in ("settlement_id", "refund_id", "hospital", "person_id")
                  if isinstance(data.get(k), str)}
        payload: Payload
        try:
            if kind == RefundRequested.TYPE:
                payload = RefundRejected(reasons=[rejection.reason], **fields)  # type: ignore[arg-type]
            else:
                fields.pop("refund_id", None)
                payload = SettlementRejected(reasons=[rejection.reason], **fields)  # type: ignore[arg-type]
        except Exception:  # the sender cannot be identified: the .rejected record must do
            return []
        person = fields.get("person_id") or (record.key or b"").decode("utf-8", "replace")
        answer = make_event(payload, id=derived_id("settlement.rejected", record.position),
                            source=SOURCE, time=record.time, subject=person or None)
        return [Outgoing.event(topics.SETTLEMENT_EVENTS, person, answer)]


def _refused(data: SettlementSubmitted | RefundRequested, reason: Reason, *,
             hospital: str | None) -> Outcome:
    """A refusal addressed to `hospital`: the sender, not the hospital it claimed to be."""
    if isinstance(data, RefundRequested):
        return RefundRejected(refund_id=data.refund_id, reasons=[reason],
                              settlement_id=data.settlement_id, hospital=hospital,
                              person_id=data.person_id)
    return SettlementRejected(settlement_id=data.settlement_id, reasons=[reason],
                              hospital=hospital, person_id=data.person_id)


def _is_code(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9._:/-]{1,64}", text))


def _log(outcome: Outcome) -> None:
    """One line per outcome at debug level; `handle` logs a summary of the batch at info."""
    if not log_enabled(logging.DEBUG):
        return
    if isinstance(outcome, Held):
        log.debug("settlement.refund_held", refund_id=outcome.refund.refund_id,
                  settlement_id=outcome.refund.settlement_id)
    else:
        log.debug(outcome.TYPE, settlement_id=getattr(outcome, "settlement_id", None),
                  reasons=[r.code for r in getattr(outcome, "reasons", [])] or None)


def _answer(cause: Envelope[Any], person: str, outcomes: Sequence[Payload]) -> list[Outgoing]:
    return [
        Outgoing.event(topics.SETTLEMENT_EVENTS, person, make_event(
            payload, id=derived_id("settlement", cause.source, cause.id, str(n)), source=SOURCE,
            time=cause.time, subject=person, correlationid=cause.correlationid or cause.id,
            causationid=cause.id))
        for n, payload in enumerate(outcomes)
    ]


async def make_handler(pool: asyncpg.Pool, settings: Settings) -> SettlementHandler:
    # The enrolment check is always on, except in the bench's run that measures its cost.
    check = os.environ.get("CLEARINGHOUSE_ENROLMENT_CHECK", "on").lower() not in ("off", "0")
    if not check:
        log.warning("settlement.enrolment_check_off",
                    why="CLEARINGHOUSE_ENROLMENT_CHECK=off: settling without the registry")
    return SettlementHandler(Facts(load_reference(settings.reference_dir),
                                   enrolment_check=check))
