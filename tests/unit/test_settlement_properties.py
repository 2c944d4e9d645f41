"""Properties of the computation and of the per-person fold, over random bills and histories."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.settlement.domain.accumulators import (
    Outcome,
    PersonState,
    evolve,
    from_json,
    to_json,
)
from services.settlement.domain.compute import compute
from services.settlement.domain.decisions import (
    FilingFacts,
    HospitalFacts,
    SettlementContext,
    decide_refund,
    decide_settlement,
)
from services.settlement.domain.policy import load_catalogue, load_policies
from shared.business_time import SHANGHAI
from shared.enrolment import EnrolmentSpan
from shared.events.filing import BenefitStatus, FilingCategory, InsuranceType
from shared.events.settlement import (
    Item,
    RefundRequested,
    SettlementCompleted,
    SettlementRefunded,
    SettlementSubmitted,
)
from shared.money import FEN, ZERO

REFERENCE = Path(__file__).resolve().parents[2] / "reference"
POLICIES = load_policies(REFERENCE)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

fen = st.integers(min_value=0, max_value=5_000_000).map(lambda n: Decimal(n).scaleb(-2))
signed_fen = st.integers(min_value=-100_000, max_value=5_000_000).map(
    lambda n: Decimal(n).scaleb(-2))
share = st.integers(min_value=0, max_value=100).map(lambda n: Decimal(n).scaleb(-2))
CODES = ["X-1", "X-2", "Z-GINKGO-INJ", "M-CARDIAC-STENT"]
items = st.lists(st.builds(lambda code, category, amount: Item(
    code=code, name=code, category=category, amount=amount),
    st.sampled_from(CODES), st.sampled_from(["A", "B", "C"]), fen), min_size=1, max_size=8)


# ---- the computation ----------------------------------------------------------------------


@SETTINGS
@given(items=items, shares=st.dictionaries(st.sampled_from(CODES), share), default=share,
       ratio=share, deductible=signed_fen, cap=signed_fen,
       insurance=st.sampled_from(list(InsuranceType)), request=st.none() | fen)
def test_the_split_always_adds_up(items: list[Item], shares: dict[str, Decimal],
                                  default: Decimal, ratio: Decimal, deductible: Decimal,
                                  cap: Decimal, insurance: InsuranceType,
                                  request: Decimal | None) -> None:
    c = compute(items, lambda code: shares.get(code, default), ratio=ratio,
                deductible_unused=deductible, cap_unused=cap, insurance_type=insurance,
                personal_account_request=request)
    money = (c.total, c.self_pay_first, c.uncovered, c.eligible, c.deductible, c.fund_pay,
             c.account_pay, c.cash_pay, c.cleared_amount)
    assert all(v >= 0 and v == v.quantize(FEN) for v in money)
    assert c.total == c.fund_pay + c.account_pay + c.cash_pay
    assert c.total == c.self_pay_first + c.uncovered + c.eligible
    assert c.cleared_amount == c.fund_pay + c.account_pay
    assert c.fund_pay <= max(ZERO, cap)
    assert c.fund_pay <= c.eligible - c.deductible
    assert c.deductible <= min(c.eligible, max(ZERO, deductible))
    assert c.account_pay <= (request or ZERO)
    if insurance is InsuranceType.RESIDENT:
        assert c.account_pay == 0


# ---- histories of one person --------------------------------------------------------------

#: (hospital, care agency): same pool, same city, county area, district, other province.
HOSPITALS = [
    (HospitalFacts("H220104001", "220104", 3, False), "220100"),
    (HospitalFacts("H220202001", "220202", 3, False), "220200"),
    (HospitalFacts("H220204002", "220204", 1, False), "220200"),
    (HospitalFacts("P220202001", "220202", 1, False), "220200"),
    (HospitalFacts("H220281001", "220281", 3, True), "220281"),
    (HospitalFacts("H320106002", "320106", 3, False), "320100"),
]
CATALOGUES = {h.county: load_catalogue(REFERENCE, h.county) for h, _ in HOSPITALS}
FILINGS = [
    (),
    (FilingFacts("F-LONG", FilingCategory.RELOCATED_RETIREE, "220200",
                 InsuranceType.EMPLOYEE, "220100"),),
    (FilingFacts("F-REF", FilingCategory.REFERRAL, "320000", InsuranceType.EMPLOYEE,
                 "220100"),),
    (FilingFacts("F-TMP", FilingCategory.TEMPORARY_OTHER, "220000", InsuranceType.EMPLOYEE,
                 "220100"),),
]
START = datetime(2026, 12, 20, 9, 0, tzinfo=SHANGHAI)


@st.composite
def settle_step(draw: st.DrawFn) -> dict[str, Any]:
    hospital, care = draw(st.sampled_from(HOSPITALS))
    visit = draw(st.sampled_from(["inpatient", "outpatient", "pharmacy", "chronic_outpatient"]))
    return {"kind": "settle", "hospital": hospital, "care": care, "visit": visit,
            "items": draw(items), "filings": draw(st.sampled_from(FILINGS)),
            "request": draw(st.none() | fen), "stay": draw(st.integers(0, 3)),
            "status": draw(st.sampled_from([BenefitStatus.ACTIVE] * 5
                                           + [BenefitStatus.SUSPENDED])),
            "resettle": draw(st.booleans())}


@st.composite
def refund_step(draw: st.DrawFn) -> dict[str, Any]:
    return {"kind": "refund", "pick": draw(st.integers(0, 50)),
            "other_hospital": draw(st.booleans()), "unknown": draw(st.integers(0, 9)) == 0}


steps = st.lists(st.one_of(settle_step(), settle_step(), refund_step()), min_size=1,
                 max_size=12)


class History:
    """Replays steps against one person, deciding each with the state and with its JSON copy."""

    def __init__(self) -> None:
        self.state = PersonState.empty("P-1")
        self.count = 0
        self.when = START

    def run(self, step: dict[str, Any]) -> Outcome:
        self.count += 1
        self.when += timedelta(hours=7 * self.count)
        copy = from_json(to_json(self.state))
        outcome: Outcome
        if step["kind"] == "settle":
            sub, ctx = self.submission(step)
            outcome = decide_settlement(self.state, sub, ctx)
            assert decide_settlement(copy, sub, ctx) == outcome
        else:
            refund = self.refund(step)
            outcome = decide_refund(self.state, refund)
            assert decide_refund(copy, refund) == outcome
        if isinstance(outcome, SettlementCompleted):
            check_completed(self.state, outcome)
        self.state = evolve(self.state, outcome)
        assert from_json(to_json(self.state)) == self.state
        check_accumulators(self.state)
        return outcome

    def submission(self, step: dict[str, Any]) -> tuple[SettlementSubmitted,
                                                         SettlementContext]:
        hospital: HospitalFacts = step["hospital"]
        day = self.when.date()
        data: dict[str, Any] = {
            "settlement_id": f"S-{self.count}", "hospital": hospital.code, "person_id": "P-1",
            "insured_agency": "220100", "insurance_type": "employee",
            "visit_type": step["visit"], "settled_at": self.when.isoformat(),
            "emergency": False, "referral": False,
            "items": [i.model_dump(mode="json") for i in step["items"]]}
        if step["visit"] == "inpatient":
            data["admitted_on"] = (day - timedelta(days=step["stay"])).isoformat()
            data["discharged_on"] = day.isoformat()
        else:
            data["visit_date"] = day.isoformat()
        if step["request"] is not None:
            data["personal_account_request"] = str(step["request"])
        refunded = [s for s in self.state.settlements
                    if s.refunded and s.hospital == hospital.code]
        if step["resettle"] and refunded:
            data["resettles"] = refunded[0].settlement_id
        submitted = SettlementSubmitted.model_validate_json(json.dumps(data))
        ctx = SettlementContext(hospital, step["care"], POLICIES["220100"],
                                CATALOGUES[hospital.county], step["filings"], step["status"],
                                enrolment=EnrolmentSpan(date(2020, 1, 1), "220100",
                                                        submitted.insurance_type.value))
        return submitted, ctx

    def refund(self, step: dict[str, Any]) -> RefundRequested:
        known = self.state.settlements
        if known and not step["unknown"]:
            target = known[step["pick"] % len(known)]
            settlement_id, hospital = target.settlement_id, target.hospital
            if step["other_hospital"] and step["pick"] % 5 == 0:
                hospital = "H220204001"
        else:
            settlement_id, hospital = f"S-{self.count + 100}", "H220202001"
        return RefundRequested.model_validate_json(json.dumps({
            "refund_id": f"R-{self.count}", "settlement_id": settlement_id,
            "hospital": hospital, "person_id": "P-1", "reason": "test",
            "refunded_at": self.when.isoformat()}))


def check_completed(before: PersonState, event: SettlementCompleted) -> None:
    assert event.total == event.fund_pay + event.account_pay + event.cash_pay
    assert event.cleared_amount == event.fund_pay + event.account_pay
    assert min(event.fund_pay, event.account_pay, event.cash_pay, event.deductible) >= 0
    rule = POLICIES["220100"].rule(event.insurance_type, event.visit_type,
                                   next(h.level for h, _ in HOSPITALS
                                        if h.code == event.hospital))
    assert rule is not None and event.cap_scope is not None
    cap_unused = max(ZERO, rule.annual_cap - before.cap_used.get(event.cap_scope, ZERO))
    assert event.fund_pay <= cap_unused


def check_accumulators(state: PersonState) -> None:
    """The accumulators are exactly the use of the settlements not refunded."""
    deductible: dict[str, Decimal] = defaultdict(lambda: ZERO)
    cap: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for s in state.settlements:
        if not s.refunded:
            deductible[s.deductible_scope] += s.deductible
            cap[s.cap_scope] += s.fund_pay
    assert dict(state.deductible_used) == {k: v for k, v in deductible.items() if v}
    assert dict(state.cap_used) == {k: v for k, v in cap.items() if v}


@SETTINGS
@given(history=steps)
def test_histories_decide_the_same_from_json_and_keep_exact_accumulators(
        history: list[dict[str, Any]]) -> None:
    replay = History()
    for step in history:
        replay.run(step)


@SETTINGS
@given(history=steps, step=settle_step())
def test_a_refund_gives_back_exactly_what_its_settlement_used(
        history: list[dict[str, Any]], step: dict[str, Any]) -> None:
    replay = History()
    for earlier in history:
        replay.run(earlier)
    before = replay.state
    outcome = replay.run({**step, "status": BenefitStatus.ACTIVE, "resettle": False})
    if not isinstance(outcome, SettlementCompleted):
        return
    refunded = replay.run({"kind": "refund", "pick": len(replay.state.settlements) - 1,
                           "other_hospital": False, "unknown": False})
    assert isinstance(refunded, SettlementRefunded)
    assert refunded.fund_pay == outcome.fund_pay
    assert replay.state.deductible_used == before.deductible_used
    assert replay.state.cap_used == before.cap_used
