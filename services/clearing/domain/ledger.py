"""Double-entry ledgers, one per agency and one for the hub (docs/clearing.md).

A `Posting` is one line of one ledger and maps 1:1 onto a table row; a `JournalEntry`
groups the postings one event causes in one ledger and always balances. Amounts are
positive `Decimal` yuan; the side says debit or credit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from services.clearing.domain.periods import cycle_of
from shared.events import derived_id
from shared.events.clearing import HUB
from shared.events.settlement import SettlementCompleted, SettlementRefunded
from shared.money import ZERO


class AccountKind(StrEnum):
    """Accounts of a ledger; each is kept per counterpart (another agency or the hub)."""

    #: Asset: owed to this agency by the counterpart.
    RECEIVABLE = "receivable"
    #: Liability: owed by this agency to the counterpart.
    PAYABLE = "payable"
    #: Care agency: fund shares it paid its hospitals on the counterpart's behalf (代为结算).
    ADVANCED_TO_HOSPITALS = "advanced_to_hospitals"
    #: Insuring agency: benefits its insured persons received in the counterpart's region.
    BENEFIT_EXPENSE = "benefit_expense"
    #: Money actually moved to or from the counterpart (remittances, distributions).
    BANK = "bank"


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"

    @property
    def opposite(self) -> Side:
        return Side.CREDIT if self is Side.DEBIT else Side.DEBIT


class EntryKind(StrEnum):
    """What caused a journal entry."""

    SETTLEMENT = "settlement"
    REFUND = "refund"
    CLEARING = "clearing"
    REMITTANCE = "remittance"
    DISTRIBUTION = "distribution"


@dataclass(frozen=True)
class EventRef:
    """The event that caused something: its CloudEvents ``source`` and ``id``."""

    source: str
    id: str


class AccountKey(NamedTuple):
    agency: str
    account: AccountKind
    counterpart: str


@dataclass(frozen=True)
class Posting:
    """One line of an agency's ledger: a table row, traceable to the event that caused it.

    `sequence` and `link` are 0 and "" until the posting is appended to its ledger
    (`chain.seal`): its place in the ledger and the hash chain after it.
    """

    agency: str
    entry_id: str
    line: int
    kind: EntryKind
    account: AccountKind
    counterpart: str
    side: Side
    amount: Decimal
    #: When it happened in business terms (settled_at, refunded_at, paid_at, a calendar day).
    business_time: datetime
    #: The cycle it is cleared in, and the cycle of the settlement behind it (differ when carried).
    cycle: str
    origin_cycle: str
    cause: EventRef
    settlement_id: str | None = None
    sequence: int = 0
    link: str = ""

    @property
    def signed(self) -> Decimal:
        """Debit positive, credit negative."""
        return self.amount if self.side is Side.DEBIT else -self.amount

    @property
    def key(self) -> AccountKey:
        return AccountKey(self.agency, self.account, self.counterpart)


@dataclass(frozen=True)
class JournalEntry:
    """The postings one event causes in one ledger; debits equal credits."""

    entry_id: str
    agency: str
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        if not self.postings:
            raise ValueError(f"journal entry {self.entry_id} has no postings")
        if any(p.agency != self.agency or p.entry_id != self.entry_id for p in self.postings):
            raise ValueError(f"journal entry {self.entry_id} mixes ledgers or entries")
        if sum((p.signed for p in self.postings), ZERO) != ZERO:
            raise ValueError(f"journal entry {self.entry_id} does not balance")


Line = tuple[AccountKind, str, Side, Decimal]
"""A line before it becomes a posting: account, counterpart, side, amount."""


def _entry(
    agency: str, kind: EntryKind, cause: EventRef, business_time: datetime, cycle: str,
    lines: Iterable[Line], *, origin_cycle: str | None = None, settlement_id: str | None = None,
) -> JournalEntry | None:
    """Build one entry, dropping zero lines (an all-cash settlement posts nothing)."""
    entry_id = derived_id(kind.value, cycle, agency, cause.source, cause.id)
    origin_cycle = origin_cycle or cycle
    postings = tuple(
        _posting(agency=agency, entry_id=entry_id, line=n, kind=kind, account=account,
                 counterpart=counterpart, side=side, amount=amount,
                 business_time=business_time, cycle=cycle, origin_cycle=origin_cycle,
                 cause=cause, settlement_id=settlement_id, sequence=0, link="")
        for n, (account, counterpart, side, amount) in enumerate(
            (line for line in lines if line[3] != ZERO), start=1)
    )
    for p in postings:
        if p.amount < ZERO:
            raise ValueError(f"posting amounts are positive, got {p.amount} in {entry_id}")
    return JournalEntry(entry_id, agency, postings) if postings else None


def _posting(**fields: object) -> Posting:
    """`Posting(**fields)` given every field, without the frozen dataclass `__init__`'s
    `object.__setattr__` per field (Posting has no `__post_init__`, slots or factories)."""
    posting = object.__new__(Posting)
    posting.__dict__.update(fields)
    return posting


def _entries(*entries: JournalEntry | None) -> list[JournalEntry]:
    return [e for e in entries if e is not None]


def _obligation(
    kind: EntryKind, insured_agency: str, care_agency: str, amount: Decimal, cause: EventRef,
    business_time: datetime, origin_cycle: str, cycle: str, settlement_id: str, reverse: bool,
) -> list[JournalEntry]:
    if insured_agency == care_agency:
        return []
    dr, cr = (Side.CREDIT, Side.DEBIT) if reverse else (Side.DEBIT, Side.CREDIT)
    common = {"origin_cycle": origin_cycle, "settlement_id": settlement_id}
    care = _entry(care_agency, kind, cause, business_time, cycle, [
        (AccountKind.RECEIVABLE, insured_agency, dr, amount),
        (AccountKind.ADVANCED_TO_HOSPITALS, insured_agency, cr, amount),
    ], **common)
    insured = _entry(insured_agency, kind, cause, business_time, cycle, [
        (AccountKind.BENEFIT_EXPENSE, care_agency, dr, amount),
        (AccountKind.PAYABLE, care_agency, cr, amount),
    ], **common)
    return _entries(care, insured)


def postings_for_settlement(
    completed: SettlementCompleted, event_ref: EventRef, *, cycle: str | None = None,
) -> list[JournalEntry]:
    """A completed settlement: the care agency's receivable from the insuring agency against
    its advance to the hospital; the insuring agency's benefit expense against its payable.

    `cycle` is where it is cleared (a later one when it arrived late); same-agency
    settlements post nothing.
    """
    origin = cycle_of(completed.settled_at)
    return _obligation(
        EntryKind.SETTLEMENT, completed.insured_agency, completed.care_agency,
        completed.cleared_amount + completed.other_payers_pay, event_ref, completed.settled_at,
        origin, cycle or origin,
        completed.settlement_id, reverse=False)


def postings_for_refund(
    refunded: SettlementRefunded, event_ref: EventRef, *, cycle: str | None = None,
) -> list[JournalEntry]:
    """A refund reverses its settlement's postings exactly, at the time of the refund."""
    origin = cycle_of(refunded.settled_at)
    return _obligation(
        EntryKind.REFUND, refunded.insured_agency, refunded.care_agency,
        refunded.cleared_amount + refunded.other_payers_pay, event_ref, refunded.refunded_at,
        origin, cycle or origin,
        refunded.settlement_id, reverse=True)


