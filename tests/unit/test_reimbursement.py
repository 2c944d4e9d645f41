"""Manual reimbursement (手工报销), hand-worked on the policy of 长春市 (220100: employee,
inpatient, level 3: deductible 900.00 per admission, ratio 0.85, annual cap 300,000.00;
personal-reason reduction 0.10) and the Jilin 2022 tier table, for care at 吉林市中心医院
(H220202001, another city's district) or 北京协和医院 (H110101001, another province)."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.clearing.app import SPEC as CLEARING
from services.settlement.domain import reasons
from services.settlement.domain.accumulators import evolve, year_scope
from services.settlement.domain.decisions import (
    FilingFacts,
    SettlementContext,
    decide_refund,
    decide_settlement,
)
from services.settlement.domain.reimbursement import as_settlement, decide_reimbursement
from services.settlement.handlers import SettlementHandler
from shared import acls, topics
from shared.events import PAYLOADS_BY_TOPIC, Rejection, decode
from shared.events.filing import BenefitStatus, FilingCategory
from shared.events.reimbursement import (
    ReimbursementApproved,
    ReimbursementClaimed,
    ReimbursementRejected,
)
from shared.events.settlement import RefundRejected, SettlementCompleted, SettlementRejected
from shared.filing_view import SupervisionChange
from shared.messaging.clients import service_principal
from shared.messaging.records import Record
from shared.money import MONEY_LIMIT
from tests.unit.test_settlement_decisions import EMPTY, context, filing, refund, submission

D = Decimal
RETIREE = filing(FilingCategory.RELOCATED_RETIREE, "220200")


def bill(amount: str) -> list[dict[str, str]]:
    return [{"code": "S-WARD", "name": "床位及护理", "category": "A", "amount": amount}]


def claim(amount: str = "10900.00", *, at_fault: bool = False, hospital: str = "H220202001",
          case: str = "direct_settlement_failed", admitted: str = "2026-11-02",
          discharged: str = "2026-11-10", claim_id: str = "MR-1", **extra: Any
          ) -> ReimbursementClaimed:
    return ReimbursementClaimed.model_validate_json(json.dumps({
        "claim_id": claim_id, "person_id": "P-1", "insured_agency": "220100",
        "insurance_type": "employee", "hospital": hospital, "visit_type": "inpatient",
        "admitted_on": admitted, "discharged_on": discharged,
        "paid_at": f"{discharged}T16:00:00+08:00", "case": case, "at_fault": at_fault,
        "items": bill(amount), **extra}))


def claim_context(c: ReimbursementClaimed, *filings: FilingFacts) -> SettlementContext:
    return context(as_settlement(c), *filings)


@pytest.mark.parametrize(("filings", "at_fault", "hospital", "tier", "ratio", "fund_pay"), [
    # (10,900.00 − 900.00 deductible) × ratio
    ((RETIREE,), False, "H220202001", 1, "0.85", "8500.00"),
    ((RETIREE,), True, "H220202001", 1, "0.75", "7500.00"),    # −10 points: at fault
    ((), False, "H220202001", 3, "0.65", "6500.00"),           # no filing: tier 3, −20
    ((), True, "H220202001", 3, "0.55", "5500.00"),            # −20 and −10
    ((), False, "H110101001", 3, "0.65", "6500.00"),           # another province, unfiled
])
def test_reimbursement_by_tier_and_fault(filings: tuple[FilingFacts, ...], at_fault: bool,
                                         hospital: str, tier: int, ratio: str,
                                         fund_pay: str) -> None:
    c = claim(at_fault=at_fault, hospital=hospital,
              case="no_filing" if not filings else "direct_settlement_failed")
    answer, settled = decide_reimbursement(EMPTY, c, claim_context(c, *filings))
    assert isinstance(answer, ReimbursementApproved), answer
    assert (answer.tier, str(answer.ratio), str(answer.deductible), str(answer.fund_pay),
            str(answer.cash_pay)) == (tier, ratio, "900.00", fund_pay,
                                      str(D("10900.00") - D(fund_pay)))
    assert settled is not None and settled.fund_pay == answer.fund_pay


def test_care_direct_settlement_refuses_unfiled_is_still_reimbursed() -> None:
    # Jilin settles unfiled care directly only in the province: Beijing's refused directly
    bill_ = as_settlement(claim(hospital="H110101001")).model_copy(
        update={"settlement_id": "S-1"})
    direct = decide_settlement(EMPTY, bill_, claim_context(claim(hospital="H110101001")))
    assert isinstance(direct, SettlementRejected)
    assert [r.code for r in direct.reasons] == [reasons.FILING_REQUIRED]


def test_one_accumulator_with_direct_settlements() -> None:
    # October, direct, tier 1: (340,900.00 − 900.00) × 0.85 = 289,000.00 of the 300,000.00 cap
    direct = submission(insured_agency="220100", admitted_on="2026-10-01",
                        discharged_on="2026-10-09", personal_account_request=None,
                        items=bill("340900.00"))
    first = decide_settlement(EMPTY, direct, context(direct, RETIREE))
    assert isinstance(first, SettlementCompleted) and first.fund_pay == D("289000.00")
    state = evolve(EMPTY, first)
    # November, claimed, at fault: (20,900.00 − 900.00) × 0.75 = 15,000.00, capped at the
    # 11,000.00 the October settlement left; the person bears 9,900.00
    c = claim("20900.00", at_fault=True)
    answer, settled = decide_reimbursement(state, c, claim_context(c, RETIREE))
    assert isinstance(answer, ReimbursementApproved) and settled is not None
    assert (answer.fund_pay, answer.cash_pay) == (D("11000.00"), D("9900.00"))
    state = evolve(state, settled)
    # December, direct again: the cap is used up, by the settlement and the claim together
    later = submission(settlement_id="S-3", insured_agency="220100", admitted_on="2026-12-01",
                       discharged_on="2026-12-05", settled_at="2026-12-05T10:00:00+08:00",
                       personal_account_request=None, items=bill("10900.00"))
    third = decide_settlement(state, later, context(later, RETIREE))
    assert isinstance(third, SettlementCompleted) and third.fund_pay == D("0.00")
    # the same claim again is refused
    again, none = decide_reimbursement(state, c, claim_context(c, RETIREE))
    assert isinstance(again, ReimbursementRejected) and none is None
    assert [r.code for r in again.reasons] == [reasons.DUPLICATE_CLAIM]


def test_supervision_does_not_refuse_a_claim_but_a_suspension_does() -> None:
    c = claim()
    held = SupervisionChange("220200", True, c.paid_at.replace(year=2026, month=1))
    answer, _ = decide_reimbursement(EMPTY, c, SettlementContext(
        **{**claim_context(c, RETIREE).__dict__, "supervision": held}))
    assert isinstance(answer, ReimbursementApproved)
    suspended = context(as_settlement(c), RETIREE, status=BenefitStatus.SUSPENDED)
    refused, settled = decide_reimbursement(EMPTY, c, suspended)
    assert isinstance(refused, ReimbursementRejected) and settled is None
    assert [r.code for r in refused.reasons] == [reasons.BENEFIT_SUSPENDED]


def test_a_reimbursement_never_enters_the_clearing() -> None:
    # the clearing service reads no reimbursement topic, is not allowed to, and the
    # settlement events it reads cannot carry a reimbursement
    assert not {topics.REIMBURSEMENT_CLAIMS, topics.REIMBURSEMENT_EVENTS} & set(
        CLEARING.consumes)
    grants = acls.grants(hospitals=["H1"], agencies=["220100"], services={
        "clearing": acls.ServiceTopics(CLEARING.consumes, CLEARING.publishes),
        "settlement": acls.ServiceTopics((topics.REIMBURSEMENT_CLAIMS,),
                                         (topics.REIMBURSEMENT_EVENTS,))})
    readers = {g.principal for g in grants if g.operation == "read"
               and g.name.startswith(topics.REIMBURSEMENT_EVENTS)}
    assert service_principal("clearing") not in readers
    assert readers >= {"agency-220100"}
    assert not {ReimbursementApproved.TYPE, ReimbursementRejected.TYPE} & set(
        PAYLOADS_BY_TOPIC[topics.SETTLEMENT_EVENTS])


@pytest.mark.parametrize("visit", [
    {"visit_type": "inpatient", "admitted_on": "2026-11-02", "discharged_on": "2026-11-10",
     "disease_code": "I63.9"},
    {"visit_type": "chronic_outpatient", "visit_date": "2026-11-10", "disease_code": "M1"},
    {"visit_type": "pharmacy"},
])
def test_the_settlement_a_claim_stands_for_has_the_claims_visit(visit: dict[str, str]) -> None:
    c = claim(**{"admitted_on": None, "discharged_on": None, **visit})
    submitted = as_settlement(c)
    fields = ("visit_type", "disease_code", "admitted_on", "discharged_on", "visit_date")
    assert [getattr(submitted, f) for f in fields] == [getattr(c, f) for f in fields]
    assert submitted.model_dump(mode="json", include=set(fields), exclude_none=True) == visit


def test_a_claim_of_no_real_bill_is_refused_at_the_door_and_answered() -> None:
    """Items adding up to the money limit are refused as the submission of the same bill
    is, with an answer to the agency, instead of failing inside the rule."""
    half = f"{(MONEY_LIMIT / 2).quantize(Decimal('0.01')):.2f}"  # each line is money
    lines = bill(half) + bill(half)
    data = json.loads(claim().model_dump_json()) | {"items": lines}
    with pytest.raises(ValidationError, match="not a real bill"):
        ReimbursementClaimed.model_validate_json(json.dumps(data))
    document = {"specversion": "1.0", "id": "MR-9", "source": "agency/220100",
                "type": "reimbursement.claimed", "time": "2026-11-10T16:00:00+08:00",
                "datacontenttype": "application/json", "data": data}
    raw = json.dumps(document).encode()
    with pytest.raises(Rejection) as refused:
        decode(topics.REIMBURSEMENT_CLAIMS, raw)
    assert "not a real bill" in refused.value.message
    answers = SettlementHandler(None).answer_rejection(  # type: ignore[arg-type]
        Record(topics.REIMBURSEMENT_CLAIMS, 0, 7, b"P-1", raw), refused.value)
    assert [a.topic for a in answers] == [topics.REIMBURSEMENT_EVENTS]
    assert b"reimbursement.rejected" in answers[0].value and b"MR-1" in answers[0].value


def _approved(c: ReimbursementClaimed) -> tuple[ReimbursementApproved, SettlementCompleted]:
    answer, settled = decide_reimbursement(EMPTY, c, claim_context(c, RETIREE))
    assert isinstance(answer, ReimbursementApproved) and settled is not None, answer
    return answer, settled


def test_a_hospital_cannot_refund_a_reimbursement() -> None:
    """The claim is recorded as MR:MR-1 at the hospital; a refund of that id by the hospital
    would give the deductible and cap back and clear a reversal no agency owes."""
    _, settled = _approved(claim())
    state = evolve(EMPTY, settled)
    assert state.cap_used and state.deductible_used
    outcome = decide_refund(state, refund("MR:MR-1", hospital="H220202001",
                                          at="2026-11-20T09:00:00+08:00"))
    assert isinstance(outcome, RefundRejected), outcome
    assert [r.code for r in outcome.reasons] == [reasons.RESERVED_SETTLEMENT_ID]
    assert "MR:" in outcome.reasons[0].message
    assert evolve(state, outcome).cap_used == state.cap_used  # nothing given back


@pytest.mark.parametrize("changes", [
    {"settlement_id": "MR:S-9"},  # would pre-empt a later claim S-9 (duplicate_claim)
    {"settlement_id": "S-9", "resettles": "MR:MR-1"},  # would settle the claim again
])
def test_a_hospital_may_not_use_the_reimbursement_prefix(changes: dict[str, str]) -> None:
    _, settled = _approved(claim())
    state = evolve(EMPTY, settled)
    sub = submission(insured_agency="220100", admitted_on="2026-11-12",
                     discharged_on="2026-11-14", personal_account_request=None,
                     settled_at="2026-11-14T16:00:00+08:00", items=bill("1000.00"), **changes)
    outcome = decide_settlement(state, sub, context(sub, RETIREE))
    assert isinstance(outcome, SettlementRejected), outcome
    assert [r.code for r in outcome.reasons] == [reasons.RESERVED_SETTLEMENT_ID]


def test_the_reserved_code_is_listed_for_both_answers() -> None:
    assert reasons.RESERVED_SETTLEMENT_ID in reasons.SETTLEMENT_REJECTION_CODES
    assert reasons.RESERVED_SETTLEMENT_ID in reasons.REFUND_REJECTION_CODES


def test_further_payers_pay_what_the_reimbursement_uses_of_their_caps() -> None:
    """Taiyuan resident, 低保: a claim of 30,000.00 is paid back as the direct settlement of the
    same bill is (test_other_payers' worked figures): fund 17,280.00, serious illness 1,632.00,
    assistance 7,761.60; the person bears 3,326.40. The caps those payers used are what the
    approval says they pay, so a later stay gets the assistance that is really left."""
    c = ReimbursementClaimed.model_validate_json(json.dumps({
        "claim_id": "MR-7", "person_id": "P-1", "insured_agency": "140100",
        "insurance_type": "resident", "hospital": "H140106001", "visit_type": "inpatient",
        "admitted_on": "2026-03-02", "discharged_on": "2026-03-02",
        "paid_at": "2026-03-02T16:00:00+08:00", "case": "direct_settlement_failed",
        "at_fault": False,
        "items": [{"code": "S-SURGERY", "name": "手术费", "category": "A",
                   "amount": "30000.00"}]}))
    ctx = dataclasses.replace(claim_context(c), assistance="low_income")
    answer, settled = decide_reimbursement(EMPTY, c, ctx)
    assert isinstance(answer, ReimbursementApproved) and settled is not None, answer
    assert (answer.fund_pay, answer.cash_pay) == (D("17280.00"), D("12720.00"))
    assert (answer.serious_illness_pay, answer.medical_assistance_pay) == (
        D("1632.00"), D("7761.60"))
    assert answer.cash_pay - answer.serious_illness_pay - answer.medical_assistance_pay == \
        D("3326.40")
    used = evolve(EMPTY, settled).cap_used
    assert used[year_scope(2026, "resident", "serious_illness")] == answer.serious_illness_pay
    assert used[year_scope(2026, "resident", "medical_assistance")] == answer.medical_assistance_pay
    # the event says so on the wire too
    again = ReimbursementApproved.model_validate_json(answer.model_dump_json())
    assert again.medical_assistance_pay == D("7761.60")


def test_further_payers_never_exceed_the_cash_part() -> None:
    answer, _ = _approved(claim())
    document = json.loads(answer.model_dump_json())
    with pytest.raises(ValidationError, match="other_payers_exceed_cash"):
        ReimbursementApproved.model_validate_json(json.dumps(document | {
            "serious_illness_pay": str(answer.cash_pay), "medical_assistance_pay": "0.01"}))
