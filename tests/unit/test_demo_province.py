"""The demo's generated province: seeded and repeatable, every case present, every event
valid on its topic, refunds and re-settlements in a possible order."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import orjson
import pytest

from shared import topics
from shared.business_time import SHANGHAI
from shared.events import decode
from shared.reference import load_reference
from tools.demo.province import Province, generate


@pytest.fixture(scope="module")
def province() -> Province:
    return generate(load_reference(), seed=7, persons=300, settlements=800)


def _data(message: Any) -> dict[str, Any]:
    return orjson.loads(message.value)["data"]


def _all(province: Province) -> list[Any]:
    return [*province.filing_commands, *province.submissions]


def test_the_same_seed_gives_the_same_events_byte_for_byte(province: Province) -> None:
    again = generate(load_reference(), seed=7, persons=300, settlements=800)
    assert [(m.topic, m.key, m.value) for m in _all(again)] == \
        [(m.topic, m.key, m.value) for m in _all(province)]
    other = generate(load_reference(), seed=8, persons=300, settlements=800)
    assert [m.value for m in _all(other)] != [m.value for m in _all(province)]


def test_every_event_parses_on_its_topic(province: Province) -> None:
    for message in _all(province):
        event = decode(message.topic, message.value)
        assert event.type == message.type
        assert event.source == message.source and event.id == message.id
    assert {m.topic for m in province.filing_commands} == {topics.FILING_COMMANDS}
    assert {m.topic for m in province.submissions} == {topics.SETTLEMENT_SUBMISSIONS}


def test_ids_are_unique_per_source_keys_are_persons(province: Province) -> None:
    messages = _all(province)
    assert len({(m.source, m.id) for m in messages}) == len(messages)
    persons = {p.person_id for p in province.persons}
    assert {m.key for m in messages} <= persons
    for message in messages:
        kind, _, code = message.source.partition("/")
        assert kind in ("agency", "hospital") and message.id.startswith(code + "-")
        assert message.key == _data(message)["person_id"]
    for message in province.submissions:
        assert message.source == f"hospital/{_data(message)['hospital']}"
    for message in province.filing_commands:
        data = _data(message)
        agency = "hospital" if data.get("channel") == "hospital" else "agency"
        assert message.source.startswith(agency + "/")


def test_every_category_visit_and_special_case_is_present(province: Province) -> None:
    filings = [_data(m) for m in province.filing_commands if m.type == "filing.requested"]
    assert {f["category"] for f in filings} == {
        "relocated_retiree", "long_term_resident", "resident_worker", "childbirth",
        "referral", "emergency", "temporary_other"}
    assert {f.get("emergency_visit") for f in filings if f["category"] == "emergency"} == {
        "inpatient", "outpatient"}
    assert any(f["commitment"] for f in filings)
    assert any(f["channel"] == "hospital" for f in filings)
    for f in filings:
        assert "credential" in f["materials"]
        if f["category"] in ("emergency", "temporary_other"):
            assert f["materials"] == ["credential"]
        assert f["destination"] != f["insured_agency"]
    suspensions = [_data(m) for m in province.filing_commands
                   if m.type == "benefit.status_changed"]
    assert suspensions and {s["status"] for s in suspensions} == {"suspended"}
    outline = province.outline()
    assert outline["unfiled_persons"] > 0 and outline["filings_meant_to_be_refused"] > 0
    assert {p.insurance_type for p in province.persons} == {"employee", "resident"}
    assert len({p.insured_agency for p in province.persons}) == len(load_reference().agencies)
    unfiled = {p.person_id for p in province.persons if p.category is None}
    settled = [_data(m) for m in province.submissions if m.type == "settlement.submitted"]
    assert any(s["person_id"] in unfiled for s in settled)
    assert {s["visit_type"] for s in settled} == {"inpatient", "outpatient", "pharmacy",
                                                   "chronic_outpatient"}


def test_settlements_are_realistic(province: Province) -> None:
    reference = load_reference()
    settled = [_data(m) for m in province.submissions if m.type == "settlement.submitted"]
    assert sum("resettles" not in s for s in settled) == 800
    for s in settled:
        assert 1 <= len(s["items"]) <= 20
        assert {i["category"] for i in s["items"]} <= {"A", "B", "C"}
        assert all(i["amount"].count(".") == 1 and len(i["amount"].split(".")[1]) == 2
                   for i in s["items"])
        if s["visit_type"] == "inpatient":
            assert s["admitted_on"] <= s["discharged_on"] <= s["settled_at"][:10]
            assert "visit_date" not in s
        else:
            assert s["visit_date"] <= s["settled_at"][:10] and "admitted_on" not in s
        hospital = reference.hospital(s["hospital"])
        assert hospital is not None
        care = reference.pool_covering(hospital.county)
        assert care is not None and care.code != s["insured_agency"]
        assert (hospital.kind == "pharmacy") == (s["visit_type"] == "pharmacy")
        if s["insurance_type"] == "resident":
            assert "personal_account_request" not in s
    months = Counter(s["settled_at"][:7] for s in settled if "resettles" not in s)
    assert set(months) == {"2026-10"}


def test_submissions_are_in_time_order(province: Province) -> None:
    times = [m.time for m in province.submissions]
    assert times == sorted(times)


def test_refunds_follow_earlier_settlements_of_the_same_person_and_hospital(
        province: Province) -> None:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    latest: dict[str, str] = {}
    refunds = not_latest = across = 0
    for message in province.submissions:
        data = _data(message)
        if message.type == "settlement.submitted":
            seen[(data["hospital"], data["settlement_id"])] = data
            latest[data["person_id"]] = data["settlement_id"]
            continue
        refunds += 1
        original = seen[(data["hospital"], data["settlement_id"])]
        assert original["person_id"] == data["person_id"]
        assert original["settled_at"] < data["refunded_at"]
        not_latest += latest[data["person_id"]] != data["settlement_id"]
        across += data["refunded_at"][:7] == "2026-11"
    assert 800 * 0.015 <= refunds <= 800 * 0.025
    assert not_latest > 0 and across > 0
    assert set(province.refund_kinds) == {"in_month", "not_latest", "month_boundary",
                                          "after_statements"}


def test_resettlements_follow_their_refunds(province: Province) -> None:
    refunded: dict[tuple[str, str], str] = {}
    resettled = []
    for message in province.submissions:
        data = _data(message)
        if message.type == "settlement.refund_requested":
            refunded[(data["hospital"], data["settlement_id"])] = data["refunded_at"]
        elif "resettles" in data:
            key = (data["hospital"], data["resettles"])
            assert key in refunded, f"{data['settlement_id']} re-settles before the refund"
            assert refunded[key] < data["settled_at"]
            resettled.append(data)
    assert 800 * 0.005 <= len(resettled) <= 800 * 0.015
    assert len({(s["hospital"], s["resettles"]) for s in resettled}) == len(resettled)
    # one after the month's statements (the 2nd): its difference is carried into November
    assert any(date.fromisoformat(s["settled_at"][:10]) > date(2026, 11, 2) for s in resettled)
    for s in resettled:
        assert s["settled_at"] > "2026-10"
        assert s["settlement_id"] != s["resettles"]


def test_times_are_shanghai_and_sizes_are_options() -> None:
    small = generate(load_reference(), seed=1, persons=20, settlements=30)
    assert sum(m.type == "settlement.submitted" and b'"resettles"' not in m.value
               for m in small.submissions) == 30
    assert len(small.persons) == 20
    assert all(m.time.utcoffset() == SHANGHAI.utcoffset(None) for m in _all(small))
    with pytest.raises(ValueError):
        generate(load_reference(), persons=0, settlements=10)
