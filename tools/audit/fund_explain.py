"""`clearinghouse explain fund AGENCY`: an agency's revolving fund down to its events.

Every movement of the fund is a journal entry in the ledger ``fund/<agency>`` with the
event that caused it (a calendar day, the agency's top-up, a remittance): the initial
advance, draws for overdue remittances and their repayment, top-ups, each day's interest
accrued and the year's interest credited. The command lists them in ledger order with the
balance after each, and sets the ledger's balance and accrued interest beside the clearing
state's; exit 1 when they differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from cli.presentation import console, table
from services.clearing import queries
from services.clearing.domain.fund import ledger_of
from services.clearing.domain.ledger import AccountKind, EntryKind, Posting
from shared.business_time import in_business_zone
from shared.money import ZERO


@dataclass
class FundExplanation:
    agency: str
    movements: list[dict[str, Any]] = field(default_factory=list)
    balance: Decimal = ZERO
    accrued: Decimal = ZERO
    #: What the clearing state says (None when the agency keeps no fund).
    state_balance: Decimal | None = None
    state_accrued: Decimal | None = None

    @property
    def adds_up(self) -> bool:
        return (self.state_balance is not None and self.balance == self.state_balance
                and self.accrued == self.state_accrued)


def _effect(entry: list[Posting], account: AccountKind) -> Decimal:
    return sum((p.signed for p in entry if p.account is account), ZERO)


async def explain_fund(conn: asyncpg.Connection, agency: str) -> FundExplanation:
    state = await queries.state(conn)
    account = state.funds.get(agency)
    if account is None:
        raise LookupError(f"agency {agency} keeps no revolving fund "
                          "(reference/revolving-fund.toml), or the calendar has not started")
    found = FundExplanation(agency, state_balance=account.balance,
                            state_accrued=account.accrued)
    entries: dict[str, list[Posting]] = {}
    for posting in await queries.postings(conn, ledger_of(agency)):
        entries.setdefault(posting.entry_id, []).append(posting)
    for entry in entries.values():
        first = entry[0]
        change = _effect(entry, AccountKind.FUND_BALANCE)
        accrued = _effect(entry, AccountKind.INTEREST_ACCRUED)
        found.balance += change
        found.accrued += accrued
        found.movements.append({
            "sequence": first.sequence, "kind": first.kind.value,
            "business_time": in_business_zone(first.business_time).isoformat(),
            "balance_change": str(change), "interest_accrued": str(accrued),
            "balance": str(found.balance), "accrued": str(found.accrued),
            "cause_source": first.cause.source, "cause_id": first.cause.id})
    return found


def to_json(e: FundExplanation) -> dict[str, Any]:
    return {"agency": e.agency, "ledger": ledger_of(e.agency), "movements": e.movements,
            "balance": str(e.balance), "accrued": str(e.accrued),
            "state": {"balance": str(e.state_balance), "accrued": str(e.state_accrued)},
            "adds_up": e.adds_up}


def print_fund(e: FundExplanation) -> None:
    out = console()
    interest_days = sum(1 for m in e.movements if m["kind"] == EntryKind.INTEREST_ACCRUAL)
    out.print(f"revolving fund of {e.agency} (ledger {ledger_of(e.agency)}): "
              f"{len(e.movements)} movement(s), {interest_days} day(s) of interest")
    out.print(table("Movements", ["seq", "kind", "business time", "balance change",
                                  "interest accrued", "balance", "accrued", "cause"],
                    [(m["sequence"], m["kind"], m["business_time"],
                      Decimal(m["balance_change"]), Decimal(m["interest_accrued"]),
                      Decimal(m["balance"]), Decimal(m["accrued"]),
                      f"{m['cause_source']} {m['cause_id']}") for m in e.movements],
                    numeric=("balance change", "interest accrued", "balance", "accrued")))
    verdict = "adds up" if e.adds_up else "DOES NOT ADD UP"
    out.print(f"balance {e.balance} (state {e.state_balance}), accrued interest {e.accrued} "
              f"(state {e.state_accrued}): {verdict}")
