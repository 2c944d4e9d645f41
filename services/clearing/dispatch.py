"""The clearing service's one dispatch: which domain decision an event calls for, with the
rows that decision reads looked up in the service's tables (`Lookups`).

The handler calls it with the PostgreSQL tables (`store.Tables`); the unit and property
tests with an in-memory book (tests/clearing_book.py). Whether the sender may send the
event at all is asked before (`submissions.refuse_other_sender`).
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from services.clearing.domain import calendar, fund, submissions
from services.clearing.domain.cycles import CycleTotals
from services.clearing.domain.decisions import (
    Decision,
    on_settlement_completed,
    on_settlement_refunded,
)
from services.clearing.domain.items import ClearingItem, settlement_key
from services.clearing.domain.ledger import EventRef
from services.clearing.domain.reports import ReportRecord
from services.clearing.domain.state import ClearingState
from shared.events.base import Payload
from shared.events.clearing import (
    DailyReportConfirmed,
    DailyReportDisputed,
    DayStarted,
    RemittanceReported,
    RevolvingFundToppedUp,
    StatementConfirmed,
    StatementDisputed,
)
from shared.events.settlement import SettlementCompleted, SettlementRefunded
from shared.messaging.sequencer import Watermarks


class Lookups(Protocol):
    """The rows of the clearing service's tables that decisions read."""

    async def item(self, item_id: str) -> ClearingItem | None:
        """An item by id (a re-settlement's original)."""
        ...

    async def refund_items(self, hospital: str, settlement_id: str) -> list[ClearingItem]:
        """The refund items of a settlement (a re-settlement's original)."""
        ...

    async def unreported_items(self, through: date, cut: Watermarks | None = None
                               ) -> list[ClearingItem]:
        """Items not reported yet with a business date up to `through`; with `cut` (a day's
        watermarks), only those whose record precedes it."""
        ...

    async def cycle_totals(self, cycle: str) -> CycleTotals:
        """`cycles.cycle_totals` of the items cleared in `cycle`."""
        ...

    async def report(self, agency: str, day: date) -> ReportRecord | None:
        """The daily report issued to `agency` for `day`, if any."""
        ...

    async def settlement_items(self, agency: str, settlement_ids: list[str]
                               ) -> list[ClearingItem]:
        """The settlement items with these ids that `agency` is a party to (a dispute's)."""
        ...

    def revolving_fund_policy(self) -> fund.FundPolicy | None:
        """The revolving funds' reference data; None when no agency keeps a fund."""
        ...


async def decide(state: ClearingState, payload: Payload, cause: EventRef,
                 tables: Lookups) -> Decision | None:
    """The decision on one event; None for events that owe no clearing (settlement.rejected,
    refund_rejected)."""
    match payload:
        case SettlementCompleted():
            original = (await tables.item(settlement_key(payload.hospital, payload.resettles))
                        if payload.resettles else None)
            refunds = (await tables.refund_items(original.hospital, original.settlement_id)
                       if original is not None else None)
            return on_settlement_completed(state, payload, cause, original, refunds)
        case SettlementRefunded():
            return on_settlement_refunded(state, payload, cause)
        case DayStarted():
            needs = calendar.needs(calendar.due_actions(state, payload.date))
            inputs = calendar.CalendarInputs(
                unreported=(await tables.unreported_items(needs.unreported_through,
                                                          payload.watermarks)
                            if needs.unreported_through else []),
                cycle_totals={c: await tables.cycle_totals(c) for c in needs.statement_cycles},
                fund_policy=tables.revolving_fund_policy())
            return calendar.on_day_started(state, payload, cause, inputs)
        case DailyReportConfirmed():
            return submissions.on_daily_report_confirmed(
                state, payload, cause, await tables.report(payload.agency, payload.date))
        case DailyReportDisputed():
            return submissions.on_daily_report_disputed(
                state, payload, cause, await tables.report(payload.agency, payload.date),
                await tables.settlement_items(payload.agency, payload.settlement_ids))
        case StatementConfirmed():
            return submissions.on_statement_confirmed(state, payload, cause)
        case StatementDisputed():
            return submissions.on_statement_disputed(
                state, payload, cause,
                await tables.settlement_items(payload.agency, payload.settlement_ids))
        case RemittanceReported():
            return submissions.on_remittance_reported(state, payload, cause,
                                                      tables.revolving_fund_policy())
        case RevolvingFundToppedUp():
            return fund.on_top_up(state, payload, cause, tables.revolving_fund_policy())
    return None
