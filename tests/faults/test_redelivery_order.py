"""3. Redelivery and order: every message published twice (and again later, and at every hop:
submissions, filing events, settlement events, calendar days), persons interleaved in
different random orders, refunds before their settlement, re-settlements before their
refund; and events for a cycle whose statements, instructions and money are already out,
which must be carried visibly into the next cycle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
import pytest

from shared import topics
from tests.faults.harness import (
    SERVICES,
    Installation,
    Timings,
    TopicReader,
    distinct_events,
    enrol_persons,
    env_int,
    fail_on,
    produce,
    results_by_type,
    results_shortfall,
    run_and_check,
)
from tests.faults.workload import ROUTES, Refund, Settlement, envelope, generate

SETTLEMENTS = env_int("CLEARINGHOUSE_FAULT_ORDER_SETTLEMENTS", 2_000)


async def _republish(inst: Installation, topic: str, reader: TopicReader | None = None) -> int:
    """Publish every record of `topic` once more, bytes and key unchanged (what a relay does
    after a crash between publishing and forgetting)."""
    own = reader is None
    if reader is None:
        reader = await inst.reader(topic).start()
        await reader.poll()
        await reader.poll()
    try:
        records = list(reader.records)
        await produce(inst.bootstrap, inst.prefix, [
            (topic, r.key.decode() if r.key else "", r.value) for r in records])
        return len(records)
    finally:
        if own:
            await reader.stop()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("interleaving", [1, 2])
async def test_every_message_twice_in_any_interleaving_and_out_of_order(
        infra, fresh_database, tmp_path, interleaving: int) -> None:
    work = generate(SETTLEMENTS, seed=31, refund_first_share=0.3, resettle_first_share=0.4,
                    filing_share=1.0)
    messages = work.interleaved(interleaving)
    inst = Installation(infra.kafka_bootstrap, fresh_database, tmp_path)
    timings = Timings()
    await inst.create_topics()
    inst.start(*SERVICES)

    async def send() -> None:
        await produce(inst.bootstrap, inst.prefix, messages, twice=True)

    async def again(answers: TopicReader) -> None:
        # Late copies of everything, at every hop, before the calendar cuts the month.
        await produce(inst.bootstrap, inst.prefix, work.interleaved(interleaving + 100))
        n = await _republish(inst, topics.SETTLEMENT_EVENTS, answers)
        m = await _republish(inst, topics.FILING_EVENTS)
        inst.note(f"published again: every submission, {n} settlement events, "
                  f"{m} filing events")

    async def days_again(day: str) -> None:
        if day == "2026-11-02":
            n = await _republish(inst, topics.CLEARING_SCHEDULE)
            inst.note(f"published again: {n} calendar days")

    try:
        await run_and_check(inst, work, timings=timings, waves=1, seconds=0, send=send,
                            after_answers=again, after_day=days_again,
                            answer_timeout=180, results_timeout=180)
        assert inst.exited() == {}, f"services ended on their own: {inst.exited()}"
    finally:
        inst.stop()


# ---- a cycle already cleared ------------------------------------------------------------------
#
# Worked by hand (reference/settlement-policies, employee inpatient level 3, no filing, the
# Jilin 2022 table: other_city_district, unfiled → tier 3, −0.20):
#   A = 220100 (长春): deductible 900.00, ratio 0.85 − 0.20 = 0.65, treated in 吉林 (care B)
#   B = 220200 (吉林): deductible 800.00, ratio 0.86 − 0.20 = 0.66, treated in 长春 (care A)
#
# October, on time:   S1 A@B 10900.00 → fund (10900 − 900) × 0.65 = 6500.00, cash 4400.00
#                     S2 B@A  5800.00 → fund (5800 − 800) × 0.66 = 3300.00
#   statements 2026-10: A net 3300 − 6500 = −3200.00, B +3200.00; A pays the hub 3200.00,
#   the hub pays B on the 20th, 2026-10 closes.
# Then, late (sent after 2026-10 closed):
#   S3 A@B settled 30 Oct, 2900.00 → fund (2900 − 900) × 0.65 = 1300.00: carried into 2026-11
#   R1 refund of S1 on 5 Nov: −6500.00, its cycle 2026-10 is cleared: carried into 2026-11
#   S1R re-settles S1 on 5 Nov, 8900.00 → fund (8900 − 900) × 0.65 = 5200.00, cash 3700.00
#       difference notice to A and B: fund −1300.00, account 0.00, cash −700.00,
#       cleared −1300.00, original_cycle 2026-10, cycle 2026-11, carried_into 2026-11
#   S4 B@A settled 8 Nov, 1800.00 → fund (1800 − 800) × 0.66 = 660.00
#   statements 2026-11:
#     A with B: receivable 660.00 (1), payable 5200.00 (1),
#               adjustments +6500.00 − 1300.00 = +5200.00 (2), net 660.00
#     B with A: receivable 5200.00 (1), payable 660.00 (1), adjustments −5200.00 (2),
#               net −660.00
#   instructions 2026-11: B pays the hub 660.00 by 15 Dec, the hub pays A 660.00 by 20 Dec.

A, B = "220100", "220200"
A_AT_B, B_AT_A = ROUTES[0], ROUTES[1]


def _stay(sid: str, person: str, route: Any, admitted: date, discharged: date, settled: str,
          amount: str, resettles: str | None = None) -> Settlement:
    return Settlement(sid, person, route, "employee", admitted, discharged, settled,
                      Decimal(amount), None, resettles)


S1 = _stay("LS1", "LPA1", A_AT_B, date(2026, 10, 1), date(2026, 10, 3),
           "2026-10-03T16:00:00+08:00", "10900.00")
S2 = _stay("LS2", "LPB1", B_AT_A, date(2026, 10, 5), date(2026, 10, 8),
           "2026-10-08T10:00:00+08:00", "5800.00")
S3 = _stay("LS3", "LPA2", A_AT_B, date(2026, 10, 28), date(2026, 10, 30),
           "2026-10-30T15:00:00+08:00", "2900.00")
R1 = Refund("LR1", S1, "2026-11-05T09:00:00+08:00")
S1R = _stay("LS1R", "LPA1", A_AT_B, date(2026, 10, 1), date(2026, 10, 3),
            "2026-11-05T11:00:00+08:00", "8900.00", resettles="LS1")
S4 = _stay("LS4", "LPB2", B_AT_A, date(2026, 11, 6), date(2026, 11, 8),
           "2026-11-08T10:00:00+08:00", "1800.00")


def _submission(s: Settlement) -> tuple[str, str, bytes]:
    return ("settlement.submissions", s.person, s.message())


def _refund(r: Refund) -> tuple[str, str, bytes]:
    return ("settlement.submissions", r.original.person, r.message())


@pytest.fixture
async def late_month(infra, fresh_database, tmp_path) -> AsyncIterator[Installation]:
    inst = Installation(infra.kafka_bootstrap, fresh_database, tmp_path)
    await inst.create_topics()
    inst.start("filing", "settlement", "clearing")
    # The late month's persons, enrolled (and folded by the settlement service) first.
    await enrol_persons(inst, {s.person: (s.route.insured_agency, s.insurance_type)
                               for s in (S1, S2, S3, S4)})
    yield inst
    inst.stop()


def _line(statement: dict[str, Any], counterpart: str) -> dict[str, Any]:
    line = next(x for x in statement["lines"] if x["counterpart"] == counterpart)
    return {k: line[k] for k in ("receivable", "receivable_count", "payable", "payable_count",
                                 "adjustments", "adjustment_count", "net")}


@pytest.mark.timeout(300)
async def test_events_for_a_cycle_already_cleared_are_carried_into_the_next(late_month) -> None:
    inst = late_month
    timings = Timings()
    answers = await inst.reader(topics.SETTLEMENT_EVENTS).start()
    results = await inst.reader(topics.CLEARING_RESULTS).start()
    problems: list[str] = []
    try:
        # Every message twice here too: the remittance must count once.
        await produce(inst.bootstrap, inst.prefix, [_submission(S1), _submission(S2)],
                      twice=True)
        await answers.until(lambda r: len(r) >= 2 or f"{len(r)}/2", timeout=60,
                            what="S1 and S2 settled")
        await inst.advance(date(2026, 11, 10), start=date(2026, 10, 1))
        await results.until(results_shortfall({"clearing.net_transfer_instruction": 2}),
                            timeout=90, what="October's instructions")
        await produce(inst.bootstrap, inst.prefix, [("clearing.submissions", A, envelope(
            "clearing.remittance_reported",
            {"instruction_id": "NTI-2026-10-220100-hub", "amount": "3200.00",
             "paid_at": "2026-11-14T10:00:00+08:00", "agency": A},
            id="remit-A-2026-10", source=f"agency/{A}", time="2026-11-14T10:00:00+08:00"))],
            twice=True)
        await inst.advance(date(2026, 11, 20))
        await results.until(results_shortfall({"clearing.cycle_closed": 2}), timeout=90,
                            what="2026-10 closed")
        timings.mark("2026-10 closed")

        await produce(inst.bootstrap, inst.prefix, [
            _submission(S3), _refund(R1), _submission(S1R), _submission(S4)], twice=True)
        await answers.until(lambda r: len(r) >= 6 or f"{len(r)}/6", timeout=60,
                            what="the late events settled")
        await inst.advance(date(2026, 12, 10))
        await results.until(results_shortfall({"clearing.net_transfer_instruction": 4,
                                               "clearing.difference_notice": 2}),
                            timeout=90, what="November's instructions")
        timings.mark("2026-11 instructions")
        await results.poll()

        settled = {e["data"].get("refund_id") or e["data"]["settlement_id"]: e["data"]
                   for e in distinct_events(answers.records)[0]}
        for key, fund, cleared in (("LS1", "6500.00", "6500.00"), ("LS2", "3300.00", "3300.00"),
                                   ("LS3", "1300.00", "1300.00"), ("LR1", "6500.00", "6500.00"),
                                   ("LS1R", "5200.00", "5200.00"), ("LS4", "660.00", "660.00")):
            got = (settled.get(key, {}).get("fund_pay"), settled.get(key, {}).get("cleared_amount"))
            if got != (fund, cleared):
                problems.append(f"{key}: expected fund_pay, cleared {fund}, {cleared}; got {got}")

        by_type = results_by_type(distinct_events(results.records)[0])
        statements = {(s["cycle"], s["agency"]): s for s in by_type["clearing.statement_issued"]}
        october = [s for s in by_type["clearing.statement_issued"] if s["cycle"] == "2026-10"]
        if sorted((s["agency"], s["net"]) for s in october) != [(A, "-3200.00"), (B, "3200.00")]:
            problems.append(f"2026-10 statements: expected one each, A −3200.00 and B 3200.00; "
                            f"got {[(s['agency'], s['net']) for s in october]}")
        want_lines = {
            A: {"receivable": "660.00", "receivable_count": 1, "payable": "5200.00",
                "payable_count": 1, "adjustments": "5200.00", "adjustment_count": 2,
                "net": "660.00"},
            B: {"receivable": "5200.00", "receivable_count": 1, "payable": "660.00",
                "payable_count": 1, "adjustments": "-5200.00", "adjustment_count": 2,
                "net": "-660.00"}}
        for agency, counterpart in ((A, B), (B, A)):
            statement = statements.get(("2026-11", agency))
            if statement is None:
                problems.append(f"2026-11 statement of {agency}: missing")
                continue
            got_line = _line(statement, counterpart)
            if got_line != want_lines[agency]:
                problems.append(f"2026-11 statement of {agency}, line {counterpart}: expected "
                                f"{want_lines[agency]}, got {got_line}")
        instructions = sorted((i["instruction_id"], i["amount"], i["due_on"])
                              for i in by_type["clearing.net_transfer_instruction"])
        want_instructions = sorted([
            ("NTI-2026-10-220100-hub", "3200.00", "2026-11-16"),  # Sun 15th: next working day
            ("NTI-2026-10-hub-220200", "3200.00", "2026-11-20"),
            ("NTI-2026-11-220200-hub", "660.00", "2026-12-15"),
            ("NTI-2026-11-hub-220100", "660.00", "2026-12-21")])  # Sun 20th: next working day
        if instructions != want_instructions:
            problems.append(f"instructions: expected {want_instructions}, got {instructions}")
        notices = sorted(
            (n["agency"], n["original_settlement_id"], n["settlement_id"], n["fund_pay"],
             n["account_pay"], n["cash_pay"], n["cleared_amount"], n["original_cycle"],
             n["cycle"], n.get("carried_into"))
            for n in by_type["clearing.difference_notice"])
        want_notices = sorted(
            (agency, "LS1", "LS1R", "-1300.00", "0.00", "-700.00", "-1300.00", "2026-10",
             "2026-11", "2026-11") for agency in (A, B))
        if notices != want_notices:
            problems.append(f"difference notices: expected {want_notices}, got {notices}")
        for unwanted in ("clearing.submission_rejected", "clearing.remittance_overdue"):
            if by_type.get(unwanted):
                problems.append(f"unexpected {unwanted}: {by_type[unwanted]}")
        closed = sorted((c["cycle"], c["agency"], c["net"])
                        for c in by_type["clearing.cycle_closed"])
        if closed != [("2026-10", A, "-3200.00"), ("2026-10", B, "3200.00")]:
            problems.append(f"cycle_closed: expected 2026-10 A −3200.00, B 3200.00; got {closed}")

        conn = await inst.connect("clearing")
        try:
            rows = await conn.fetch(
                """SELECT DISTINCT settlement_id, kind, cycle, origin_cycle FROM postings
                   WHERE settlement_id IN ('LS3', 'LS1') AND kind IN ('settlement', 'refund')
                   ORDER BY 1, 2""")
        finally:
            await conn.close()
        carried = [tuple(r) for r in rows]
        want_carried = [("LS1", "refund", "2026-11", "2026-10"),
                        ("LS1", "settlement", "2026-10", "2026-10"),
                        ("LS3", "settlement", "2026-11", "2026-10")]
        if carried != want_carried:
            problems.append(f"postings of late items (settlement, kind, cycle, origin): "
                            f"expected {want_carried}, got {carried}")
        fail_on(problems, "a cycle already cleared: ")
    finally:
        await answers.stop()
        await results.stop()
        raw = [orjson.loads(r.value)["type"] for r in results.records]
        inst.note(f"clearing results: {sorted(set(raw))}; timings {timings.marks}")
