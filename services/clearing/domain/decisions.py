"""decide(state, message) → Decision: the shape of every clearing decision, and the
decisions on settlements and refunds (the calendar's are in `calendar`, the agencies'
submissions in `submissions`).

Every decision is pure: it copies the state it is given and returns the new state, the
results to publish, the sealed journal entries, and the item and report rows to store.
The handler loads what a function asks for (an original settlement, a daily report, the
calendar's `needs`) and stores a decision in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.clearing.domain.chain import seal
from services.clearing.domain.cycles import clearing_cycle, difference_notices
from services.clearing.domain.disputes import correct_disputes
from services.clearing.domain.items import (
    ClearingItem,
    ItemKind,
    is_cross_region,
    item_for_refund,
    item_for_settlement,
)
from services.clearing.domain.ledger import (
    EventRef,
    JournalEntry,
    Posting,
    postings_for_refund,
    postings_for_settlement,
)
from services.clearing.domain.periods import cycle_of
from services.clearing.domain.reports import ReportRecord
from services.clearing.domain.state import ClearingState, CycleState, Dispute
from shared.events import derived_id
from shared.events.base import Payload
from shared.events.clearing import (
    HUB,
    CycleClosed,
    DailyReport,
    DifferenceNotice,
    DisputeCorrected,
    DisputeOpened,
    DisputeResolved,
    NetTransferInstruction,
    RemittanceOverdue,
    StatementIssued,
    SubmissionRejected,
)
from shared.events.settlement import SettlementCompleted, SettlementRefunded


@dataclass(frozen=True)
class Result:
    """A payload for ``clearing.results``: keyed by the agency it is addressed to, with an
    event id derived from what it is about, so a replay republishes the same ids."""

    key: str
    event_id: str
    payload: Payload


def result_for(payload: Payload) -> Result:
    """Address a clearing result and give it its deterministic event id."""
    match payload:
        case DailyReport(agency=agency, date=day):
            return Result(agency, derived_id("daily_report", agency, day.isoformat()), payload)
        case StatementIssued(agency=agency, cycle=cycle):
            return Result(agency, derived_id("statement", cycle, agency), payload)
        case NetTransferInstruction(instruction_id=iid, payer=payer, payee=payee):
            return Result(payee if payer == HUB else payer, derived_id("instruction", iid), payload)
        case DifferenceNotice(agency=agency, hospital=hospital, settlement_id=sid):
            return Result(agency, derived_id("difference", agency, hospital or "", sid), payload)
        case RemittanceOverdue(instruction_id=iid, payer=payer):
            return Result(payer, derived_id("overdue", iid), payload)
        case CycleClosed(agency=agency, cycle=cycle):
            return Result(agency, derived_id("cycle_closed", cycle, agency), payload)
        case DisputeOpened(agency=agency, disputed_by=by, settlement_id=sid):
            raised = (payload.report_date.isoformat() if payload.report_date
                      else payload.statement_cycle or "")
            return Result(agency, derived_id("dispute_opened", agency, by, sid, raised), payload)
        case DisputeCorrected(agency=agency, disputed_by=by, hospital=hospital,
                              refund_id=refund_id):
            return Result(agency, derived_id("dispute_corrected", agency, by, hospital,
                                             refund_id), payload)
        case DisputeResolved(agency=agency, disputed_by=by, settlement_id=sid):
            confirmed = (payload.confirmed_report_date.isoformat()
                         if payload.confirmed_report_date
                         else payload.confirmed_statement_cycle or "")
            return Result(agency, derived_id("dispute_resolved", agency, by, sid, confirmed),
                          payload)
    raise TypeError(f"{type(payload).__name__} is not a clearing result with a fixed address")


@dataclass(frozen=True)
class Decision:
    """Everything one event changes; stored and published together."""

    state: ClearingState
    results: tuple[Result, ...] = ()
    #: Sealed: every posting has its ledger sequence and chain link.
    entries: tuple[JournalEntry, ...] = ()
    #: Item rows to insert or update (a daily report sets `reported_on`).
    items: tuple[ClearingItem, ...] = ()
    #: Daily report rows to insert or update (an answer recorded).
    reports: tuple[ReportRecord, ...] = ()
    #: The cycles whose state this decision changed (or created): the only ones to rewrite
    #: when cycles are stored a row each.
    changed_cycles: tuple[str, ...] = ()

    @property
    def postings(self) -> list[Posting]:
        return [p for entry in self.entries for p in entry.postings]


@dataclass
class Draft:
    """A decision being built on a private copy of the state (the input is never changed).

    The copy is shallow where nothing is changed in place: a cycle is copied the first
    time the draft asks for it with `cycle`, so an event costs the same in year ten.
    """

    state: ClearingState
    results: list[Result] = field(default_factory=list)
    entries: list[JournalEntry] = field(default_factory=list)
    items: list[ClearingItem] = field(default_factory=list)
    reports: list[ReportRecord] = field(default_factory=list)
    copied: set[str] = field(default_factory=set)
    #: Cycles changed without being copied (`touch`): added to, never changed in place.
    touched: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, state: ClearingState) -> Draft:
        return cls(state.model_copy(update={
            "cycles": dict(state.cycles),
            "disputes": {agency: dict(d) for agency, d in state.disputes.items()},
            "ledger_heads": dict(state.ledger_heads),
            "funds": dict(state.funds),
        }))

    def cycle(self, cycle: str) -> CycleState:
        """The draft's own copy of a cycle's state, created open when new: change it freely."""
        if cycle not in self.copied:
            known = self.state.cycles.get(cycle)
            self.state.cycles[cycle] = (known.model_copy(deep=True) if known
                                        else CycleState(cycle=cycle))
            self.copied.add(cycle)
        return self.state.cycles[cycle]

    def touch(self, cycle: str) -> None:
        """Count a cycle as changed by this decision, created open when new, without copying
        it: for decisions that only add items and postings to it (see `posting_to`)."""
        if cycle not in self.state.cycles:
            self.state.cycles[cycle] = CycleState(cycle=cycle)
        self.touched.add(cycle)

    def emit(self, payload: Payload) -> None:
        self.results.append(result_for(payload))

    def reject(self, cause: EventRef, payload: Payload, agency: str,
               reasons: list[dict[str, str]]) -> None:
        rejected = SubmissionRejected(agency=agency, submission_type=payload.TYPE, reasons=reasons)
        self.results.append(Result(agency, derived_id("rejected", cause.source, cause.id),
                                   rejected))

    def post(self, entries: Iterable[JournalEntry]) -> None:
        """Seal at once: a statement issued later in the same decision must see these."""
        sealed, self.state.ledger_heads = seal(entries, self.state.ledger_heads)
        self.entries += sealed

    def decision(self) -> Decision:
        return Decision(self.state, tuple(self.results), tuple(self.entries),
                        tuple(self.items), tuple(self.reports),
                        tuple(sorted(self.copied | self.touched)))

    @classmethod
    def posting_to(cls, state: ClearingState, entries: Iterable[JournalEntry],
                   disputes: dict[str, dict[str, Dispute]] | None = None) -> Draft:
        """A draft for a settlement or refund: `entries` sealed onto `state`'s ledger heads.
        Copy-on-write instead of `of`: only the `cycles` dict is copied (its cycle is
        `touch`ed, not changed) and `disputes` replaces the state's when given; the rest,
        disputes included, is shared with `state` and must not be changed in place."""
        sealed, heads = seal(entries, state.ledger_heads)
        update: dict[str, object] = {"cycles": dict(state.cycles), "ledger_heads": heads}
        if disputes is not None:
            update["disputes"] = disputes
        draft = cls(state.model_copy(update=update))
        draft.entries += sealed
        return draft


# ---- settlements ----------------------------------------------------------------------------


def on_settlement_completed(
    state: ClearingState, completed: SettlementCompleted, cause: EventRef,
    original: ClearingItem | None = None, refunds: Iterable[ClearingItem] | None = None,
) -> Decision:
    """Book the obligation in its cycle (the next open one when late); when it resettles a
    refunded settlement (`original`, loaded by the handler), send difference notices.
    `refunds` are the refund items of `original` (None: not looked up)."""
    if not is_cross_region(completed.insured_agency, completed.care_agency):
        return Decision(state)  # nothing changes: the state itself, unchanged
    cycle = clearing_cycle(cycle_of(completed.settled_at), state.issued_through)
    item = item_for_settlement(completed, cause, cycle)
    draft = Draft.posting_to(state, postings_for_settlement(completed, cause, cycle=cycle))
    draft.touch(cycle)
    draft.items.append(item)
    if completed.resettles is not None and original is not None:
        carried_into = _carried_into(state, original, cycle, refunds)
        for notice in difference_notices(item, original, carried_into):
            draft.emit(notice)
    return draft.decision()


def _carried_into(state: ClearingState, original: ClearingItem, cycle: str,
                  refunds: Iterable[ClearingItem] | None) -> str | None:
    """The cycle the original's refund was carried into as an adjustment; None when the
    refund was cleared in the original's own cycle (nothing was carried). Without the
    refund, the cycle of the new settlement when the original's cycle is issued."""
    known = [r for r in refunds or () if r.kind is ItemKind.REFUND]
    if refunds is None or not known:
        return cycle if state.is_issued(original.cycle) else None
    latest = max(known, key=lambda r: (r.business_time, r.item_id))
    return latest.cycle if latest.is_adjustment else None


def on_settlement_refunded(
    state: ClearingState, refunded: SettlementRefunded, cause: EventRef,
) -> Decision:
    """Reverse the settlement's obligation, in its cycle or, when that is issued, as an
    adjustment of the next open one; a refund corrects the open disputes about the
    settlement (services.clearing.domain.disputes)."""
    if not is_cross_region(refunded.insured_agency, refunded.care_agency):
        return Decision(state)  # nothing changes: the state itself, unchanged
    cycle = clearing_cycle(cycle_of(refunded.settled_at), state.issued_through)
    settlement_id = refunded.settlement_id
    # copy-on-write: only the agencies' disputes that mention the settlement are copied
    disputes = ({agency: dict(d) if settlement_id in d else d
                 for agency, d in state.disputes.items()}
                if any(settlement_id in d for d in state.disputes.values()) else None)
    draft = Draft.posting_to(state, postings_for_refund(refunded, cause, cycle=cycle), disputes)
    draft.touch(cycle)
    draft.items.append(item_for_refund(refunded, cause, cycle))
    if disputes is not None:
        for notice in correct_disputes(draft.state.disputes, refunded):
            draft.emit(notice)
    return draft.decision()
