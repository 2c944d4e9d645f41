"""`encode` writes what ``orjson.dumps(event.model_dump(mode="json", exclude_none=True))``
wrote before it serialised in one step, and envelope classes survive garbage collection."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from shared import topics
from shared.events import (
    _ENVELOPES,
    Rejection,
    decode,
    decoder,
    encode,
    envelope_type,
    make_event,
)
from shared.events.base import Reason
from shared.events.settlement import SettlementCompleted, SettlementRejected
from tests.unit.test_events import SUBMITTED

_TEXT = "".join(chr(c) for c in range(0x0, 0x250)) + "\u2028\u2029吉林😀\x7f"


def _old_encode(event: object) -> bytes:
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True))  # type: ignore[attr-defined]


def _completed() -> SettlementCompleted:
    submitted = decode(topics.SETTLEMENT_SUBMISSIONS, orjson.dumps(SUBMITTED)).data
    return SettlementCompleted(**(submitted.__dict__ | dict(
        care_agency="220100", tier=2, ratio=Decimal("0.65"), total=Decimal("1234.55"),
        self_pay_first=Decimal("0.01"), uncovered=Decimal("0"), eligible=Decimal("1234.54"),
        deductible=Decimal("-0.00"), fund_pay=Decimal("800.00"), account_pay=Decimal("10.00"),
        cash_pay=Decimal("424.55"), cleared_amount=Decimal("810.00"), filing_id=None,
        trip="other_province")))


def test_encode_writes_the_same_bytes_as_before() -> None:
    at = datetime(2026, 10, 3, 1, 2, 3, 450000, tzinfo=UTC)
    events = [
        decode(topics.SETTLEMENT_SUBMISSIONS, orjson.dumps(SUBMITTED | {"x-extra": _TEXT})),
        make_event(_completed(), id="c1", source="service/settlement", time=at, subject="P1",
                   correlationid="k", causationid="c0"),
        make_event(SettlementRejected(settlement_id="S1", hospital="H1", reasons=[
            Reason(code="x", message=_TEXT[i:i + 500])
            for i in range(0, len(_TEXT), 500)]), id="r1", source="s", time=at),
    ]
    for event in events:
        assert encode(event) == _old_encode(event)
        assert encode(decode(topics.SETTLEMENT_EVENTS if event.type != "settlement.submitted"
                             else topics.SETTLEMENT_SUBMISSIONS, encode(event))) == encode(event)


def test_money_is_written_with_two_decimals() -> None:
    data = orjson.loads(encode(make_event(_completed(), id="c1", source="s",
                                          time=datetime(2026, 1, 1, tzinfo=UTC))))["data"]
    assert (data["uncovered"], data["deductible"], data["ratio"]) == ("0.00", "-0.00", "0.65")
    assert _completed().model_dump()["total"] == "1234.55"


def test_envelope_classes_are_built_once() -> None:
    first = envelope_type(SettlementCompleted)
    gc.collect()
    assert envelope_type(SettlementCompleted) is first
    assert type(decode(topics.SETTLEMENT_SUBMISSIONS, orjson.dumps(SUBMITTED))) in set(
        _ENVELOPES.values())


def test_every_code_point_is_written_as_before() -> None:
    scalars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for start in range(0, len(scalars), 500):
        text = "".join(scalars[start:start + 500])
        event = make_event(SettlementRejected(settlement_id="S1", reasons=[
            Reason(code="x", message=text)]), id="i", source="s", time=at, subject=text)
        assert encode(event) == _old_encode(event), start


def test_the_clearing_view_reads_the_same_amounts_and_skips_only_the_items() -> None:
    from services.clearing.handlers import decode_input
    from shared.events.views import CompletedView

    at = datetime(2026, 10, 3, 1, 2, 3, tzinfo=UTC)
    raw = encode(make_event(_completed(), id="c1", source="service/settlement", time=at))
    full = decode(topics.SETTLEMENT_EVENTS, raw)
    view = decode_input(topics.SETTLEMENT_EVENTS, raw)
    assert type(view.data) is CompletedView and isinstance(view.data, SettlementCompleted)
    assert {k: v for k, v in view.data.__dict__.items() if k != "items"} == {
        k: v for k, v in full.data.__dict__.items() if k != "items"}
    assert view.data.items == orjson.loads(raw)["data"]["items"]  # kept as plain JSON
    assert encode(view) == raw
    # The amounts clearing uses are still checked as strictly as the contract says.
    bad = orjson.loads(raw)
    bad["data"]["fund_pay"] = 800.0
    with pytest.raises(Rejection) as refused:
        decode_input(topics.SETTLEMENT_EVENTS, orjson.dumps(bad))
    assert refused.value.code == "money_not_string"
    # Other topics and types are read exactly as `decode` reads them.
    submitted = orjson.dumps(SUBMITTED)
    assert (type(decode_input(topics.SETTLEMENT_SUBMISSIONS, submitted).data)
            is type(decode(topics.SETTLEMENT_SUBMISSIONS, submitted).data))


def test_a_view_must_be_a_subclass_of_the_contracts_payload() -> None:
    with pytest.raises(TypeError, match="not a view of SettlementCompleted"):
        decoder({(topics.SETTLEMENT_EVENTS, SettlementCompleted.TYPE): SettlementRejected})
