"""Per-person state: deductible and cap use, and the settlements decided, as a fold of outcomes.

`evolve` applies the settlement service's own outcomes (completed, rejected, refunded, refund
rejected, held); a refund gives back exactly its settlement's deductible and cap use. The
state round-trips through JSON for storage (`to_document`, `from_document`), money as
strings; its settlements are read from their documents only when looked at (`Settlements`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, overload

from shared.business_time import business_date
from shared.events.settlement import (
    RefundRejected,
    RefundRequested,
    SettlementCompleted,
    SettlementRefunded,
    SettlementRejected,
    VisitType,
)
from shared.money import ZERO, format_money, parse_money

STATE_VERSION = 1


def year_scope(year: int, insurance_type: str, pool: str) -> str:
    """Key of a calendar-year accumulator (deductible or cap) of one pool of visit types."""
    return f"year|{year}|{insurance_type}|{pool}"


def admission_scope(hospital: str, admitted_on: date) -> str:
    """Key of a per-admission deductible: one stay at one hospital."""
    return f"admission|{hospital}|{admitted_on.isoformat()}"


@dataclass(frozen=True)
class SettlementRecord:
    """What the state keeps of a completed settlement: enough to refund and re-settle it."""

    settlement_id: str
    hospital: str
    insured_agency: str
    care_agency: str
    settled_at: datetime
    total: Decimal
    deductible: Decimal
    fund_pay: Decimal
    account_pay: Decimal
    cash_pay: Decimal
    cleared_amount: Decimal
    deductible_scope: str
    cap_scope: str
    resettles: str | None = None
    refund_id: str | None = None
    resettled_by: str | None = None
    #: Further payers (大病保险, 医疗救助) and the accumulators they used, scope → amount:
    #: a refund gives these back too.
    serious_illness_pay: Decimal | None = None
    medical_assistance_pay: Decimal | None = None
    other_payer_uses: Mapping[str, Decimal] | None = None

    @property
    def refunded(self) -> bool:
        return self.refund_id is not None


class Settlements(Sequence[SettlementRecord]):
    """A person's settlements, oldest first: an immutable sequence of `SettlementRecord`s.

    A person's state is loaded and stored whole for every event, and the settlements are
    most of it, growing with the person's history (any earlier settlement may still be
    refunded). So they are kept as loaded, as their stored documents, and a document
    becomes a `SettlementRecord` only when that settlement is looked at: a lookup by
    (hospital, settlement_id) compares two strings per settlement, and storing the state
    again writes the untouched documents back as they came. What an event costs then hardly
    depends on how many settlements the person had before."""

    __slots__ = ("_keys", "_docs", "_records")

    def __init__(self, records: Iterable[SettlementRecord] = ()):
        kept = tuple(records)
        self._keys: tuple[tuple[str, str], ...] = tuple(
            (r.hospital, r.settlement_id) for r in kept)
        #: The stored document of each settlement, None for one added or changed since.
        self._docs: tuple[Mapping[str, Any] | None, ...] = (None,) * len(kept)
        #: Each settlement as a record once built (a cache: the value never changes).
        self._records: list[SettlementRecord | None] = list(kept)

    @classmethod
    def from_documents(cls, docs: Iterable[Mapping[str, Any]]) -> Settlements:
        """From stored documents (`record_document`'s), none of them read yet."""
        kept = tuple(docs)
        made = cls()
        made._keys = tuple((d["hospital"], d["settlement_id"]) for d in kept)
        made._docs = kept
        made._records = [None] * len(kept)
        return made

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, index: int) -> SettlementRecord: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[SettlementRecord]: ...

    def __getitem__(self, index: int | slice) -> SettlementRecord | Sequence[SettlementRecord]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self))[index])
        record = self._records[index]
        if record is None:
            doc = self._docs[index]
            assert doc is not None
            record = self._records[index] = record_from_document(doc)
        return record

    def index_of(self, hospital: str, settlement_id: str) -> int | None:
        key = (hospital, settlement_id)
        return next((i for i, k in enumerate(self._keys) if k == key), None)

    def indexes_of_id(self, settlement_id: str) -> list[int]:
        return [i for i, k in enumerate(self._keys) if k[1] == settlement_id]

    def appended(self, record: SettlementRecord) -> Settlements:
        return self._with(len(self), record)

    def replaced(self, index: int, record: SettlementRecord) -> Settlements:
        if not 0 <= index < len(self) or self._keys[index] != (record.hospital,
                                                               record.settlement_id):
            raise ValueError(f"settlement {index} is not {record.hospital}/"
                             f"{record.settlement_id}")
        return self._with(index, record)

    def _with(self, index: int, record: SettlementRecord) -> Settlements:
        made = Settlements()
        key = (record.hospital, record.settlement_id)
        made._keys = (*self._keys[:index], key, *self._keys[index + 1:])
        made._docs = (*self._docs[:index], None, *self._docs[index + 1:])
        made._records = [*self._records[:index], record, *self._records[index + 1:]]
        return made

    def documents(self) -> list[Mapping[str, Any]]:
        """The stored form of each settlement: as loaded when untouched."""
        return [doc if doc is not None else record_document(self[i])
                for i, doc in enumerate(self._docs)]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Settlements):
            return self._keys == other._keys and self.documents() == other.documents()
        if isinstance(other, Sequence):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other,
                                                                              strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._keys)

    def __repr__(self) -> str:
        return f"Settlements({list(self)!r})"


