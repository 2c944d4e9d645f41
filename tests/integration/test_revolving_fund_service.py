"""The revolving fund through real Kafka and PostgreSQL: a net payer that pays late has its
outstanding remittance drawn from its fund, which warns it and the province; it tops the
fund up (a signed submission on clearing.submissions), its late remittance pays the fund
back, interest accrues day by day, and `explain fund` accounts for the balance."""

from __future__ import annotations

import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from services.clearing import queries, scheduler
from shared import topics
from shared.reference import DEFAULT_DIRECTORY
from tests.helpers import Services, create_topics, enrol, envelope, produce
from tests.integration.test_clearing_service import (
    CHANGCHUN,
    IN_CHANGCHUN,
    IN_JILIN,
    JILIN,
    PERSONS,
    _of,
    _results,
    outpatient,
)
from tools.audit import fund_explain

pytestmark = pytest.mark.infra

#: Jilin's fund: 1,000.00 (warning at 500.00); 36.5 % a year by ACT/365 is 0.1 % a day,
#: so a day's interest is a thousandth of the balance (1.00 on 1,000.00).
FUND_TERMS = """version = "test"
[terms]
warning_share = "0.50"
annual_rate = "0.365"
day_count = "ACT/365"
months_covered = "2"
[[fund]]
agency = "220200"
initial_advance = "1000.00"
required_level = "1000.00"
"""


def reference_with_fund(tmp_path: Path) -> Path:
    directory = tmp_path / "reference"
    shutil.copytree(DEFAULT_DIRECTORY, directory)
    (directory / "revolving-fund.toml").write_text(FUND_TERMS, encoding="utf-8")
    return directory


def submission(type_: str, data: dict[str, str], id: str, time: str) -> tuple[str, bytes]:
    return JILIN, envelope(type_, data, id=id, source=f"agency/{JILIN}", time=time)


async def test_a_late_payer_draws_on_its_fund_tops_it_up_and_repays(
        infra, fresh_database, tmp_path) -> None:
    from tests.helpers import new_prefix
    bootstrap, prefix = infra.kafka_bootstrap, new_prefix()
    await create_topics(bootstrap, prefix)
    services = Services(bootstrap, fresh_database, prefix, tmp_path)
    services.start("filing", "settlement")
    services.start("clearing", CLEARINGHOUSE_REFERENCE_DIR=str(reference_with_fund(tmp_path)))
    try:
        await enrol(bootstrap, prefix, [(p, a, "employee") for p, a in PERSONS],
                    fresh_database)
        await produce(bootstrap, prefix + topics.SETTLEMENT_SUBMISSIONS, [
            outpatient("S1", IN_CHANGCHUN, "PJ1", JILIN, "2026-10-03", "3000.00"),
            outpatient("S2", IN_CHANGCHUN, "PJ2", JILIN, "2026-10-09", "1500.00"),
            outpatient("S3", IN_JILIN, "PC1", CHANGCHUN, "2026-10-09", "800.00"),
        ])
        await scheduler.advance(bootstrap, date(2026, 11, 10), prefix=prefix,
                                start=date(2026, 10, 1))
        results = await _results(infra, prefix, lambda rs: len(
            _of(rs, "clearing.net_transfer_instruction")) >= 2)
        pay_in = next(i for i in _of(results, "clearing.net_transfer_instruction")
                      if i["payee"] == "hub")
        assert pay_in["payer"] == JILIN and Decimal(pay_in["amount"]) > Decimal("1000.00")

        # Nothing paid by the due date (Sunday 15 November: Monday the 16th): on the 17th
        # the fund advances what it can, all 1,000.00.
        await scheduler.advance(bootstrap, date(2026, 11, 17), prefix=prefix)
        results = await _results(infra, prefix, lambda rs: len(
            _of(rs, "clearing.revolving_fund_warning")) >= 1)
        (drawn,) = _of(results, "clearing.revolving_fund_drawn")
        assert (drawn["agency"], drawn["amount"], drawn["balance"], drawn["date"]) == (
            JILIN, "1000.00", "0.00", "2026-11-17")
        # one to the agency, one to the province (keyed ``hub``), the same warning
        warning, for_province = _of(results, "clearing.revolving_fund_warning")
        assert warning == for_province
        assert (warning["balance"], warning["threshold"], warning["shortfall"]) == (
            "0.00", "500.00", "1000.00")

        # Jilin tops up 600.00 on the 17th and remits in full on the 18th.
        await produce(bootstrap, prefix + topics.CLEARING_SUBMISSIONS, [submission(
            "clearing.revolving_fund_topped_up",
            {"agency": JILIN, "top_up_id": "TU-2026-001", "amount": "600.00",
             "paid_at": "2026-11-17T15:00:00+08:00"},
            "top-up-1", "2026-11-17T15:00:00+08:00")])
        await scheduler.advance(bootstrap, date(2026, 11, 18), prefix=prefix)
        await produce(bootstrap, prefix + topics.CLEARING_SUBMISSIONS, [submission(
            "clearing.remittance_reported",
            {"instruction_id": pay_in["instruction_id"], "amount": pay_in["amount"],
             "paid_at": "2026-11-18T14:00:00+08:00", "agency": JILIN},
            "remit-1", "2026-11-18T14:00:00+08:00")])
        await scheduler.advance(bootstrap, date(2026, 11, 20), prefix=prefix)
        results = await _results(infra, prefix,
                                 lambda rs: len(_of(rs, "clearing.cycle_closed")) >= 2)
    finally:
        services.stop()

    (accepted,) = _of(results, "clearing.revolving_fund_top_up_accepted")
    assert (accepted["top_up_id"], accepted["balance"]) == ("TU-2026-001", "600.00")
    (repaid,) = _of(results, "clearing.revolving_fund_repaid")
    assert (repaid["amount"], repaid["balance"]) == ("1000.00", "1600.00")
    # 1 October to 16 November: 47 days at 1.00; the 17th on the 600.00 booked that day:
    # 0.60; 18 and 19 November on 1,600.00: 2 × 1.60; in all 50.80 (credited at year end)
    accrued = _of(results, "clearing.revolving_fund_interest_accrued")
    assert [a["interest"] for a in accrued] == ["1.00"] * 47 + ["0.60"] + ["1.60"] * 2
    assert accrued[-1]["accrued_this_year"] == "50.80"
    assert len(_of(results, "clearing.revolving_fund_warning")) == 2  # no second warning

    conn = await queries.connect(fresh_database)
    try:
        explanation = await fund_explain.explain_fund(conn, JILIN)
    finally:
        await conn.close()
    assert explanation.adds_up
    assert (explanation.balance, explanation.accrued) == (Decimal("1600.00"), Decimal("50.80"))
    assert [m["kind"] for m in explanation.movements if m["kind"] != "interest_accrual"] == [
        "fund_opened", "fund_draw", "fund_top_up", "fund_repayment"]
    assert {m["cause_source"] for m in explanation.movements} == {scheduler.SOURCE,
                                                                  f"agency/{JILIN}"}
