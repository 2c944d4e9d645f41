"""The enrolment registry (参保登记) of one person: a pure fold over the enrolment events.

The filing service folds its accepted enrolment events into it to decide the next command
and whether a filing names an enrolled person; the settlement service folds the same events
from ``filing.events`` and asks, for the business date of a settlement, with which agency
and under which insurance type the person was insured, and what the personal account held.
Spans are kept in effective-date order: an enrolment, then changes, then perhaps a leaving.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from shared.events.base import Payload
from shared.events.enrolment import BalanceReported, InsuranceChanged, PersonEnrolled, PersonLeft


@dataclass(frozen=True)
class EnrolmentSpan:
    """How the person is insured from `effective` on, until the next span; a span with
    `left` set means not insured at all from `effective` on."""

    effective: date
    insured_agency: str
    insurance_type: str | None
    left: str | None = None


@dataclass(frozen=True)
class BalanceReport:
    insured_agency: str
    balance: Decimal
    as_of: datetime


@dataclass(frozen=True)
class Enrolment:
    """One person's enrolment history and personal-account balance reports (arrival order)."""

    spans: tuple[EnrolmentSpan, ...] = ()
    balances: tuple[BalanceReport, ...] = ()
    date_of_birth: date | None = None
    age_band: str | None = None
    assistance: str | None = None

    def empty(self) -> bool:
        return not self.spans and not self.balances

    def latest(self) -> EnrolmentSpan | None:
        return self.spans[-1] if self.spans else None

    def to_dict(self) -> dict[str, Any]:
        return {"spans": [[s.effective.isoformat(), s.insured_agency, s.insurance_type, s.left]
                          for s in self.spans],
                "balances": [[b.insured_agency, f"{b.balance:.2f}", b.as_of.isoformat()]
                             for b in self.balances],
                "date_of_birth": self.date_of_birth and self.date_of_birth.isoformat(),
                "age_band": self.age_band,
                **({"assistance": self.assistance} if self.assistance else {})}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Enrolment:
        birth = document.get("date_of_birth")
        return cls(
            spans=tuple(EnrolmentSpan(date.fromisoformat(e), a, t, left)
                        for e, a, t, left in document["spans"]),
            balances=tuple(BalanceReport(a, Decimal(b), datetime.fromisoformat(t))
                           for a, b, t in document["balances"]),
            date_of_birth=birth and date.fromisoformat(birth),
            age_band=document.get("age_band"), assistance=document.get("assistance"))


@dataclass(frozen=True)
class EnrolledAs:
    """The answer to "how was this person insured on this date?"."""

    insured_agency: str
    insurance_type: str
    since: date


def fold(state: Enrolment, event: Payload) -> Enrolment:
    """Apply one accepted enrolment event; any other payload changes nothing."""
    match event:
        case PersonEnrolled():
            span = EnrolmentSpan(event.effective, event.insured_agency,
                                 event.insurance_type.value)
            return replace(state, spans=_insert(state.spans, span),
                           date_of_birth=event.date_of_birth or state.date_of_birth,
                           age_band=event.age_band or state.age_band,
                           assistance=event.assistance or state.assistance)
        case InsuranceChanged():
            span = EnrolmentSpan(event.effective, event.insured_agency,
                                 event.insurance_type.value)
            return replace(state, spans=_insert(state.spans, span))
        case PersonLeft():
            span = EnrolmentSpan(event.effective, event.insured_agency, None, event.reason.value)
            return replace(state, spans=_insert(state.spans, span))
        case BalanceReported():
            report = BalanceReport(event.insured_agency, event.balance, event.as_of)
            return replace(state, balances=state.balances + (report,))
    return state


def span_on(state: Enrolment, at: date) -> EnrolmentSpan | None:
    """The span in force on `at` (a leaving included), or None before the first one."""
    current = None
    for span in state.spans:
        if span.effective <= at:
            current = span
    return current


def enrolled_on(state: Enrolment, at: date) -> EnrolledAs | None:
    """How the person was insured on business date `at`, or None when not insured then."""
    span = span_on(state, at)
    if span is None or span.left is not None or span.insurance_type is None:
        return None
    return EnrolledAs(span.insured_agency, span.insurance_type, span.effective)


def balance_at(state: Enrolment, moment: datetime, insured_agency: str) -> BalanceReport | None:
    """The latest balance report of `insured_agency` as of `moment` or earlier (a later
    arrival wins a tie), or None when none is known."""
    known = [(b.as_of, n, b) for n, b in enumerate(state.balances)
             if b.as_of <= moment and b.insured_agency == insured_agency]
    return max(known, key=lambda k: (k[0], k[1]))[2] if known else None


def _insert(spans: tuple[EnrolmentSpan, ...], span: EnrolmentSpan) -> tuple[EnrolmentSpan, ...]:
    """Keep effective-date order; a span of the same day as later ones goes after them."""
    index = len(spans)
    while index > 0 and spans[index - 1].effective > span.effective:
        index -= 1
    return spans[:index] + (span,) + spans[index:]
