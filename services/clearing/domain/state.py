"""The clearing aggregate: the calendar's progress, each cycle's state, open disputes and
the head of every ledger. Small (it grows by one cycle a month), stored as one JSON
document; items, reports and postings live in their own tables."""

from __future__ import annotations

from datetime import date
from typing import Literal
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from services.clearing.domain.chain import LedgerHead
from services.clearing.domain.ledger import Position
from services.clearing.domain.reports import Answer
from shared.events.clearing import HUB
from shared.money import ZERO


class CycleStatus(StrEnum):
    """open → statements_issued → instructions_issued → closed."""

    OPEN = "open"
    STATEMENTS_ISSUED = "statements_issued"
    INSTRUCTIONS_ISSUED = "instructions_issued"
    CLOSED = "closed"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StatementRecord(_Model):
    """What is kept of a statement sent: enough to check answers and to clear the cycle."""

    net: Decimal
    checksum: str
    disputed_settlement_ids: list[str] = Field(default_factory=list)
    #: Per counterpart: the ledger balances of the cycle, adjustments included; kept only
    #: until the clearing into the hub posts them.
    positions: dict[str, Position] = Field(default_factory=dict)
    answer: Answer | None = None


class InstructionState(_Model):
    """A net-transfer instruction and how much of it has been paid so far: received by the
    hub from a payer, or distributed by the hub to a receiver."""

    instruction_id: str
    payer: str
    payee: str
    amount: Decimal
    due_on: date
    paid: Decimal = ZERO
    overdue_reported: bool = False

    @property
    def outstanding(self) -> Decimal:
        return self.amount - self.paid

    @property
    def into_hub(self) -> bool:
        return self.payee == HUB


class CycleState(_Model):
    cycle: str
    status: CycleStatus = CycleStatus.OPEN
    statements: dict[str, StatementRecord] = Field(default_factory=dict)
    confirmation_deadline_passed: bool = False
    overdue_checked: bool = False
    instructions: dict[str, InstructionState] = Field(default_factory=dict)

    def payers(self) -> list[InstructionState]:
        return [i for _, i in sorted(self.instructions.items()) if i.into_hub]

    def receivers(self) -> list[InstructionState]:
        return [i for _, i in sorted(self.instructions.items()) if not i.into_hub]


class Dispute(_Model):
    """A settlement an agency disputed: `open` (listed in its statements) until the hospital
    corrects it by a refund, then `corrected` until the agency re-confirms."""

    settlement_id: str
    #: The daily report (date) or statement (cycle) it was raised against.
    report_date: date | None = None
    statement_cycle: str | None = None
    reason: str | None = None
    status: Literal["open", "corrected"] = "open"
    #: The settlement's hospital and other agency, where the clearing has the item.
    hospital: str | None = None
    counterpart: str | None = None


class ClearingState(_Model):
    #: The latest business day the calendar has seen.
    today: date | None = None
    #: The last date a daily report was produced for.
    reported_through: date | None = None
    #: The last cycle whose statements are issued: later items for it are carried forward.
    issued_through: str | None = None
    cycles: dict[str, CycleState] = Field(default_factory=dict)
    #: Open disputes: agency → settlement_id → dispute.
    disputes: dict[str, dict[str, Dispute]] = Field(default_factory=dict)
    #: agency (or the hub) → head of its ledger's hash chain.
    ledger_heads: dict[str, LedgerHead] = Field(default_factory=dict)

    def is_issued(self, cycle: str) -> bool:
        """Whether `cycle`'s statements are out, so nothing more can be added to it."""
        return self.issued_through is not None and cycle <= self.issued_through

    def cycle_of_instruction(self, instruction_id: str) -> str | None:
        """The cycle that issued an instruction, or None when none did."""
        for cycle, cycle_state in self.cycles.items():
            if instruction_id in cycle_state.instructions:
                return cycle
        return None

    def open_disputes(self) -> dict[str, list[str]]:
        """agency → the settlements it disputes that no correction has answered yet."""
        listed = {agency: sorted(sid for sid, dispute in d.items() if dispute.status == "open")
                  for agency, d in self.disputes.items()}
        return {agency: sids for agency, sids in listed.items() if sids}

    def resolve_disputes(self, agency: str | None, settlement_ids: set[str]) -> None:
        """Drop the disputes of `agency` (of every agency when None) on these settlements."""
        for disputing, disputes in self.disputes.items():
            if agency is None or disputing == agency:
                for settlement_id in settlement_ids & set(disputes):
                    del disputes[settlement_id]

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> ClearingState:
        return cls.model_validate_json(text)
