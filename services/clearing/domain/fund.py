"""The revolving fund (周转金): each insuring agency's advance with the province, a ledger of
its own (``fund/<agency>``) in the clearing service's double-entry ledgers.

Pure rules (docs/clearing.md, "The revolving fund"): the fund opens with its initial advance
on the first calendar day; it advances an overdue net payer's outstanding remittance (a
draw) and is paid back by the late remittance; an agency tops it up (调增); a warning goes
to the agency and the province when the balance is at or below the warning share of the
required level; interest (计息) accrues day by day on the balance as booked when the next day
starts (rate and day count from reference data, each day rounded to the fen, half up) and
is credited on the year's last day; the required level is recalculated at the start of each
year from the last 12 cycles' payables. Everything is driven by events (calendar days,
submissions), never by a clock, so a replay books the same fen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from services.clearing.domain.decisions import Decision, Draft, Result
from services.clearing.domain.ledger import (
    AccountKind,
    EntryKind,
    EventRef,
    JournalEntry,
    Line,
    Posting,
    Side,
)
from services.clearing.domain.periods import cycle_of
from services.clearing.domain.state import ClearingState, FundAccount
from shared.business_time import business_date, start_of
from shared.events import derived_id
from shared.events.base import Payload
from shared.events.clearing import (
    HUB,
    RevolvingFundDrawn,
    RevolvingFundInterestAccrued,
    RevolvingFundInterestCredited,
    RevolvingFundOpened,
    RevolvingFundRepaid,
    RevolvingFundRequiredLevelSet,
    RevolvingFundToppedUp,
    RevolvingFundTopUpAccepted,
    RevolvingFundWarning,
)
from shared.money import ZERO, round_fen

#: Cycles whose payables the required level is computed from.
PAYABLE_HISTORY = 12


@dataclass(frozen=True)
class FundTerms:
    """One agency's fund as reference data gives it."""

    agency: str
    initial_advance: Decimal
    required_level: Decimal


@dataclass(frozen=True)
class FundPolicy:
    """reference/revolving-fund.toml: the province's terms and every agency's fund."""

    version: str
    warning_share: Decimal
    annual_rate: Decimal
    #: Days of the year in the day-count convention: 360 (ACT/360) or 365 (ACT/365).
    day_count: int
    #: The required level is the average monthly payable of the last 12 cycles times this.
    months_covered: Decimal
    funds: Mapping[str, FundTerms] = field(default_factory=dict)

    def threshold(self, required_level: Decimal) -> Decimal:
        return round_fen(required_level * self.warning_share)

    def daily_interest(self, balance: Decimal) -> Decimal:
        """One day's interest on `balance`: balance × rate / day count, to the fen, half up;
        nothing on a balance at or below zero."""
        if balance <= ZERO:
            return ZERO
        return round_fen(balance * self.annual_rate / self.day_count)


def ledger_of(agency: str) -> str:
    """The fund's own ledger among the clearing ledgers."""
    return f"fund/{agency}"


def _entry(agency: str, kind: EntryKind, key: str, cause: EventRef, moment: datetime,
           lines: list[Line]) -> JournalEntry:
    ledger = ledger_of(agency)
    entry_id = derived_id(kind.value, ledger, key, cause.source, cause.id)
    cycle = cycle_of(moment)
    postings = tuple(
        Posting(agency=ledger, entry_id=entry_id, line=n, kind=kind, account=account,
                counterpart=counterpart, side=side, amount=amount, business_time=moment,
                cycle=cycle, origin_cycle=cycle, cause=cause)
        for n, (account, counterpart, side, amount) in enumerate(lines, start=1))
    return JournalEntry(entry_id, ledger, postings)


def _into_fund(agency: str, kind: EntryKind, key: str, cause: EventRef, moment: datetime,
               amount: Decimal, from_account: AccountKind) -> JournalEntry:
    """Money into the fund's balance (Dr balance), against `from_account` (Cr)."""
    return _entry(agency, kind, key, cause, moment, [
        (AccountKind.FUND_BALANCE, agency, Side.DEBIT, amount),
        (from_account, agency, Side.CREDIT, amount)])


