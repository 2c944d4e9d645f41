"""The one builder of the submissions' data (shared/inbound.py): the contract's fields in
its order, optional ones left out, and what every workload sends validates as the contract."""

from __future__ import annotations

import orjson

from shared import inbound
from shared.events.settlement import RefundRequested, SettlementSubmitted


def test_settlement_submitted_in_the_contract_order_without_nulls() -> None:
    data = inbound.settlement_submitted(
        settlement_id="S1", hospital="H220202001", person_id="P1", insured_agency="220100",
        insurance_type="employee", visit_type="inpatient", admitted_on="2026-10-01",
        discharged_on="2026-10-05", settled_at="2026-10-05T10:00:00+08:00",
        items=[{"code": "WARD", "name": "病房", "category": "A", "amount": "100.00"}],
        resettles="S0")
    assert list(data) == ["settlement_id", "hospital", "person_id", "insured_agency",
                          "insurance_type", "visit_type", "admitted_on", "discharged_on",
                          "settled_at", "emergency", "referral", "items", "resettles"]
    parsed = SettlementSubmitted.model_validate_json(orjson.dumps(data))
    assert (parsed.resettles, parsed.personal_account_request) == ("S0", None)


def test_refund_requested_validates() -> None:
    data = inbound.refund_requested(refund_id="R1", settlement_id="S1", hospital="H1",
                                    person_id="P1", reason="x",
                                    refunded_at="2026-10-06T09:00:00+08:00")
    assert RefundRequested.model_validate_json(orjson.dumps(data)).refund_id == "R1"
