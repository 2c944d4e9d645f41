"""The fault harness's checks of issued documents (tests/faults/harness.py): each expected
document once and as expected, nothing unexpected; what differs is named."""

from __future__ import annotations

from typing import Any, cast

from tests.faults.harness import (
    check_daily_reports,
    check_difference_notices,
    check_instructions,
    check_statements,
)
from tests.faults.workload import HUB, Expected

LINE = {"receivable": "10.00", "receivable_count": 1, "payable": "0.00", "payable_count": 0}


class _Expected:
    """The parts of `Expected` the checks read."""

    def daily_reports(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {("220100", "2026-10-05"): {"counterparts": {"220200": LINE},
                                           "settlement_count": 1, "checksum": "c1"}}

    def statements(self) -> dict[str, dict[str, Any]]:
        return {agency: {"lines": {}, "receivable": "0.00", "payable": "0.00",
                         "adjustments": "0.00", "net": "0.00", "checksum": f"s-{agency}"}
                for agency in ("220100", "220200")}

    def instructions(self, cycle: str) -> dict[str, dict[str, str]]:
        return {"NTI-1": {"payer": "220200", "payee": HUB, "amount": "5.00",
                          "due_on": "2026-11-16"}}

    def difference_notices(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {("220100", "S-1"): {"difference": "-1.00"}}


EXPECTED = cast(Expected, _Expected())


def report(checksum: str = "c1", day: str = "2026-10-05") -> dict[str, Any]:
    return {"agency": "220100", "date": day, "settlement_count": 1, "checksum": checksum,
            "counterparts": [{"counterpart": "220200", **LINE}]}


def statement(agency: str, net: str = "0.00", checksum: str | None = None) -> dict[str, Any]:
    return {"agency": agency, "cycle": "2026-10", "lines": [], "receivable": "0.00",
            "payable": "0.00", "adjustments": "0.00", "net": net,
            "checksum": checksum or f"s-{agency}"}


def test_daily_reports_as_expected_pass_and_every_departure_is_named() -> None:
    assert check_daily_reports([report()], EXPECTED) == []
    key = "('220100', '2026-10-05')"
    wanted = EXPECTED.daily_reports()[("220100", "2026-10-05")]
    assert check_daily_reports([], EXPECTED) == [
        f"daily report {key}: missing, expected {wanted}"]
    assert check_daily_reports([report(), report()], EXPECTED) == [
        f"daily report {key}: issued 2 times"]
    (differs,) = check_daily_reports([report(checksum="other")], EXPECTED)
    assert differs.startswith(f"daily report {key}: expected ") and "'other'" in differs
    later = report(day="2026-10-06")
    assert check_daily_reports([report(), later], EXPECTED) == [
        f"daily report ('220100', '2026-10-06'): not expected, got {later}"]


def test_statements_name_the_fields_that_differ_and_nets_that_do_not_add_up() -> None:
    both = [statement("220100"), statement("220200")]
    assert check_statements(both, EXPECTED, "2026-10") == []
    assert check_statements([*both, statement("220100")], EXPECTED, "2026-10") == [
        "statement 2026-10 220100: issued 2 times"]
    assert check_statements([statement("220100", net="1.00"), statement("220200")],
                            EXPECTED, "2026-10") == [
        "statement 2026-10 220100: differs (expected, got): {'net': ('0.00', '1.00')}",
        "statements 2026-10: the nets add up to 1.00, not 0.00"]
    missing = check_statements([statement("220100")], EXPECTED, "2026-10")
    assert missing == [f"statement 2026-10 220200: missing, expected "
                       f"{EXPECTED.statements()['220200']}"]
    elsewhere = {**statement("220200"), "cycle": "2026-11"}
    assert check_statements([statement("220100"), elsewhere], EXPECTED, "2026-10") == missing


def test_instructions_and_difference_notices_once_each() -> None:
    instruction = {"instruction_id": "NTI-1", "cycle": "2026-10", "payer": "220200",
                   "payee": HUB, "amount": "5.00", "due_on": "2026-11-16"}
    assert check_instructions([instruction], EXPECTED, "2026-10") == [
        "instructions 2026-10: the hub takes in 5.00 but pays out 0"]
    twice = check_instructions([instruction, instruction], EXPECTED, "2026-10")
    assert twice[0] == "instruction NTI-1: issued 2 times"
    late = check_instructions([{**instruction, "due_on": "2026-11-17"}], EXPECTED, "2026-10")
    assert late[0].startswith("instruction NTI-1: expected ") and "2026-11-17" in late[0]

    notice = {"agency": "220100", "settlement_id": "S-1", "difference": "-1.00", "extra": 1}
    assert check_difference_notices([notice], EXPECTED) == []
    assert check_difference_notices([notice, notice], EXPECTED) == [
        "difference notice ('220100', 'S-1'): sent 2 times"]
    assert check_difference_notices([], EXPECTED) == [
        "difference notice ('220100', 'S-1'): missing, expected {'difference': '-1.00'}"]