def opening_entry(terms: FundTerms, cause: EventRef, day: date) -> JournalEntry:
    """The initial advance: the fund's balance against the agency's contributed advance."""
    return _into_fund(terms.agency, EntryKind.FUND_OPENED, day.isoformat(), cause,
                      start_of(day), terms.initial_advance, AccountKind.FUND_ADVANCE)


def top_up_entry(agency: str, top_up_id: str, amount: Decimal, cause: EventRef,
                 paid_at: datetime) -> JournalEntry:
    """A top-up adds to the agency's contributed advance."""
    return _into_fund(agency, EntryKind.FUND_TOP_UP, top_up_id, cause, paid_at, amount,
                      AccountKind.FUND_ADVANCE)


def draw_entry(agency: str, instruction_id: str, amount: Decimal, cause: EventRef,
               day: date) -> JournalEntry:
    """An advance of an overdue remittance: the agency now owes the fund (Dr drawn)."""
    return _entry(agency, EntryKind.FUND_DRAW, instruction_id, cause, start_of(day), [
        (AccountKind.FUND_DRAWN, agency, Side.DEBIT, amount),
        (AccountKind.FUND_BALANCE, agency, Side.CREDIT, amount)])


def repayment_entry(agency: str, instruction_id: str, amount: Decimal, cause: EventRef,
                    paid_at: datetime) -> JournalEntry:
    """The late remittance pays the fund back what it advanced."""
    return _into_fund(agency, EntryKind.FUND_REPAYMENT, instruction_id, cause, paid_at, amount,
                      AccountKind.FUND_DRAWN)


def accrual_entry(agency: str, day: date, interest: Decimal, cause: EventRef) -> JournalEntry:
    """A day's interest: accrued (Dr), owed to the agency's advance (Cr), not yet in the
    balance. Booked at the end of `day` (the start of the next)."""
    return _entry(agency, EntryKind.INTEREST_ACCRUAL, day.isoformat(), cause,
                  start_of(day + timedelta(days=1)), [
                      (AccountKind.INTEREST_ACCRUED, agency, Side.DEBIT, interest),
                      (AccountKind.FUND_ADVANCE, agency, Side.CREDIT, interest)])


def credit_entry(agency: str, year: int, amount: Decimal, cause: EventRef) -> JournalEntry:
    """The year's accrued interest moves into the balance."""
    return _into_fund(agency, EntryKind.INTEREST_CREDIT, str(year), cause,
                      start_of(date(year + 1, 1, 1)), amount, AccountKind.INTEREST_ACCRUED)


def required_level(policy: FundPolicy, payables: Mapping[str, Decimal]
                   ) -> tuple[Decimal, Decimal, list[str]] | None:
    """The required level from the last 12 cycles' payables: their average × months covered;
    with the average and the cycles used. None when no cycle is known (the level stays)."""
    cycles = sorted(payables)[-PAYABLE_HISTORY:]
    if not cycles:
        return None
    average = round_fen(sum((payables[c] for c in cycles), ZERO) / len(cycles))
    return round_fen(average * policy.months_covered), average, cycles


def keep_recent(payables: dict[str, Decimal]) -> dict[str, Decimal]:
    return {c: payables[c] for c in sorted(payables)[-PAYABLE_HISTORY:]}


def days_to_accrue(account: FundAccount, today: date) -> list[date]:
    """The days interest is still to accrue for when `today` starts: up to yesterday."""
    first = account.accrued_through + timedelta(days=1)
    return [first + timedelta(days=n) for n in range((today - first).days)]


def is_last_day_of_year(day: date) -> bool:
    return day.month == 12 and day.day == 31



# ---- decisions ------------------------------------------------------------------------------


def _emit(draft: Draft, key: str, payload: Payload, *id_parts: str) -> None:
    draft.results.append(Result(key, derived_id(payload.TYPE, key, *id_parts), payload))


def _change(draft: Draft, agency: str) -> FundAccount:
    """The draft's own copy of an agency's fund (the state it was given is never changed)."""
    account = draft.state.funds[agency].model_copy(deep=True)
    draft.state.funds[agency] = account
    return account


