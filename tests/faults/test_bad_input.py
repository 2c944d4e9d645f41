"""4. Bad input. Each case is one record that must be answered with a ``<topic>.rejected``
record (its original bytes, a reason code in the headers) and, where the sender can be
identified, an error event addressed to that sender; and the consumer must keep going (a
valid record sent after all of them on the same partition is processed).

One installation takes every case (module fixture); each case is then checked by its own
test, so a failure names the case: ``test_rejected_record[money_as_number]``,
``test_error_event_to_the_sender[agency_confirms_another_agencys_statement]``.

Expected reason codes are those of docs/reason-codes.md, docs/settlement.md, docs/filing.md
and docs/clearing.md. Where the documents name none (amounts that do not add up, an agency
answering for another), the expected code is the one suggested in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
import orjson
import pytest

from shared import topics
from tests.faults.harness import (
    SERVICES,
    Installation,
    TopicReader,
    distinct_events,
    enrol_persons,
    log_step,
    produce,
    results_shortfall,
)

HOSPITAL = "H220102001"  # 长春, level 3; care agency 220100
OTHER_HOSPITAL = "H220104001"  # 长春, another hospital
KEY = "P-BAD-0001"  # every bad settlement record and the sentinel share a partition
FILING_KEY = "P-BAD-F01"
AGENCY_KEY = "220500"  # every bad clearing submission and the sentinel share a partition


def _envelope(type_: str | None, data: dict[str, Any], *, id: str, source: str,
              time: str = "2026-10-20T10:00:00+08:00", **extra: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"specversion": "1.0", "id": id, "source": source,
                                "time": time, "datacontenttype": "application/json",
                                "data": data, **extra}
    if type_ is not None:
        document["type"] = type_
    return document


def _submission(settlement_id: str, **changes: Any) -> dict[str, Any]:
    """A valid settlement of a 吉林 (220200) person at 吉林大学第二医院 (长春)."""
    data: dict[str, Any] = {
        "settlement_id": settlement_id, "hospital": HOSPITAL, "person_id": KEY,
        "insured_agency": "220200", "insurance_type": "employee", "visit_type": "inpatient",
        "admitted_on": "2026-10-15", "discharged_on": "2026-10-18",
        "settled_at": "2026-10-18T10:00:00+08:00", "emergency": False, "referral": False,
        "items": [{"code": "WARD", "name": "病房", "category": "A", "amount": "100.00"},
                  {"code": "EXAM", "name": "检查", "category": "A", "amount": "50.00"}],
    }
    data.update(changes)
    return data


def _settlement(name: str, *, source: str = f"hospital/{HOSPITAL}", type_: str | None =
                "settlement.submitted", mutate: Any = None, **changes: Any) -> bytes:
    data = _submission(f"BAD-{name}", **changes)
    if mutate is not None:
        mutate(data)
    return orjson.dumps(_envelope(type_, data, id=f"bad-{name}", source=source))


def _item_amount(amount: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        data["items"][0]["amount"] = amount
    return mutate


def _without(field_name: str) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        del data[field_name]
    return mutate


def _completed_not_adding_up() -> bytes:
    """A settlement.completed (the clearing service's input) whose parts do not add up:
    total 150.00 = 100.00 + 0.00 + 50.00 holds, but cleared_amount says 5000.00."""
    data = _submission("BAD-completed_not_adding_up", care_agency="220100", tier=3,
                       ratio="0.66", total="150.00", self_pay_first="0.00", uncovered="0.00",
                       eligible="150.00", deductible="0.00", fund_pay="100.00",
                       account_pay="0.00", cash_pay="50.00", cleared_amount="5000.00")
    return orjson.dumps(_envelope("settlement.completed", data, id="bad-completed",
                                  source="service/settlement"))


def _filing(name: str, **changes: Any) -> bytes:
    data: dict[str, Any] = {
        "filing_id": f"BADF-{name}", "person_id": FILING_KEY, "insured_agency": "220200",
        "insurance_type": "employee", "category": "relocated_retiree", "destination": "220100",
        "valid_from": "2026-10-01", "materials": ["credential", "relocation_proof"],
        "commitment": False, "channel": "online"}
    data.update(changes)
    return orjson.dumps(_envelope("filing.requested", data, id=f"badf-{name}",
                                  source="agency/220200"))


def _submission_to_clearing(name: str, type_: str, data: dict[str, Any], *,
                            source: str) -> bytes:
    return orjson.dumps(_envelope(type_, data, id=f"badc-{name}", source=source,
                                  time="2026-11-03T10:00:00+08:00"))


@dataclass(frozen=True)
class Case:
    name: str
    topic: str
    value: bytes
    #: Reason codes accepted in the .rejected record's header and in the error event.
    codes: tuple[str, ...]
    key: str = KEY
    #: The error event owed to the sender: (topic, type, fields it must carry); None when
    #: the sender cannot be identified.
    answer: tuple[str, str, dict[str, str]] | None = None
    note: str = ""
    #: Refused by a business rule (reference data, who may send what), not by the contract's
    #: form: today answered with the decision event only (see test_rule_refusal_…).
    rule: bool = False


def _settlement_answer(name: str, hospital: str = HOSPITAL) -> tuple[str, str, dict[str, str]]:
    return (topics.SETTLEMENT_EVENTS, "settlement.rejected",
            {"settlement_id": f"BAD-{name}", "hospital": hospital})


def _clearing_answer(agency: str) -> tuple[str, str, dict[str, str]]:
    return (topics.CLEARING_RESULTS, "clearing.submission_rejected", {"agency": agency})


SUBMISSIONS = topics.SETTLEMENT_SUBMISSIONS
TEN_MB = 10 * 1024 * 1024

CASES: list[Case] = [
    Case("not_json", SUBMISSIONS, b'{"specversion": "1.0", "type": "settlement.submitted", "da',
         ("not_json",)),
    Case("not_utf8", SUBMISSIONS, b'\xff\xfe{"type": "settlement.submitted"}\x80', ("not_utf8",)),
    Case("ten_megabytes", SUBMISSIONS, orjson.dumps(_envelope(
        "settlement.submitted", _submission("BAD-ten_megabytes"), id="bad-10mb",
        source=f"hospital/{HOSPITAL}", padding="x" * TEN_MB)), ("too_large",),
        note="refused before parsing: no error event (docs/reason-codes.md)"),
    Case("missing_type", SUBMISSIONS, _settlement("missing_type", type_=None), ("missing_type",),
         answer=_settlement_answer("missing_type")),
    Case("unknown_type", SUBMISSIONS, _settlement("unknown_type", type_="settlement.cancelled"),
         ("unknown_type",), answer=_settlement_answer("unknown_type")),
    Case("missing_field", SUBMISSIONS, _settlement("missing_field", mutate=_without("items")),
         ("missing_field",), answer=_settlement_answer("missing_field")),
    Case("money_as_number", SUBMISSIONS, _settlement("money_as_number",
                                                     mutate=_item_amount(100.5)),
         ("money_not_string",), answer=_settlement_answer("money_as_number")),
    Case("money_three_decimals", SUBMISSIONS, _settlement("money_three_decimals",
                                                          mutate=_item_amount("100.505")),
         ("money_format",), answer=_settlement_answer("money_three_decimals")),
    Case("money_negative", SUBMISSIONS, _settlement("money_negative",
                                                    mutate=_item_amount("-100.00")),
         ("money_negative",), answer=_settlement_answer("money_negative")),
    Case("money_absurd", SUBMISSIONS, _settlement("money_absurd",
                                                  mutate=_item_amount("1000000000000.00")),
         ("money_format",), answer=_settlement_answer("money_absurd")),
    Case("items_absurd_in_sum", SUBMISSIONS, _settlement("items_absurd_in_sum", items=[
        {"code": "WARD", "name": "病房", "category": "A", "amount": "999999999999.99"},
        {"code": "EXAM", "name": "检查", "category": "A", "amount": "999999999999.99"}]),
         ("money_format",), answer=_settlement_answer("items_absurd_in_sum"),
         note="each item is below the limit, the bill is not"),
    Case("items_do_not_add_up", SUBMISSIONS, _settlement("items_do_not_add_up", total="100.00"),
         ("amounts_do_not_add_up", "invalid_field"),
         answer=_settlement_answer("items_do_not_add_up"),
         note="the hospital's stated total 100.00 is not the items' 150.00"),
    Case("unknown_hospital", SUBMISSIONS, _settlement(
        "unknown_hospital", source="hospital/H229999001", hospital="H229999001"),
         ("unknown_hospital",), answer=_settlement_answer("unknown_hospital", "H229999001"),
         rule=True),
    Case("unknown_pool", SUBMISSIONS, _settlement("unknown_pool", insured_agency="220300"),
         ("unknown_insured_agency",), answer=_settlement_answer("unknown_pool"),
         note="220300 (四平市) is a real region, but no pool of the clearing house", rule=True),
    Case("unknown_region", SUBMISSIONS, _settlement("unknown_region", insured_agency="229999"),
         ("unknown_insured_agency", "invalid_field"), answer=_settlement_answer("unknown_region"),
         rule=True),
    Case("malformed_region", SUBMISSIONS, _settlement("malformed_region", insured_agency="99000"),
         ("invalid_field",), answer=_settlement_answer("malformed_region")),
    Case("date_that_does_not_exist", SUBMISSIONS, _settlement(
        "date_that_does_not_exist", admitted_on="2026-02-30"), ("invalid_date",),
         answer=_settlement_answer("date_that_does_not_exist")),
    Case("time_without_offset", SUBMISSIONS, _settlement(
        "time_without_offset", settled_at="2026-10-18T10:00:00"), ("time_without_offset",),
         answer=_settlement_answer("time_without_offset")),
    Case("hospital_submits_for_another", SUBMISSIONS, _settlement(
        "hospital_submits_for_another", source=f"hospital/{OTHER_HOSPITAL}"),
         ("source_mismatch",), answer=_settlement_answer("hospital_submits_for_another",
                                                         OTHER_HOSPITAL),
         note="the answer must reach the sender (hospital/H220104001), not the hospital it "
              "pretended to be", rule=True),
    Case("refund_time_without_offset", SUBMISSIONS, orjson.dumps(_envelope(
        "settlement.refund_requested",
        {"refund_id": "BADR-1", "settlement_id": "BAD-x", "hospital": HOSPITAL,
         "person_id": KEY, "reason": "x", "refunded_at": "2026-10-19T09:00:00"},
        id="bad-refund-offset", source=f"hospital/{HOSPITAL}")), ("time_without_offset",),
         answer=(topics.SETTLEMENT_EVENTS, "settlement.refund_rejected",
                 {"refund_id": "BADR-1", "hospital": HOSPITAL})),
    Case("completed_not_adding_up", topics.SETTLEMENT_EVENTS, _completed_not_adding_up(),
         ("amounts_do_not_add_up", "invalid_field"),
         note="cleared_amount 5000.00 is not fund_pay + account_pay = 100.00; the clearing "
              "service would book 5000.00"),
    Case("filing_date_that_does_not_exist", topics.FILING_COMMANDS, _filing(
        "date", valid_from="2026-13-01"), ("invalid_date",), key=FILING_KEY,
         answer=(topics.FILING_EVENTS, "filing.rejected", {"filing_id": "BADF-date"})),
    Case("filing_unknown_region", topics.FILING_COMMANDS, _filing(
        "region", destination="229999"), ("unknown_destination",), key=FILING_KEY,
         answer=(topics.FILING_EVENTS, "filing.rejected", {"filing_id": "BADF-region"}),
         rule=True),
    Case("filing_unknown_pool", topics.FILING_COMMANDS, _filing(
        "pool", insured_agency="220300"), ("unknown_insured_agency",), key=FILING_KEY,
         answer=(topics.FILING_EVENTS, "filing.rejected", {"filing_id": "BADF-pool"}),
         rule=True),
    Case("clearing_not_json", topics.CLEARING_SUBMISSIONS, b'{"type": "clearing.statement_c',
         ("not_json",), key=AGENCY_KEY, answer=_clearing_answer(AGENCY_KEY),
         note="the key names the agency"),
    Case("remittance_money_as_number", topics.CLEARING_SUBMISSIONS, _submission_to_clearing(
        "number", "clearing.remittance_reported",
        {"instruction_id": "NTI-2026-10-220281-hub", "amount": 3200, "agency": "220281",
         "paid_at": "2026-11-14T10:00:00+08:00"}, source="agency/220281"),
         ("money_not_string",), key=AGENCY_KEY, answer=_clearing_answer("220281")),
    Case("remittance_three_decimals", topics.CLEARING_SUBMISSIONS, _submission_to_clearing(
        "decimals", "clearing.remittance_reported",
        {"instruction_id": "NTI-2026-10-140100-hub", "amount": "10.005", "agency": "140100",
         "paid_at": "2026-11-14T10:00:00+08:00"}, source="agency/140100"),
         ("money_format",), key=AGENCY_KEY, answer=_clearing_answer("140100")),
    Case("remittance_negative", topics.CLEARING_SUBMISSIONS, _submission_to_clearing(
        "negative", "clearing.remittance_reported",
        {"instruction_id": "NTI-2026-10-320100-hub", "amount": "-5.00", "agency": "320100",
         "paid_at": "2026-11-14T10:00:00+08:00"}, source="agency/320100"),
         ("money_negative",), key=AGENCY_KEY, answer=_clearing_answer("320100")),
    Case("statement_cycle_does_not_exist", topics.CLEARING_SUBMISSIONS, _submission_to_clearing(
        "cycle", "clearing.statement_confirmed", {"agency": "140200", "cycle": "2026-13"},
        source="agency/140200"), ("invalid_field", "invalid_date"), key=AGENCY_KEY,
         answer=_clearing_answer("140200")),
    Case("agency_confirms_another_agencys_statement", topics.CLEARING_SUBMISSIONS,
         _submission_to_clearing(
             "impostor", "clearing.statement_confirmed", {"agency": "220100", "cycle": "2026-10"},
             source="agency/220200"), ("source_mismatch",), key=AGENCY_KEY,
         answer=_clearing_answer("220200"),
         note="sent by agency/220200 about 220100's statement: refused, answered to 220200, "
              "and 220100's statement stays unanswered", rule=True),
]
BY_NAME = {c.name: c for c in CASES}


@dataclass
class Outcome:
    """Everything the installation published after taking every case."""

    rejected: dict[str, list[Any]] = field(default_factory=dict)  # topic → records
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # topic → events
    answer_keys: dict[str, str] = field(default_factory=dict)  # event id → Kafka key
    statement_answers: dict[str, Any] = field(default_factory=dict)
    sentinels: dict[str, bool] = field(default_factory=dict)
    #: settlement ids of the clearing service's items
    cleared: list[str] = field(default_factory=list)
    cleared_amounts: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


async def _statement_answers(database_url: str) -> dict[str, Any]:
    """agency → the recorded answer to its 2026-10 statement (clearing_state document)."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "clearing"})
    try:
        text = await conn.fetchval("SELECT state FROM clearing_state")
    finally:
        await conn.close()
    state = orjson.loads(text) if text else {}
    statements = state.get("cycles", {}).get("2026-10", {}).get("statements", {})
    return {agency: record.get("answer") for agency, record in statements.items()}


@pytest.fixture(scope="module")
async def outcome(infra, module_database, tmp_path_factory) -> AsyncIterator[Outcome]:
    started = time.monotonic()
    database = module_database
    inst = Installation(infra.kafka_bootstrap, database, tmp_path_factory.mktemp("bad-input"))
    await inst.create_topics()
    inst.start(*SERVICES)
    readers: dict[str, TopicReader] = {}
    try:
        for topic in (topics.SETTLEMENT_EVENTS, topics.FILING_EVENTS, topics.CLEARING_RESULTS,
                      *(topics.rejected(t) for t in (SUBMISSIONS, topics.SETTLEMENT_EVENTS,
                                                     topics.FILING_COMMANDS,
                                                     topics.CLEARING_SUBMISSIONS))):
            readers[topic] = await inst.reader(topic).start()
        # The persons of these records, enrolled by 吉林市 (220200) first.
        await enrol_persons(inst, {p: ("220200", "employee") for p in ("P-OK-1", KEY,
                                                                      FILING_KEY)})
        # A month with one settlement between 220200 and 220100, so that statements exist.
        await produce(inst.bootstrap, inst.prefix, [(SUBMISSIONS, "P-OK-1", orjson.dumps(
            _envelope("settlement.submitted", {**_submission("OK-1"), "person_id": "P-OK-1"},
                      id="ok-1", source=f"hospital/{HOSPITAL}")))])
        await readers[topics.SETTLEMENT_EVENTS].until(
            lambda r: len(r) >= 1 or "OK-1", timeout=60, what="the month's settlement")
        await inst.advance(date(2026, 11, 2), start=date(2026, 10, 1))
        await readers[topics.CLEARING_RESULTS].until(
            results_shortfall({"clearing.statement_issued": 2}), timeout=90,
            what="2026-10 statements")

        await produce(inst.bootstrap, inst.prefix, [(c.topic, c.key, c.value) for c in CASES])
        sentinels = [
            (SUBMISSIONS, KEY, orjson.dumps(_envelope(
                "settlement.submitted", _submission("SENTINEL"), id="sentinel",
                source=f"hospital/{HOSPITAL}"))),
            (topics.FILING_COMMANDS, FILING_KEY, _filing("sentinel")),
            (topics.CLEARING_SUBMISSIONS, AGENCY_KEY, _submission_to_clearing(
                "sentinel", "clearing.statement_confirmed",
                {"agency": "220200", "cycle": "2026-10"}, source="agency/220200")),
        ]
        await produce(inst.bootstrap, inst.prefix, sentinels)

        def settled(records: list[Any]) -> bool | str:
            ids = {orjson.loads(r.value)["data"].get("settlement_id") for r in records}
            return "SENTINEL" in ids or "the sentinel settlement"

        def registered(records: list[Any]) -> bool | str:
            return any(orjson.loads(r.value)["type"] == "filing.registered" and
                       orjson.loads(r.value)["data"]["filing_id"] == "BADF-sentinel"
                       for r in records) or "the sentinel filing"

        result = Outcome()
        for topic, reader, condition in (
                (SUBMISSIONS, readers[topics.SETTLEMENT_EVENTS], settled),
                (topics.FILING_COMMANDS, readers[topics.FILING_EVENTS], registered)):
            try:
                await reader.until(condition, timeout=60, what=f"the sentinel on {topic}")
                result.sentinels[topic] = True
            except AssertionError as exc:
                log_step(str(exc))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answers = await _statement_answers(database)
            if answers.get("220200") == "confirmed":
                result.sentinels[topics.CLEARING_SUBMISSIONS] = True
                break
            await asyncio.sleep(0.5)
        # Whatever was decided before the sentinels is in the outboxes: wait until the relays
        # published it, then read every topic to its end.
        await inst.wait_published()
        for reader in readers.values():
            await reader.catch_up()
        for topic, reader in readers.items():
            if topic.endswith(".rejected"):
                result.rejected[topic.removeprefix(inst.prefix)] = list(reader.records)
            else:
                mine = [r for r in reader.records if orjson.loads(r.value)["id"] != "bad-completed"]
                events, _ = distinct_events(mine)
                result.answers[topic.removeprefix(inst.prefix)] = events
                for record in mine:
                    result.answer_keys[orjson.loads(record.value)["id"]] = (
                        record.key.decode() if record.key else "")
        conn = await inst.connect("clearing")
        try:
            rows = await conn.fetch("SELECT settlement_id, cleared_amount FROM items")
            result.cleared = sorted(r["settlement_id"] for r in rows)
            result.cleared_amounts = {r["settlement_id"]: str(r["cleared_amount"]) for r in rows}
        finally:
            await conn.close()
        result.statement_answers = await _statement_answers(database)
        result.seconds = time.monotonic() - started
        log_step(f"bad input: {len(CASES)} cases taken in {result.seconds:.1f} s; "
                 f"sentinels {result.sentinels}")
        yield result
    finally:
        for reader in readers.values():
            await reader.stop()
        inst.stop()


def _rejected_record(outcome: Outcome, case: Case) -> Any | None:
    for record in outcome.rejected.get(topics.rejected(case.topic), []):
        if record.value == case.value:
            return record
    return None


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", [c.name for c in CASES if not c.rule])
def test_rejected_record(outcome: Outcome, name: str) -> None:
    """The original bytes on <topic>.rejected with the reason code and where they were."""
    _check_rejected_record(outcome, BY_NAME[name])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", [c.name for c in CASES if c.rule])
def test_rule_refusal_also_kept_on_rejected_topic(outcome: Outcome, name: str) -> None:
    """The issue asks that *every* bad input, these included, leave its original bytes on
    <topic>.rejected. Today a refusal by a business rule (unknown reference codes, a sender
    acting for another) is answered with the decision event only (docs/reason-codes.md,
    "Decisions"); see docs/reliability.md for the choice to make."""
    _check_rejected_record(outcome, BY_NAME[name])


def _check_rejected_record(outcome: Outcome, case: Case) -> None:
    name = case.name
    record = _rejected_record(outcome, case)
    what = f"{name} ({case.note})" if case.note else name
    there = [dict(r.headers).get("reason-code", b"").decode()
             for r in outcome.rejected.get(topics.rejected(case.topic), [])]
    answers = [(e["type"], [r.get("code") for r in e["data"].get("reasons", [])])
               for e in _answers_for(outcome, case)]
    assert record is not None, (
        f"{what}: no record with the original bytes on {topics.rejected(case.topic)} "
        f"(it holds {there}); answered with {answers or 'nothing'}")
    headers = {k: v.decode() for k, v in record.headers}
    assert headers.get("reason-code") in case.codes, (
        f"{what}: reason-code {headers.get('reason-code')!r} ({headers.get('reason')}), "
        f"expected one of {case.codes}")
    assert headers.get("original-topic") == case.topic
    assert headers.get("reason"), f"{name}: the record carries no human-readable reason"


def _answers_for(outcome: Outcome, case: Case) -> list[dict[str, Any]]:
    if case.answer is None:
        return []
    topic, type_, fields = case.answer
    keys = ("settlement_id", "refund_id", "filing_id")
    ident = {k: v for k, v in fields.items() if k in keys}
    found = []
    for event in outcome.answers.get(topic, []):
        data = event["data"]
        if event["type"] != type_ and not ident:
            continue
        by_id = bool(ident) and all(data.get(k) == v for k, v in ident.items())
        by_agency = not ident and data.get("agency") == fields.get("agency") and any(
            r.get("code") in case.codes for r in data.get("reasons", []))
        if by_id or by_agency:
            found.append(event)
    return found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", [c.name for c in CASES if c.answer is not None])
def test_error_event_to_the_sender(outcome: Outcome, name: str) -> None:
    """The sender's own error event, with the same reason code, addressed to the sender."""
    case = BY_NAME[name]
    assert case.answer is not None
    topic, type_, fields = case.answer
    what = f"{name} ({case.note})" if case.note else name
    found = _answers_for(outcome, case)
    assert found, f"{what}: no {type_} on {topic} for {fields}"
    kinds = [(e["type"], [r.get("code") for r in e["data"].get("reasons", [])]) for e in found]
    assert [e for e in found if e["type"] == type_], f"{what}: expected {type_}, got {kinds}"
    event = next(e for e in found if e["type"] == type_)
    codes = [r.get("code") for r in event["data"].get("reasons", [])]
    assert set(codes) & set(case.codes), f"{what}: reasons {codes}, expected one of {case.codes}"
    addressed = {k: event["data"].get(k) for k in fields}
    assert addressed == fields, f"{what}: addressed to {addressed}, expected {fields}"
    if type_ == "clearing.submission_rejected":
        key = outcome.answer_keys.get(event["id"])
        assert key == fields["agency"], f"{what}: Kafka key {key!r}, expected {fields['agency']}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("topic", [SUBMISSIONS, topics.FILING_COMMANDS,
                                   topics.CLEARING_SUBMISSIONS])