@dataclass(frozen=True)
class Held:
    """A refund naming a settlement not decided yet: kept, and decided again later."""

    refund: RefundRequested
    code: str
    message: str


#: The settlement id prefix under which a manual reimbursement is recorded in the person's
#: state (``MR:<claim_id>``, reimbursement.py). Reserved: a hospital's settlement, refund or
#: `resettles` may not name such an id, or it could refund, re-settle or pre-empt a
#: reimbursement the insuring agency paid, which is no obligation between agencies.
REIMBURSEMENT_PREFIX = "MR:"


@dataclass(frozen=True)
class PersonState:
    """One insured person's accumulators, settlements, rejected ids and held refunds."""

    person_id: str
    deductible_used: Mapping[str, Decimal]
    cap_used: Mapping[str, Decimal]
    settlements: Settlements = Settlements()
    #: (hospital, settlement_id) of rejected settlements never completed since.
    rejected: frozenset[tuple[str, str]] = frozenset()
    held_refunds: tuple[RefundRequested, ...] = ()
    #: One-stay filings (emergency inpatient) ended by a discharge settlement: filing id ->
    #: the admission (`admission_scope`) that used them; only that stay may use them again
    #: (its re-settlement), from `settlement.completed`'s ``filings_consumed``.
    consumed_filings: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def empty(cls, person_id: str) -> PersonState:
        return cls(person_id=person_id, deductible_used={}, cap_used={})

    def find(self, hospital: str, settlement_id: str) -> SettlementRecord | None:
        index = self.settlements.index_of(hospital, settlement_id)
        return None if index is None else self.settlements[index]

    def with_id(self, settlement_id: str) -> list[SettlementRecord]:
        """Every settlement of the person with this id, whatever the hospital."""
        return [self.settlements[i] for i in self.settlements.indexes_of_id(settlement_id)]

    def held_for(self, settlement_id: str) -> tuple[RefundRequested, ...]:
        """Held refunds to decide again once `settlement_id` is decided."""
        return tuple(r for r in self.held_refunds if r.settlement_id == settlement_id)


Outcome = SettlementCompleted | SettlementRejected | SettlementRefunded | RefundRejected | Held


def evolve(state: PersonState, outcome: Outcome) -> PersonState:
    """Apply one decided outcome; applying the same outcome twice changes nothing more."""
    if isinstance(outcome, SettlementCompleted):
        return _completed(state, outcome)
    if isinstance(outcome, SettlementRejected):
        key = (outcome.hospital or "", outcome.settlement_id)
        if outcome.hospital is None or state.find(*key) is not None:
            return state
        return replace(state, rejected=state.rejected | {key})
    if isinstance(outcome, SettlementRefunded):
        return _refunded(state, outcome)
    if isinstance(outcome, RefundRejected):
        return _drop_held(state, outcome.refund_id)
    if any(r.refund_id == outcome.refund.refund_id for r in state.held_refunds):
        return state
    return replace(state, held_refunds=(*state.held_refunds, outcome.refund))