@dataclass(frozen=True)
class Position:
    """An agency's balances with one counterpart in one cycle, both as positive-when-normal
    amounts: what the counterpart owes it, and what it owes the counterpart."""

    receivable: Decimal = ZERO
    payable: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.receivable - self.payable


def postings_for_clearing(
    cycle: str, positions: Mapping[str, Mapping[str, Position]], event_ref: EventRef,
    business_time: datetime,
) -> list[JournalEntry]:
    """Move each agency's receivables and payables of `cycle` into one position with the
    hub, and book the hub's matching claims on net payers and debts to net receivers."""
    entries: list[JournalEntry | None] = []
    hub_lines: list[Line] = []
    for agency in sorted(positions):
        lines: list[Line] = []
        net = ZERO
        for counterpart in sorted(positions[agency]):
            position = positions[agency][counterpart]
            lines.append(_closing(AccountKind.RECEIVABLE, counterpart, position.receivable))
            lines.append(_closing(AccountKind.PAYABLE, counterpart, -position.payable))
            net += position.net
        if net > ZERO:
            lines.append((AccountKind.RECEIVABLE, HUB, Side.DEBIT, net))
            hub_lines.append((AccountKind.PAYABLE, agency, Side.CREDIT, net))
        elif net < ZERO:
            lines.append((AccountKind.PAYABLE, HUB, Side.CREDIT, -net))
            hub_lines.append((AccountKind.RECEIVABLE, agency, Side.DEBIT, -net))
        entries.append(_entry(agency, EntryKind.CLEARING, event_ref, business_time, cycle, lines))
    entries.append(_entry(HUB, EntryKind.CLEARING, event_ref, business_time, cycle, hub_lines))
    return _entries(*entries)