def open_funds(draft: Draft, policy: FundPolicy, cause: EventRef, day: date) -> None:
    """Every fund in the reference data not open yet opens on `day` with its advance."""
    for agency, terms in sorted(policy.funds.items()):
        if agency in draft.state.funds:
            continue
        draft.state.funds[agency] = FundAccount(
            agency=agency, balance=terms.initial_advance, required_level=terms.required_level,
            accrued_through=day - timedelta(days=1), level_year=day.year)
        if terms.initial_advance > ZERO:
            draft.post([opening_entry(terms, cause, day)])
        _emit(draft, agency, RevolvingFundOpened(
            agency=agency, date=day, initial_advance=terms.initial_advance,
            required_level=terms.required_level, balance=terms.initial_advance,
            policy_version=policy.version))


def before_day(draft: Draft, policy: FundPolicy, cause: EventRef, day: date) -> None:
    """When `day` starts: funds open, interest accrues for every day through yesterday (the
    year's last day credits the year's interest), and a new year recalculates the level."""
    open_funds(draft, policy, cause, day)
    for agency in sorted(draft.state.funds):
        if not days_to_accrue(draft.state.funds[agency], day) and (
                draft.state.funds[agency].level_year >= day.year):
            continue
        account = _change(draft, agency)
        for accrual_day in days_to_accrue(account, day):
            interest = policy.daily_interest(account.balance)
            if interest > ZERO:
                draft.post([accrual_entry(agency, accrual_day, interest, cause)])
                account.accrued += interest
                _emit(draft, agency, RevolvingFundInterestAccrued(
                    agency=agency, date=accrual_day, balance=account.balance,
                    annual_rate=str(policy.annual_rate), day_count=policy.day_count,
                    interest=interest, accrued_this_year=account.accrued),
                    accrual_day.isoformat())
            account.accrued_through = accrual_day
            if is_last_day_of_year(accrual_day) and account.accrued > ZERO:
                draft.post([credit_entry(agency, accrual_day.year, account.accrued, cause)])
                account.balance += account.accrued
                _emit(draft, agency, RevolvingFundInterestCredited(
                    agency=agency, year=accrual_day.year, amount=account.accrued,
                    balance=account.balance), str(accrual_day.year))
                account.accrued = ZERO
        if account.level_year < day.year:
            _recalculate(draft, policy, account, day)


def _recalculate(draft: Draft, policy: FundPolicy, account: FundAccount, day: date) -> None:
    account.level_year = day.year
    computed = required_level(policy, account.payables)
    if computed is None:
        return
    level, average, cycles = computed
    previous, account.required_level = account.required_level, level
    _emit(draft, account.agency, RevolvingFundRequiredLevelSet(
        agency=account.agency, date=day, required_level=level, previous_level=previous,
        cycles=cycles, average_payable=average, months_covered=str(policy.months_covered)),
        day.isoformat())


def record_payable(draft: Draft, agency: str, cycle: str, payable: Decimal) -> None:
    """A statement's payable counts towards the agency's required level."""
    if agency not in draft.state.funds:
        return
    account = _change(draft, agency)
    account.payables = keep_recent({**account.payables, cycle: payable})


def draw(draft: Draft, cause: EventRef, day: date, instruction_id: str, cycle: str,
         payer: str, outstanding: Decimal) -> None:
    """An overdue payer's outstanding remittance is advanced from its fund, as far as the
    balance goes."""
    if payer not in draft.state.funds or outstanding <= ZERO:
        return
    amount = min(outstanding, max(draft.state.funds[payer].balance, ZERO))
    if amount <= ZERO:
        return
    account = _change(draft, payer)
    draft.post([draw_entry(payer, instruction_id, amount, cause, day)])
    account.balance -= amount
    account.drawn[instruction_id] = account.drawn.get(instruction_id, ZERO) + amount
    _emit(draft, payer, RevolvingFundDrawn(
        agency=payer, date=day, instruction_id=instruction_id, cycle=cycle, amount=amount,
        balance=account.balance), instruction_id)


