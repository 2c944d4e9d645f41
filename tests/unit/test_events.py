"""The contract's envelope and payloads: strict parsing, reason codes, round trips."""

from __future__ import annotations

import copy
from decimal import Decimal

import orjson
import pytest

from shared import topics
from shared.events import PAYLOADS_BY_TOPIC, Rejection, decode, encode

SUBMITTED = {
    "specversion": "1.0", "id": "H220102001-000123", "source": "hospital/H220102001",
    "type": "settlement.submitted", "time": "2026-10-03T09:15:00+08:00",
    "subject": "S-H220102001-000123", "datacontenttype": "application/json",
    "data": {
        "settlement_id": "S-000123", "hospital": "H220102001", "person_id": "P1",
        "insured_agency": "220200", "insurance_type": "employee", "visit_type": "inpatient",
        "admitted_on": "2026-09-28", "discharged_on": "2026-10-03",
        "settled_at": "2026-10-03T09:15:00+08:00", "emergency": False, "referral": True,
        "items": [{"code": "X1", "name": "ward", "category": "A", "amount": "1234.50"},
                  {"code": "X2", "name": "drug", "category": "B", "amount": "0.05"}],
        "personal_account_request": "10.00",
    },
}


def _decode(document: dict) -> object:
    return decode(topics.SETTLEMENT_SUBMISSIONS, orjson.dumps(document))


def test_valid_submission_parses_money_as_decimal() -> None:
    event = _decode(SUBMITTED)
    assert event.data.items[0].amount == Decimal("1234.50")
    assert isinstance(event.data.personal_account_request, Decimal)
    assert event.time.utcoffset().total_seconds() == 8 * 3600


def test_round_trip_keeps_money_as_two_decimal_strings() -> None:
    raw = encode(_decode(SUBMITTED))
    again = orjson.loads(raw)
    assert again["data"]["items"][0]["amount"] == "1234.50"
    assert again["data"]["items"][1]["amount"] == "0.05"
    assert encode(decode(topics.SETTLEMENT_SUBMISSIONS, raw)) == raw


def _mutated(path: list[object], value: object) -> dict:
    document = copy.deepcopy(SUBMITTED)
    target: object = document
    for step in path[:-1]:
        target = target[step]  # type: ignore[index]
    if value is _DELETE:
        del target[path[-1]]  # type: ignore[index,attr-defined]
    else:
        target[path[-1]] = value  # type: ignore[index]
    return document


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "code"), [
    (["data", "items", 0, "amount"], 1234.5, "money_not_string"),
    (["data", "items", 0, "amount"], 1234, "money_not_string"),
    (["data", "items", 0, "amount"], "1234.505", "money_format"),
    (["data", "items", 0, "amount"], "1234.5", "money_format"),
    (["data", "items", 0, "amount"], "-1.00", "money_negative"),
    (["data", "items", 0, "amount"], "99999999999999.00", "money_format"),
    (["data", "personal_account_request"], 10, "money_not_string"),
    (["time"], "2026-10-03T09:15:00", "time_without_offset"),
    (["data", "settled_at"], "2026-10-03T09:15:00", "time_without_offset"),
    (["data", "admitted_on"], "2026-02-30", "invalid_date"),
    (["data", "admitted_on"], 20261003, "invalid_date"),
    (["data", "emergency"], "false", "invalid_field"),
    (["data", "hospital"], _DELETE, "missing_field"),
    (["data"], _DELETE, "missing_field"),
    (["type"], "settlement.exploded", "unknown_type"),
    (["type"], _DELETE, "missing_type"),
    (["specversion"], "0.3", "bad_envelope"),
    (["id"], "", "bad_envelope"),
    (["data", "items"], [], "invalid_field"),
    (["data", "insured_agency"], "22010", "invalid_field"),
])
def test_contract_breaches_are_rejected_with_a_reason_code(
    path: list[object], value: object, code: str
) -> None:
    with pytest.raises(Rejection) as caught:
        _decode(_mutated(path, value))
    assert caught.value.code == code, caught.value.message


