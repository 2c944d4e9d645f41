"""The filing aggregate's state: one person's filings, rebuilt by folding the service's own
``filing.events``.

It is deliberately the same fold as the query model in `shared.filing_view`: the filing
service decides overlaps with exactly the notion of "in force" that settlement applies.
The service's own events always carry ``supplied_on``, so this fold needs no event time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from shared import filing_view
from shared.events.base import Payload
from shared.filing_view import Filing, PersonFilings

PersonFilingState = PersonFilings
"""Stored per person (``to_json()`` / ``PersonFilingState.from_json()``), keyed by person id."""


def empty(person_id: str) -> PersonFilingState:
    """The state of a person the service has never seen."""
    return PersonFilings(person_id=person_id)


def fold(state: PersonFilingState, event: Payload) -> PersonFilingState:
    """Apply one of the service's own events (filing.rejected changes nothing)."""
    return filing_view.fold(state, event)


def fold_all(state: PersonFilingState, events: Iterable[Payload]) -> PersonFilingState:
    for event in events:
        state = fold(state, event)
    return state


def expiry_due(filing: Filing) -> date | None:
    """The day a filing.expired falls due: the day after valid_until, unless a revocation
    ended the filing first or the expiry was already published."""
    if filing.valid_until is None or filing.expired_on is not None:
        return None
    after = filing.valid_until + timedelta(days=1)
    if filing.revoked_from is not None and filing.revoked_from < after:
        return None
    return after


def overdue_due(filing: Filing) -> date | None:
    """The day a filing.materials_overdue falls due, if the filing still owes materials and
    is still in force on its due date."""
    due = filing.materials_due
    if due is None or filing.materials_supplied_on is not None or filing.materials_overdue:
        return None
    ends = filing.ends()
    return due if ends is None or due < ends else None


def next_deadline(state: PersonFilingState) -> date | None:
    """The first day on which `decisions.expire` will have something to publish; store it
    with the state so that a daily job finds the persons due (``WHERE next_deadline <= today``)."""
    days = [d for f in state.filings for d in (expiry_due(f), overdue_due(f)) if d is not None]
    return min(days, default=None)