def repay(draft: Draft, cause: EventRef, instruction_id: str, payer: str, amount: Decimal,
          paid_at: datetime) -> None:
    """A remittance against an instruction the fund advanced pays the fund back first."""
    drawn = draft.state.funds[payer].drawn.get(instruction_id) if (
        payer in draft.state.funds) else None
    if not drawn:
        return
    back = min(drawn, amount)
    account = _change(draft, payer)
    draft.post([repayment_entry(payer, instruction_id, back, cause, paid_at)])
    account.balance += back
    if back == drawn:
        del account.drawn[instruction_id]
    else:
        account.drawn[instruction_id] = drawn - back
    _emit(draft, payer, RevolvingFundRepaid(
        agency=payer, instruction_id=instruction_id, amount=back, paid_at=paid_at,
        balance=account.balance), cause.source, cause.id)


def rearm_warning(draft: Draft, policy: FundPolicy, agency: str) -> None:
    """A repayment that brings the balance above the threshold re-arms the warning at once,
    so a draw before the next day's check warns again."""
    account = draft.state.funds.get(agency)
    if account is None or not account.warned:
        return
    if account.balance > policy.threshold(account.required_level):
        _change(draft, agency).warned = False


def check_warnings(draft: Draft, policy: FundPolicy, day: date) -> None:
    """A balance at or below the threshold warns the agency and the province, once until
    it rises above the threshold again."""
    for agency in sorted(draft.state.funds):
        account = draft.state.funds[agency]
        threshold = policy.threshold(account.required_level)
        low = account.balance <= threshold
        if low == account.warned:
            continue
        account = _change(draft, agency)
        account.warned = low
        if not low:
            continue
        warning = RevolvingFundWarning(
            agency=agency, date=day, balance=account.balance,
            required_level=account.required_level, warning_share=str(policy.warning_share),
            threshold=threshold, shortfall=max(account.required_level - account.balance, ZERO))
        for key in (agency, HUB):
            _emit(draft, key, warning, agency, day.isoformat(), str(account.balance))


def on_top_up(state: ClearingState, topped_up: RevolvingFundToppedUp, cause: EventRef,
              policy: FundPolicy | None) -> Decision:
    """An agency's top-up (调增) is booked to its fund; a fund not opened yet, a top-up id
    given twice, or nothing paid is refused."""
    draft = Draft.of(state)
    agency = topped_up.agency
    problems = []
    day = business_date(topped_up.paid_at)
    if policy is not None and agency in policy.funds:
        open_funds(draft, FundPolicy(policy.version, policy.warning_share, policy.annual_rate,
                                     policy.day_count, policy.months_covered,
                                     {agency: policy.funds[agency]}), cause, day)
    if agency not in draft.state.funds:
        problems.append({"code": "no_revolving_fund",
                         "message": f"agency {agency} keeps no revolving fund with the "
                                    "province (reference/revolving-fund.toml)"})
    elif topped_up.top_up_id in draft.state.funds[agency].top_ups:
        problems.append({"code": "duplicate_top_up",
                         "message": f"top-up {topped_up.top_up_id} is already booked; give "
                                    "each top-up its own top_up_id"})
    elif topped_up.amount <= ZERO:
        problems.append({"code": "top_up_zero", "message": "a top-up must be more than 0.00"})
    if problems:
        rejected = Draft.of(state)
        rejected.reject(cause, topped_up, agency, problems)
        return rejected.decision()
    account = _change(draft, agency)
    draft.post([top_up_entry(agency, topped_up.top_up_id, topped_up.amount, cause,
                             topped_up.paid_at)])
    account.balance += topped_up.amount
    account.top_ups = [*account.top_ups, topped_up.top_up_id]
    _emit(draft, agency, RevolvingFundTopUpAccepted(
        agency=agency, top_up_id=topped_up.top_up_id, amount=topped_up.amount,
        paid_at=topped_up.paid_at, balance=account.balance), topped_up.top_up_id)
    if policy is not None:
        check_warnings(draft, policy, day)
    return draft.decision()