def _completed(state: PersonState, event: SettlementCompleted) -> PersonState:
    if state.find(event.hospital, event.settlement_id) is not None:
        return state
    deductible_scope, cap_scope = scopes_of(event)
    record = SettlementRecord(
        settlement_id=event.settlement_id, hospital=event.hospital,
        insured_agency=event.insured_agency, care_agency=event.care_agency,
        settled_at=event.settled_at, total=event.total, deductible=event.deductible,
        fund_pay=event.fund_pay, account_pay=event.account_pay, cash_pay=event.cash_pay,
        cleared_amount=event.cleared_amount, deductible_scope=deductible_scope,
        cap_scope=cap_scope, resettles=event.resettles,
        serious_illness_pay=event.serious_illness_pay,
        medical_assistance_pay=event.medical_assistance_pay,
        other_payer_uses=event.other_payer_uses or None)
    settlements = state.settlements
    resettled = (None if event.resettles is None
                 else settlements.index_of(event.hospital, event.resettles))
    if resettled is not None:
        settlements = settlements.replaced(resettled, replace(
            settlements[resettled], resettled_by=event.settlement_id))
    consumed = state.consumed_filings
    if event.filings_consumed and event.admitted_on is not None:
        stay = admission_scope(event.hospital, event.admitted_on)
        consumed = {**consumed, **{f: stay for f in event.filings_consumed if f not in consumed}}
    return replace(
        state,
        consumed_filings=consumed,
        settlements=settlements.appended(record),
        deductible_used=_add(state.deductible_used, deductible_scope, event.deductible),
        cap_used=_add_all(_add(state.cap_used, cap_scope, event.fund_pay),
                          event.other_payer_uses, 1),
        rejected=state.rejected - {(event.hospital, event.settlement_id)},
    )


def _refunded(state: PersonState, event: SettlementRefunded) -> PersonState:
    index = state.settlements.index_of(event.hospital, event.settlement_id)
    record = None if index is None else state.settlements[index]
    if index is None or record is None or record.refunded:
        return _drop_held(state, event.refund_id)
    return _drop_held(replace(
        state,
        settlements=state.settlements.replaced(index, replace(record,
                                                              refund_id=event.refund_id)),
        deductible_used=_add(state.deductible_used, record.deductible_scope, -record.deductible),
        cap_used=_add_all(_add(state.cap_used, record.cap_scope, -record.fund_pay),
                          record.other_payer_uses, -1),
    ), event.refund_id)


def _drop_held(state: PersonState, refund_id: str) -> PersonState:
    kept = tuple(r for r in state.held_refunds if r.refund_id != refund_id)
    return state if len(kept) == len(state.held_refunds) else replace(state, held_refunds=kept)


def _add(totals: Mapping[str, Decimal], scope: str, amount: Decimal) -> dict[str, Decimal]:
    """Add to one accumulator; zero entries are dropped so a refund restores the exact map."""
    result = dict(totals)
    value = result.get(scope, ZERO) + amount
    if value == 0:
        result.pop(scope, None)
    else:
        result[scope] = value
    return result


def _add_all(totals: Mapping[str, Decimal], uses: Mapping[str, Decimal] | None,
             sign: int) -> Mapping[str, Decimal]:
    """Add (sign 1) or give back (sign -1) the further payers' accumulator uses."""
    for scope, amount in sorted((uses or {}).items()):
        totals = _add(totals, scope, amount * sign)
    return totals


def scopes_of(event: SettlementCompleted) -> tuple[str, str]:
    """The deductible and cap scopes an event used; older events without them get defaults."""
    year = business_date(event.settled_at).year
    cap = event.cap_scope or year_scope(year, event.insurance_type.value, event.visit_type.value)
    if event.deductible_scope:
        return event.deductible_scope, cap
    if event.visit_type is VisitType.INPATIENT and event.admitted_on is not None:
        return admission_scope(event.hospital, event.admitted_on), cap
    return year_scope(year, event.insurance_type.value, event.visit_type.value), cap


# ---- JSON ---------------------------------------------------------------------------------