def _closing(account: AccountKind, counterpart: str, balance: Decimal) -> Line:
    """The line that brings a debit-positive `balance` back to zero."""
    side = Side.CREDIT if balance > ZERO else Side.DEBIT
    return (account, counterpart, side, abs(balance))


def postings_for_remittance(
    cycle: str, payer: str, amount: Decimal, event_ref: EventRef, paid_at: datetime,
) -> list[JournalEntry]:
    """A net payer's remittance to the hub settles part of its payable to the hub."""
    return _entries(
        _entry(payer, EntryKind.REMITTANCE, event_ref, paid_at, cycle, [
            (AccountKind.PAYABLE, HUB, Side.DEBIT, amount),
            (AccountKind.BANK, HUB, Side.CREDIT, amount),
        ]),
        _entry(HUB, EntryKind.REMITTANCE, event_ref, paid_at, cycle, [
            (AccountKind.BANK, payer, Side.DEBIT, amount),
            (AccountKind.RECEIVABLE, payer, Side.CREDIT, amount),
        ]),
    )


def postings_for_distribution(
    cycle: str, payouts: Mapping[str, Decimal], event_ref: EventRef, business_time: datetime,
) -> list[JournalEntry]:
    """The hub pays net receivers out of money received, settling its payables to them."""
    receivers = sorted(r for r, amount in payouts.items() if amount > ZERO)
    entries = [
        _entry(receiver, EntryKind.DISTRIBUTION, event_ref, business_time, cycle, [
            (AccountKind.BANK, HUB, Side.DEBIT, payouts[receiver]),
            (AccountKind.RECEIVABLE, HUB, Side.CREDIT, payouts[receiver]),
        ])
        for receiver in receivers
    ]
    hub_lines: list[Line] = [(AccountKind.PAYABLE, r, Side.DEBIT, payouts[r]) for r in receivers]
    hub_lines += [(AccountKind.BANK, r, Side.CREDIT, payouts[r]) for r in receivers]
    return _entries(*entries, _entry(HUB, EntryKind.DISTRIBUTION, event_ref, business_time,
                                     cycle, hub_lines))


# ---- balances -------------------------------------------------------------------------------


def balances(
    postings: Iterable[Posting], *, as_of: datetime | None = None, cycle: str | None = None,
) -> dict[AccountKey, Decimal]:
    """Debit-positive balance of every account, counting postings whose business time is
    at or before `as_of` (all when None) and, when given, only those of `cycle`."""
    result: dict[AccountKey, Decimal] = defaultdict(lambda: ZERO)
    for p in postings:
        if (as_of is None or p.business_time <= as_of) and (cycle is None or p.cycle == cycle):
            result[p.key] += p.signed
    return dict(result)


def receivable(balance: Mapping[AccountKey, Decimal], agency: str, counterpart: str) -> Decimal:
    """What `counterpart` owes `agency` according to `agency`'s ledger."""
    return balance.get(AccountKey(agency, AccountKind.RECEIVABLE, counterpart), ZERO)


def payable(balance: Mapping[AccountKey, Decimal], agency: str, counterpart: str) -> Decimal:
    """What `agency` owes `counterpart` according to `agency`'s ledger."""
    return -balance.get(AccountKey(agency, AccountKind.PAYABLE, counterpart), ZERO)