@pytest.mark.parametrize(("raw", "code"), [
    (b"\xff\xfe\x00", "not_utf8"), (b"{", "not_json"), (b"[1, 2]", "not_an_object"),
    (b"x" * 1_000_001, "too_large"), (None, "empty_value"),
])
def test_unreadable_values_are_rejected(raw: bytes | None, code: str) -> None:
    with pytest.raises(Rejection) as caught:
        decode(topics.SETTLEMENT_SUBMISSIONS, raw)
    assert caught.value.code == code


def test_a_type_is_only_accepted_on_its_own_topic() -> None:
    with pytest.raises(Rejection) as caught:
        decode(topics.FILING_COMMANDS, orjson.dumps(SUBMITTED))
    assert caught.value.code == "unknown_type"


def test_every_contract_type_is_registered() -> None:
    registered = {kind for payloads in PAYLOADS_BY_TOPIC.values() for kind in payloads}
    contract = {
        "filing.requested", "filing.revoked", "filing.extended", "filing.materials_supplied",
        "benefit.status_changed", "filing.registered", "filing.rejected", "filing.expired",
        "filing.materials_overdue", "settlement.submitted", "settlement.refund_requested",
        "settlement.completed", "settlement.rejected", "settlement.refunded",
        "settlement.refund_rejected", "clearing.daily_report", "clearing.statement_issued",
        "clearing.net_transfer_instruction", "clearing.difference_notice",
        "clearing.remittance_overdue", "clearing.cycle_closed",
        "clearing.daily_report_confirmed", "clearing.daily_report_disputed",
        "clearing.statement_confirmed", "clearing.statement_disputed",
        "clearing.remittance_reported",
    }
    assert contract <= registered, contract - registered


def test_unknown_fields_from_senders_are_tolerated() -> None:
    document = _mutated(["data", "hospital_note"], "extra")
    document["ext_trace"] = "abc"
    event = _decode(document)
    assert event.data.hospital == "H220102001"
    assert event.model_extra["ext_trace"] == "abc"


def _items_sum(document: dict) -> Decimal:
    return sum((Decimal(i["amount"]) for i in document["data"]["items"]), Decimal(0))


def test_a_stated_total_must_be_the_sum_of_the_items() -> None:
    document = copy.deepcopy(SUBMITTED)
    document["data"]["total"] = f"{_items_sum(document):.2f}"
    assert _decode(document).data.total == _items_sum(document)

    document["data"]["total"] = f"{_items_sum(document) - Decimal('0.01'):.2f}"
    with pytest.raises(Rejection) as raised:
        _decode(document)
    assert raised.value.code == "amounts_do_not_add_up"
    assert f"{_items_sum(document):.2f}" in raised.value.message


def test_the_bill_events_keep_their_json_field_order() -> None:
    # The two events share their `Visit` through pydantic bases, whose order decides the order
    # of the fields in the JSON they are serialised to; these are the orders they always had.
    from shared.events.reimbursement import ReimbursementClaimed
    from shared.events.settlement import SettlementSubmitted

    visit = ["visit_type", "disease_code", "admitted_on", "discharged_on", "visit_date"]
    assert list(SettlementSubmitted.model_fields) == [
        "settlement_id", "hospital", "person_id", "insured_agency", "insurance_type", *visit,
        "settled_at", "emergency", "referral", "items", "personal_account_request",
        "resettles", "not_direct_personal_reason", "total"]
    assert list(ReimbursementClaimed.model_fields) == [
        "claim_id", "person_id", "insured_agency", "insurance_type", "hospital", *visit,
        "paid_at", "case", "at_fault", "emergency", "referral", "items",
        "failed_settlement_id"]
    data = _decode(SUBMITTED).data
    assert list(orjson.loads(data.model_dump_json())) == list(SettlementSubmitted.model_fields)


@pytest.mark.parametrize("text", ["", "true", "xxx", "0,7", "NaN", "Infinity", "-0.01", "1.01"])
def test_a_ratio_that_is_no_number_between_0_and_1_is_a_field_error(text: str) -> None:
    """Not `decimal.InvalidOperation` escaping the decoder (which no refusal catches)."""
    from pydantic import TypeAdapter, ValidationError

    from shared.events.settlement import Ratio

    with pytest.raises(ValidationError):
        TypeAdapter(Ratio).validate_python(text)
    assert TypeAdapter(Ratio).validate_python("0.70") == Decimal("0.70")
