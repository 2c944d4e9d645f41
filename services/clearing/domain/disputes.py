"""The daily reconciliation's dispute loop (日对账 问题数据): dispute → correction →
re-confirmation, each step a clearing result to both agencies of the settlement.

1. An agency disputes settlements of a daily report or a statement: the dispute is `open`
   and `clearing.dispute_opened` goes to it and to the settlement's other agency (the
   care-place agency has its hospital correct the settlement). Open disputes are listed in
   the agency's statements.
2. The hospital refunds the settlement (and settles it again): the dispute is `corrected`,
   no longer listed, and `clearing.dispute_corrected` goes to both.
3. The agency re-confirms: it confirms the daily report that carries the correction (the
   refund's item), or the report or statement the dispute was raised against; the dispute
   is closed with `clearing.dispute_resolved`: `reconfirmed` after a correction,
   `withdrawn` when the agency confirmed without one. Disputing the correction again opens
   a new dispute.

Disputes never hold a cycle back: corrections are refunds and re-settlements, cleared like
any other. Pure: the handler passes in the settlement items a dispute names.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from services.clearing.domain.items import ClearingItem, ItemKind
from services.clearing.domain.state import Dispute
from shared.events.base import Payload
from shared.events.clearing import DisputeCorrected, DisputeOpened, DisputeResolved
from shared.events.settlement import SettlementRefunded


def _addressees(agency: str, counterpart: str | None) -> list[str]:
    return [agency] + ([counterpart] if counterpart and counterpart != agency else [])


def _parties(agency: str, settlement_id: str, items: Iterable[ClearingItem]
             ) -> tuple[str | None, str | None]:
    """The hospital and the other agency of the settlement `agency` disputes, when the
    clearing has exactly one such settlement (ids are unique per hospital only)."""
    found = {(i.hospital, i.insured_agency if i.care_agency == agency else i.care_agency)
             for i in items
             if i.kind is ItemKind.SETTLEMENT and i.settlement_id == settlement_id
             and agency in (i.care_agency, i.insured_agency)}
    if len(found) != 1:
        return None, None
    return next(iter(found))


def open_disputes(disputes: dict[str, Dispute], agency: str, settlement_ids: Iterable[str],
                  items: Iterable[ClearingItem], *, reason: str | None,
                  report_date: date | None = None, statement_cycle: str | None = None,
                  ) -> list[Payload]:
    """Record `agency`'s disputes in `disputes` (its own, changed in place) and return the
    notices of them."""
    items = list(items)
    notices: list[Payload] = []
    for settlement_id in settlement_ids:
        hospital, counterpart = _parties(agency, settlement_id, items)
        disputes[settlement_id] = Dispute(
            settlement_id=settlement_id, report_date=report_date,
            statement_cycle=statement_cycle, reason=reason, hospital=hospital,
            counterpart=counterpart)
        notices += [DisputeOpened(agency=addressee, disputed_by=agency,
                                  settlement_id=settlement_id, hospital=hospital,
                                  counterpart=counterpart, report_date=report_date,
                                  statement_cycle=statement_cycle, reason=reason)
                    for addressee in _addressees(agency, counterpart)]
    return notices


def correct_disputes(all_disputes: dict[str, dict[str, Dispute]],
                     refunded: SettlementRefunded) -> list[Payload]:
    """A refund corrects the open disputes of its settlement (of the same hospital, where the
    dispute knows it): changed in place in `all_disputes`, whose agencies' dicts that name
    the settlement must be the caller's own copies. Returns the notices."""
    notices: list[Payload] = []
    settlement_id = refunded.settlement_id
    for agency, disputes in sorted(all_disputes.items()):
        dispute = disputes.get(settlement_id)
        if dispute is None or dispute.status != "open":
            continue
        if dispute.hospital not in (None, refunded.hospital):
            continue
        if agency not in (refunded.insured_agency, refunded.care_agency):
            continue
        counterpart = (refunded.care_agency if agency == refunded.insured_agency
                       else refunded.insured_agency)
        disputes[settlement_id] = dispute.model_copy(update={
            "status": "corrected", "hospital": refunded.hospital, "counterpart": counterpart})
        notices += [DisputeCorrected(agency=addressee, disputed_by=agency,
                                     settlement_id=settlement_id, hospital=refunded.hospital,
                                     refund_id=refunded.refund_id, counterpart=counterpart)
                    for addressee in _addressees(agency, counterpart)]
    return notices


def resolve_disputes(disputes: dict[str, Dispute], agency: str, settlement_ids: Iterable[str],
                     *, report_date: date | None = None, statement_cycle: str | None = None,
                     ) -> list[Payload]:
    """Close `agency`'s disputes on these settlements (removed from `disputes`, its own,
    changed in place), confirmed by the report of `report_date` or the statement of
    `statement_cycle`. Returns the notices."""
    notices: list[Payload] = []
    for settlement_id in sorted(set(settlement_ids) & set(disputes)):
        dispute = disputes.pop(settlement_id)
        outcome = "reconfirmed" if dispute.status == "corrected" else "withdrawn"
        notices += [DisputeResolved(agency=addressee, disputed_by=agency,
                                    settlement_id=settlement_id, outcome=outcome,
                                    confirmed_report_date=report_date,
                                    confirmed_statement_cycle=statement_cycle,
                                    hospital=dispute.hospital, counterpart=dispute.counterpart)
                    for addressee in _addressees(agency, dispute.counterpart)]
    return notices


def settled_by_report(disputes: dict[str, Dispute], day: date,
                      report_settlement_ids: Iterable[str]) -> set[str]:
    """The disputes a confirmation of the report of `day` closes: those raised against it,
    and the corrected ones whose correction it carries."""
    carried = set(report_settlement_ids)
    return {sid for sid, d in disputes.items()
            if d.report_date == day or (d.status == "corrected" and sid in carried)}


def settled_by_statement(disputes: dict[str, Dispute], cycle: str,
                         listed: Iterable[str]) -> set[str]:
    """The disputes a confirmation of the statement of `cycle` closes: those it listed and
    those raised against it (`clearing.statement_disputed`, after it was issued)."""
    return (set(listed) & set(disputes)) | {
        sid for sid, d in disputes.items() if d.statement_cycle == cycle}