def test_the_consumer_keeps_going(outcome: Outcome, topic: str) -> None:
    """A valid record sent after all the bad ones on the same partition takes effect."""
    assert outcome.sentinels.get(topic), f"{topic}: the valid record after the bad ones was " \
                                         f"never processed"


@pytest.mark.timeout(300)
def test_an_agency_cannot_confirm_another_agencys_statement(outcome: Outcome) -> None:
    assert outcome.statement_answers.get("220100") is None, (
        f"220100's statement of 2026-10 was answered "
        f"{outcome.statement_answers.get('220100')!r} by a submission from agency/220200")


@pytest.mark.timeout(300)
def test_nothing_from_bad_input_is_settled(outcome: Outcome) -> None:
    """No bad submission became a settlement: only OK-1 and the sentinel are completed."""
    completed = sorted(e["data"]["settlement_id"]
                       for e in outcome.answers.get(topics.SETTLEMENT_EVENTS, [])
                       if e["type"] == "settlement.completed")
    assert completed == ["OK-1", "SENTINEL"], f"settled: {completed}"


@pytest.mark.timeout(300)
def test_nothing_from_bad_input_is_cleared(outcome: Outcome) -> None:
    """No bad record became a clearing item (an obligation between agencies)."""
    assert outcome.cleared == ["OK-1", "SENTINEL"], (
        f"cleared (settlement_id: cleared_amount booked): {outcome.cleared_amounts}")