# ---- invariants: each returns the violations found, empty when all hold ---------------------


def check_entries_balance(postings: Iterable[Posting]) -> list[str]:
    """Every journal entry's debits equal its credits."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for p in postings:
        totals[(p.agency, p.entry_id)] += p.signed
    return [f"entry {entry_id} in the ledger of {agency} is off by {total}"
            for (agency, entry_id), total in sorted(totals.items()) if total != ZERO]


def check_reciprocity(postings: Iterable[Posting]) -> list[str]:
    """For every pair, in every cycle: A's receivable from B equals B's payable to A."""
    by_cycle: dict[str, list[Posting]] = defaultdict(list)
    for p in postings:
        by_cycle[p.cycle].append(p)
    problems = []
    for cycle, cycle_postings in sorted(by_cycle.items()):
        balance = balances(cycle_postings)
        pairs = {(k.agency, k.counterpart) for k in balance if k.account is AccountKind.RECEIVABLE}
        pairs |= {(k.counterpart, k.agency) for k in balance if k.account is AccountKind.PAYABLE}
        for a, b in sorted(pairs):
            owed, owing = receivable(balance, a, b), payable(balance, b, a)
            if owed != owing:
                problems.append(f"{cycle}: {a} has {owed} receivable from {b}, "
                                f"but {b} has {owing} payable to {a}")
    return problems


def check_hub_nets_to_zero(postings: Iterable[Posting]) -> list[str]:
    """In every cycle the hub neither gains nor loses: its receivables from payers equal its
    payables to receivers less the money it holds, and what it owes the agencies on balance
    (their positions with it) is exactly that money."""
    by_cycle: dict[str, Decimal] = defaultdict(lambda: ZERO)
    agencies_with_hub: dict[str, Decimal] = defaultdict(lambda: ZERO)
    hub_bank: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for p in postings:
        if p.agency == HUB:
            by_cycle[p.cycle] += p.signed
            if p.account is AccountKind.BANK:
                hub_bank[p.cycle] += p.signed
        elif p.counterpart == HUB and p.account is not AccountKind.BANK:
            agencies_with_hub[p.cycle] += p.signed
    problems = [f"{cycle}: the hub's accounts add up to {total}, not zero"
                for cycle, total in sorted(by_cycle.items()) if total != ZERO]
    for cycle in sorted(set(agencies_with_hub) | set(hub_bank)):
        if agencies_with_hub[cycle] != hub_bank[cycle]:
            problems.append(f"{cycle}: the hub owes the agencies {agencies_with_hub[cycle]} "
                            f"on balance but holds {hub_bank[cycle]}")
    return problems


def check_hub_never_overdrawn(postings: Iterable[Posting]) -> list[str]:
    """The hub pays receivers only from money received: in ledger order its money of each
    cycle never drops below zero."""
    held: dict[str, Decimal] = defaultdict(lambda: ZERO)
    problems = []
    hub_postings = sorted((p for p in postings if p.agency == HUB), key=lambda p: p.sequence)
    for p in hub_postings:
        if p.account is AccountKind.BANK:
            held[p.cycle] += p.signed
            if held[p.cycle] < ZERO:
                problems.append(f"{p.cycle}: the hub paid out {-held[p.cycle]} more than it "
                                f"had received (posting {p.sequence})")
    return problems


def check_cycle_settled(postings: Iterable[Posting], cycle: str) -> list[str]:
    """After a cycle closes nothing of it is still owed, and the hub paid out exactly what
    it took in."""
    balance = balances(postings, cycle=cycle)
    problems = [f"{cycle}: {k.agency} still has {v} on {k.account} with {k.counterpart}"
                for k, v in sorted(balance.items())
                if v != ZERO and k.account in (AccountKind.RECEIVABLE, AccountKind.PAYABLE)]
    hub_bank = sum((v for k, v in balance.items()
                    if k.agency == HUB and k.account is AccountKind.BANK), ZERO)
    if hub_bank != ZERO:
        problems.append(f"{cycle}: the hub still holds {hub_bank}")
    return problems
