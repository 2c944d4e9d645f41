"""The monthly cycle (月清算): carry-over of late items, statements, netting through the hub,
net-transfer instructions, distribution of money received, and difference notices."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from services.clearing.domain.chain import LedgerHead
from services.clearing.domain.items import ClearingItem
from services.clearing.domain.ledger import Position
from services.clearing.domain.periods import (
    DISTRIBUTION_DAY,
    REMITTANCE_DUE_DAY,
    milestone,
    next_cycle,
)
from services.clearing.domain.reports import checksum
from shared.events.clearing import (
    HUB,
    DifferenceNotice,
    NetTransferInstruction,
    StatementIssued,
    StatementLine,
)
from shared.money import ZERO, from_fen, to_fen


def clearing_cycle(origin_cycle: str, issued_through: str | None) -> str:
    """The cycle an item is cleared in: its own, unless that cycle's statements are already
    issued; then the next cycle still open, where it shows as an adjustment."""
    if issued_through is None or origin_cycle > issued_through:
        return origin_cycle
    return next_cycle(issued_through)


# ---- statements -----------------------------------------------------------------------------


class _Line:
    """A statement line while it is being added up."""

    def __init__(self) -> None:
        self.receivable, self.payable, self.adjustments = ZERO, ZERO, ZERO
        self.receivable_count = self.payable_count = self.adjustment_count = 0

    def add(self, item: ClearingItem, receiving: bool) -> None:
        if item.is_adjustment:
            self.adjustments += item.signed_amount if receiving else -item.signed_amount
            self.adjustment_count += 1
        elif receiving:
            self.receivable += item.signed_amount
            self.receivable_count += 1
        else:
            self.payable += item.signed_amount
            self.payable_count += 1


def positions(items: Iterable[ClearingItem]) -> dict[str, dict[str, Position]]:
    """Each agency's receivable from and payable to each counterpart over `items`, adjustments
    included: exactly the ledger balances the clearing moves into the hub."""
    receivables: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    payables: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for item in items:
        receivables[(item.care_agency, item.insured_agency)] += item.signed_amount
        payables[(item.insured_agency, item.care_agency)] += item.signed_amount
    result: dict[str, dict[str, Position]] = defaultdict(dict)
    for agency, counterpart in set(receivables) | set(payables):
        result[agency][counterpart] = Position(receivables[(agency, counterpart)],
                                               payables[(agency, counterpart)])
    return dict(result)


# ---- a cycle added up (what statements and the clearing into the hub need) ------------------


@dataclass(frozen=True)
class LineTotals:
    """One agency's items of a cycle with one counterpart, added up: the statement line
    (regular items each way, carried items as adjustments) and the ledger position (every
    item, carried ones included)."""

    receivable: Decimal = ZERO
    receivable_count: int = 0
    payable: Decimal = ZERO
    payable_count: int = 0
    adjustments: Decimal = ZERO
    adjustment_count: int = 0
    position: Position = field(default_factory=Position)


@dataclass(frozen=True)
class CycleTotals:
    """A cycle's items added up per agency and counterpart, and each agency's checksum over
    its items (`reports.checksum`): everything statements and positions are made of. The
    handler has PostgreSQL add them up (`store.cycle_totals`); `cycle_totals` is the same
    in Python."""

    lines: Mapping[str, Mapping[str, LineTotals]]
    checksums: Mapping[str, str]


def cycle_totals(cycle: str, items: Iterable[ClearingItem]) -> CycleTotals:
    """Add up the items cleared in `cycle` (others are ignored)."""
    own = [i for i in items if i.cycle == cycle]
    lines: dict[str, dict[str, _Line]] = defaultdict(lambda: defaultdict(_Line))
    owned: dict[str, list[ClearingItem]] = defaultdict(list)
    position = positions(own)
    for item in own:
        lines[item.care_agency][item.insured_agency].add(item, True)
        lines[item.insured_agency][item.care_agency].add(item, False)
        owned[item.care_agency].append(item)
        owned[item.insured_agency].append(item)
    return CycleTotals(
        lines={agency: {counterpart: LineTotals(
            receivable=line.receivable, receivable_count=line.receivable_count,
            payable=line.payable, payable_count=line.payable_count,
            adjustments=line.adjustments, adjustment_count=line.adjustment_count,
            position=position[agency][counterpart])
            for counterpart, line in by_counterpart.items()}
            for agency, by_counterpart in lines.items()},
        checksums={agency: checksum(own) for agency, own in owned.items()})


def statements_from_totals(
    cycle: str, totals: CycleTotals, disputes: Mapping[str, Iterable[str]],
    heads: Mapping[str, LedgerHead],
) -> list[StatementIssued]:
    """The statement of every agency with items cleared in the cycle, from its totals."""
    statements = []
    for agency in sorted(totals.lines):
        by_counterpart = totals.lines[agency]
        payloads = [_line_payload(c, by_counterpart[c]) for c in sorted(by_counterpart)]
        head = heads.get(agency)
        statements.append(StatementIssued(
            cycle=cycle, agency=agency, lines=payloads,
            receivable=sum((p.receivable for p in payloads), ZERO),
            payable=sum((p.payable for p in payloads), ZERO),
            adjustments=sum((p.adjustments for p in payloads), ZERO),
            net=sum((p.net for p in payloads), ZERO),
            checksum=totals.checksums[agency],
            disputed_settlement_ids=sorted(set(disputes.get(agency, ()))),
            chain_head=head.link if head else None,
            chain_sequence=head.sequence if head else None))
    return statements


def positions_from_totals(totals: CycleTotals) -> dict[str, dict[str, Position]]:
    return {agency: {c: line.position for c, line in by_counterpart.items()}
            for agency, by_counterpart in totals.lines.items()}


def _line_payload(counterpart: str, line: LineTotals) -> StatementLine:
    return StatementLine(
        counterpart=counterpart, receivable=line.receivable,
        receivable_count=line.receivable_count, payable=line.payable,
        payable_count=line.payable_count, adjustments=line.adjustments,
        adjustment_count=line.adjustment_count,
        net=line.receivable - line.payable + line.adjustments)


def check_nets_sum_to_zero(statements: Iterable[StatementIssued]) -> list[str]:
    """In every cycle the nets of all agencies add up to zero."""
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for statement in statements:
        totals[statement.cycle] += statement.net
    return [f"{cycle}: the agencies' nets add up to {total}, not zero"
            for cycle, total in sorted(totals.items()) if total != ZERO]


# ---- netting through the hub ----------------------------------------------------------------


def instruction_id(cycle: str, payer: str, payee: str) -> str:
    """Deterministic, readable: ``NTI-2026-10-220100-hub``."""
    return f"NTI-{cycle}-{payer}-{payee}"


def net_transfer_instructions(
    cycle: str, nets: Mapping[str, Decimal],
) -> list[NetTransferInstruction]:
    """Net payers pay the hub by the 15th; the hub pays net receivers by the 20th."""
    payers = [
        NetTransferInstruction(instruction_id=instruction_id(cycle, agency, HUB), cycle=cycle,
                               payer=agency, payee=HUB, amount=-net,
                               due_on=milestone(cycle, REMITTANCE_DUE_DAY))
        for agency, net in sorted(nets.items()) if net < ZERO
    ]
    receivers = [
        NetTransferInstruction(instruction_id=instruction_id(cycle, HUB, agency), cycle=cycle,
                               payer=HUB, payee=agency, amount=net,
                               due_on=milestone(cycle, DISTRIBUTION_DAY))
        for agency, net in sorted(nets.items()) if net > ZERO
    ]
    return payers + receivers


def check_hub_pays_out_what_it_takes_in(
    instructions: Iterable[NetTransferInstruction],
) -> list[str]:
    """Per cycle, instructions into the hub add up to instructions out of it."""
    into: dict[str, Decimal] = defaultdict(lambda: ZERO)
    out: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for instruction in instructions:
        if instruction.payee == HUB:
            into[instruction.cycle] += instruction.amount
        if instruction.payer == HUB:
            out[instruction.cycle] += instruction.amount
    return [f"{cycle}: the hub takes in {into[cycle]} but pays out {out[cycle]}"
            for cycle in sorted(set(into) | set(out)) if into[cycle] != out[cycle]]


def distribution_targets(received: Decimal, owed: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """How much each receiver should have had by now out of the money `received`: its share
    of it, rounded down to the fen, and everything once all payers have paid. Rounding down
    keeps the hub from paying out money it does not hold; the fen it holds back go out with
    the last payment."""
    total = sum(owed.values(), ZERO)
    if received >= total:
        return dict(owed)
    received_fen, total_fen = to_fen(received), to_fen(total)
    return {agency: from_fen(received_fen * to_fen(amount) // total_fen)
            for agency, amount in owed.items()}


# ---- difference notices ---------------------------------------------------------------------


def difference_notices(
    new: ClearingItem, original: ClearingItem, carried_into: str | None,
) -> list[DifferenceNotice]:
    """A refunded settlement settled again: the difference (new − original) of each share,
    told to both agencies; `carried_into` names the open cycle that absorbs it when the
    original's cycle was already cleared."""
    return [
        DifferenceNotice(
            agency=agency, original_settlement_id=original.settlement_id,
            settlement_id=new.settlement_id, hospital=new.hospital,
            original_cycle=original.origin_cycle,
            cycle=new.origin_cycle, insured_agency=new.insured_agency,
            care_agency=new.care_agency, fund_pay=new.fund_pay - original.fund_pay,
            account_pay=new.account_pay - original.account_pay,
            cash_pay=new.cash_pay - original.cash_pay,
            cleared_amount=new.cleared_amount - original.cleared_amount,
            carried_into=carried_into,
            other_payers_pay=(new.other_payers_pay - original.other_payers_pay
                              if new.other_payers_pay or original.other_payers_pay else None))
        for agency in (new.insured_agency, new.care_agency)
    ]