_MONEY_FIELDS = ("total", "deductible", "fund_pay", "account_pay", "cash_pay", "cleared_amount")


def record_document(s: SettlementRecord) -> dict[str, Any]:
    """A settlement as stored: money as two-decimal strings, the time in RFC 3339."""
    # The keys in the order they always had (the fields, the time, then _MONEY_FIELDS);
    # the further payers only where there are any, so older documents read the same.
    document = _base_document(s)
    if s.serious_illness_pay is not None:
        document["serious_illness_pay"] = format_money(s.serious_illness_pay)
    if s.medical_assistance_pay is not None:
        document["medical_assistance_pay"] = format_money(s.medical_assistance_pay)
    if s.other_payer_uses:
        document["other_payer_uses"] = {k: format_money(v)
                                        for k, v in sorted(s.other_payer_uses.items())}
    return document


def _base_document(s: SettlementRecord) -> dict[str, Any]:
    return {
        "settlement_id": s.settlement_id, "hospital": s.hospital,
        "insured_agency": s.insured_agency, "care_agency": s.care_agency,
        "deductible_scope": s.deductible_scope, "cap_scope": s.cap_scope,
        "resettles": s.resettles, "refund_id": s.refund_id, "resettled_by": s.resettled_by,
        "settled_at": s.settled_at.isoformat(),
        "total": format_money(s.total), "deductible": format_money(s.deductible),
        "fund_pay": format_money(s.fund_pay), "account_pay": format_money(s.account_pay),
        "cash_pay": format_money(s.cash_pay),
        "cleared_amount": format_money(s.cleared_amount),
    }


def record_from_document(d: Mapping[str, Any]) -> SettlementRecord:
    """The inverse of `record_document`."""
    fields = dict(d)
    fields["settled_at"] = datetime.fromisoformat(d["settled_at"])
    fields.update({k: parse_money(d[k]) for k in _MONEY_FIELDS})
    for key in ("serious_illness_pay", "medical_assistance_pay"):
        if key in d:
            fields[key] = parse_money(d[key])
    if "other_payer_uses" in d:
        fields["other_payer_uses"] = {k: parse_money(v)
                                      for k, v in d["other_payer_uses"].items()}
    return SettlementRecord(**fields)


def to_document(state: PersonState) -> dict[str, Any]:
    """A JSON-ready dict (for a JSONB column): money as two-decimal strings, times RFC 3339."""
    document: dict[str, Any] = {
        "version": STATE_VERSION,
        "person_id": state.person_id,
        "deductible_used": {k: format_money(v) for k, v in sorted(state.deductible_used.items())},
        "cap_used": {k: format_money(v) for k, v in sorted(state.cap_used.items())},
        "settlements": state.settlements.documents(),
        "rejected": [list(key) for key in sorted(state.rejected)],
        "held_refunds": [r.model_dump(mode="json") for r in state.held_refunds],
    }
    if state.consumed_filings:  # absent while empty: earlier rows read and write unchanged
        document["consumed_filings"] = dict(sorted(state.consumed_filings.items()))
    return document


def from_document(doc: Mapping[str, Any]) -> PersonState:
    """The inverse of `to_document`. The settlements are read when looked at
    (`Settlements`): a document with a broken settlement fails then, not here."""
    if doc.get("version") != STATE_VERSION:
        raise ValueError(f"person state version {doc.get('version')!r}; "
                         f"this code reads version {STATE_VERSION}")
    return PersonState(
        person_id=doc["person_id"],
        deductible_used={k: parse_money(v) for k, v in doc["deductible_used"].items()},
        cap_used={k: parse_money(v) for k, v in doc["cap_used"].items()},
        settlements=Settlements.from_documents(doc["settlements"]),
        rejected=frozenset((h, s) for h, s in doc["rejected"]),
        held_refunds=tuple(RefundRequested.model_validate_json(json.dumps(r))
                           for r in doc["held_refunds"]),
        consumed_filings=dict(doc.get("consumed_filings", {})),
    )


def to_json(state: PersonState) -> str:
    return json.dumps(to_document(state), ensure_ascii=False, sort_keys=True)


def from_json(text: str) -> PersonState:
    return from_document(json.loads(text))
