"""The computation of CONTRACT.md step by step, with hand-worked numbers; and the reference data
it reads (policies, catalogues)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from services.settlement.domain.compute import Computation, applied_ratio, compute, split_item
from services.settlement.domain.policy import (
    BenefitRule,
    DeductibleMode,
    NoFilingRule,
    NoFilingScope,
    PolicyError,
    catalogue_candidates,
    load_catalogue,
    load_policies,
    load_policy,
)
from shared.events.filing import InsuranceType
from shared.events.settlement import Item, VisitType

REFERENCE = Path(__file__).resolve().parents[2] / "reference"
D = Decimal
EMPLOYEE, RESIDENT = InsuranceType.EMPLOYEE, InsuranceType.RESIDENT
SHARES = {"Z-GINKGO-INJ": D("0.15"), "X-HALF": D("0.50")}


def b_share(code: str) -> Decimal:
    return SHARES.get(code, D("0.10"))


def item(category: str, amount: str, code: str = "X-ANY") -> Item:
    return Item(code=code, name=code, category=category, amount=D(amount))  # type: ignore[arg-type]


#: The bill of the worked examples in docs/settlement.md.
STAY = [item("A", "5600.00", "S-SURGERY"), item("A", "2400.00", "S-WARD"),
        item("B", "3000.00", "X-J01DD04"), item("B", "125.55", "Z-GINKGO-INJ"),
        item("C", "500.00", "S-VIP-WARD")]


def amounts(c: Computation) -> tuple[str, ...]:
    return tuple(str(v) for v in (c.total, c.self_pay_first, c.uncovered, c.eligible,
                                  c.deductible, c.fund_pay, c.account_pay, c.cash_pay,
                                  c.cleared_amount))


# ---- step 1: items ------------------------------------------------------------------------


@pytest.mark.parametrize(("category", "amount", "code", "first", "uncovered", "eligible"), [
    ("A", "100.00", "X-ANY", "0.00", "0.00", "100.00"),
    ("B", "3000.00", "X-J01DD04", "300.00", "0.00", "2700.00"),
    ("B", "125.55", "Z-GINKGO-INJ", "18.83", "0.00", "106.72"),  # 18.8325 → 18.83
    ("B", "0.05", "X-ANY", "0.01", "0.00", "0.04"),  # 0.005 → 0.01, half up
    ("B", "0.15", "Z-GINKGO-INJ", "0.02", "0.00", "0.13"),  # 0.0225 → 0.02
    ("B", "33.35", "Z-GINKGO-INJ", "5.00", "0.00", "28.35"),  # 5.0025 → 5.00
    ("B", "0.01", "X-HALF", "0.01", "0.00", "0.00"),  # 0.005 → 0.01
    ("C", "500.00", "X-ANY", "0.00", "500.00", "0.00"),
])
def test_items_are_split_and_rounded_one_by_one(category: str, amount: str, code: str,
                                                first: str, uncovered: str,
                                                eligible: str) -> None:
    split = split_item(item(category, amount, code), b_share)
    assert (str(split.self_pay_first), str(split.uncovered), str(split.eligible)) == (
        first, uncovered, eligible)


def test_rounding_is_per_item_not_on_the_sum() -> None:
    """Two B items of 0.05 at 10 %: 0.01 + 0.01, where the sum would give round(0.01) = 0.01."""
    result = compute([item("B", "0.05"), item("B", "0.05")], b_share, ratio=D("0.5"),
                     deductible_unused=D("0"), cap_unused=D("100"), insurance_type=RESIDENT,
                     personal_account_request=None)
    assert (result.self_pay_first, result.eligible) == (D("0.02"), D("0.08"))


# ---- step 3: the ratio --------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "tier", "personal", "expected"), [
    ("0.85", "0.00", "0.00", "0.85"),
    ("0.85", "0.10", "0.00", "0.75"),
    ("0.85", "0.20", "0.00", "0.65"),
    ("0.85", "0.20", "0.10", "0.55"),
    ("0.60", "0.15", "0.10", "0.35"),
    ("0.15", "0.20", "0.10", "0"),  # floored at 0
])
def test_applied_ratio(policy: str, tier: str, personal: str, expected: str) -> None:
    assert applied_ratio(D(policy), D(tier), D(personal)) == D(expected)


# ---- steps 2, 4, 5: the split -------------------------------------------------------------

CASES = [
    # The worked inpatient stays of docs/settlement.md: 长春 employee, level 3 (900.00, 0.85),
    # tier 1, 2 and 3; 1000.00 asked from the personal account.
    ("tier 1", STAY, "0.85", "900.00", "300000.00", EMPLOYEE, "1000.00",
     ("11625.55", "318.83", "500.00", "10806.72", "900.00", "8420.71", "1000.00", "2204.84",
      "9420.71")),
    ("tier 2", STAY, "0.75", "900.00", "300000.00", EMPLOYEE, "1000.00",
     ("11625.55", "318.83", "500.00", "10806.72", "900.00", "7430.04", "1000.00", "3195.51",
      "8430.04")),
    ("tier 3", STAY, "0.65", "900.00", "300000.00", EMPLOYEE, "1000.00",
     ("11625.55", "318.83", "500.00", "10806.72", "900.00", "6439.37", "1000.00", "4186.18",
      "7439.37")),
    # Resident, same stay at tier 3 (resident level 3: 1000.00, 0.60 − 0.20): no account.
    ("resident", STAY, "0.40", "1000.00", "150000.00", RESIDENT, "1000.00",
     ("11625.55", "318.83", "500.00", "10806.72", "1000.00", "3922.69", "0.00", "7702.86",
      "3922.69")),
    # fund share rounds half up: 100.10 × 0.85 = 85.085 → 85.09
    ("fund half up", [item("A", "100.10")], "0.85", "0", "1000", EMPLOYEE, None,
     ("100.10", "0.00", "0.00", "100.10", "0.00", "85.09", "0.00", "15.01", "85.09")),
    # deductible partly used already: 50.00 left of it
    ("deductible left", [item("A", "300.00")], "0.70", "50.00", "3000.00", EMPLOYEE, None,
     ("300.00", "0.00", "0.00", "300.00", "50.00", "175.00", "0.00", "125.00", "175.00")),
    # eligible below the deductible: all of it is deductible, the fund pays nothing
    ("below deductible", [item("A", "150.00"), item("C", "20.00")], "0.70", "200.00",
     "3000.00", EMPLOYEE, "500.00",
     ("170.00", "0.00", "20.00", "150.00", "150.00", "0.00", "170.00", "0.00", "170.00")),
    # the annual cap binds: 1000.00 left of it
    ("cap binds", [item("A", "5000.00")], "0.90", "0", "1000.00", EMPLOYEE, None,
     ("5000.00", "0.00", "0.00", "5000.00", "0.00", "1000.00", "0.00", "4000.00", "1000.00")),
    # the cap is used up (a negative remainder counts as none)
    ("cap used up", [item("A", "5000.00")], "0.90", "0", "-5.00", EMPLOYEE, "100.00",
     ("5000.00", "0.00", "0.00", "5000.00", "0.00", "0.00", "100.00", "4900.00", "100.00")),
    # the account request exceeds what is left after the fund: capped, cash 0
    ("account capped", [item("A", "1000.00")], "0.80", "100.00", "9999.00", EMPLOYEE,
     "5000.00",
     ("1000.00", "0.00", "0.00", "1000.00", "100.00", "720.00", "280.00", "0.00", "1000.00")),
    # ratio floored at 0: the fund pays nothing
    ("ratio zero", [item("A", "80.00")], "0", "0", "9999.00", RESIDENT, None,
     ("80.00", "0.00", "0.00", "80.00", "0.00", "0.00", "0.00", "80.00", "0.00")),
    # only category C
    ("uncovered only", [item("C", "42.42")], "0.85", "900.00", "9999.00", EMPLOYEE, "10.00",
     ("42.42", "0.00", "42.42", "0.00", "0.00", "0.00", "10.00", "32.42", "10.00")),
]


@pytest.mark.parametrize(("items", "ratio", "deductible", "cap", "insurance", "account_request",
                          "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_compute(items: list[Item], ratio: str, deductible: str, cap: str,
                 insurance: InsuranceType, account_request: str | None,
                 expected: tuple[str, ...]) -> None:
    asked = None if account_request is None else D(account_request)
    result = compute(items, b_share, ratio=D(ratio), deductible_unused=D(deductible),
                     cap_unused=D(cap), insurance_type=insurance, personal_account_request=asked)
    assert amounts(result) == expected
    assert result.total == result.fund_pay + result.account_pay + result.cash_pay


# ---- reference data -----------------------------------------------------------------------

POOLS = ["110100", "140100", "140200", "220100", "220200", "220281", "220500", "320100",
         "320500"]


def test_every_pool_has_a_complete_policy() -> None:
    policies = load_policies(REFERENCE)
    assert sorted(policies) == POOLS
    for policy in policies.values():
        assert policy.personal_reason_reduction == D("0.10")
        assert policy.visits[VisitType.INPATIENT].deductible_mode is DeductibleMode.PER_ADMISSION
        for visit in (VisitType.OUTPATIENT, VisitType.PHARMACY, VisitType.CHRONIC_OUTPATIENT):
            assert policy.visits[visit].deductible_mode is DeductibleMode.PER_YEAR
        for insurance in InsuranceType:
            for visit in VisitType:
                for level in (1, 2, 3):
                    assert policy.rule(insurance, visit, level) is not None


def test_the_changchun_employee_inpatient_rule() -> None:
    policy = load_policy(REFERENCE, "220100")
    assert policy.rule(EMPLOYEE, VisitType.INPATIENT, 3) == BenefitRule(
        D("900.00"), D("0.85"), D("300000.00"))
    assert policy.tier_table.name == "jilin-2022"
    assert (policy.no_filing.rule, policy.no_filing.scope) == (NoFilingRule.LOWEST_TIER,
                                                               NoFilingScope.PROVINCE)
    assert load_policy(REFERENCE, "140200").tier_table.name == "shanxi"


def test_residents_get_lower_ratios_everywhere() -> None:
    for policy in load_policies(REFERENCE).values():
        for visit in (VisitType.INPATIENT, VisitType.OUTPATIENT):
            for level in (1, 2, 3):
                employee = policy.rule(EMPLOYEE, visit, level)
                resident = policy.rule(RESIDENT, visit, level)
                assert employee and resident and resident.ratio < employee.ratio


def _bad_policy(tmp_path: Path, old: str, new: str) -> Path:
    for folder in ("settlement-policies", "tiers"):
        (tmp_path / folder).mkdir(exist_ok=True)
    (tmp_path / "tiers" / "jilin-2022.toml").write_bytes(
        (REFERENCE / "tiers" / "jilin-2022.toml").read_bytes())
    text = (REFERENCE / "settlement-policies" / "220100.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "settlement-policies" / "220100.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "key"), [
    ('deductible = "900.00"', "deductible = 900.0", "employee.inpatient.level_3.deductible"),
    ('ratio = "0.85"', 'ratio = "1.85"', "employee.inpatient.level_3.ratio"),
    ('level_3 = { deductible = "900.00"', 'level_4 = { deductible = "900.00"',
     "employee.inpatient.level_3"),
    ('scope = "province"', 'scope = "maybe"', "no_filing.scope"),
    ('"in_province_pharmacy"]', '"in_province_pharmacy", "anywhere"]', "no_filing.exemptions"),
    ('tier_table = "jilin-2022"', 'tier_table = "atlantis"', "(file)"),
    ('agency = "220100"', 'agency = "220200"', "agency"),
])
def test_policy_errors_name_the_file_and_the_key(tmp_path: Path, old: str, new: str,
                                                 key: str) -> None:
    path = _bad_policy(tmp_path, old, new)
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path, "220100")
    assert caught.value.key == key
    assert caught.value.path in (path, tmp_path / "tiers" / "atlantis.toml")


@pytest.mark.parametrize(("county", "found"), [
    ("220202", "220000"),  # Jilin: one provincial catalogue
    ("320506", "320500"),  # Suzhou's own catalogue beats Jiangsu's
    ("320102", "320000"),  # Nanjing has none of its own: Jiangsu's
    ("140212", "140000"),
    ("110105", "110000"),
    ("450102", "default"),  # nothing for Guangxi: the default
])
def test_catalogue_lookup_goes_from_county_to_default(county: str, found: str) -> None:
    assert load_catalogue(REFERENCE, county).region == found


def test_catalogue_candidates_and_shares() -> None:
    assert catalogue_candidates("320506") == ["320506", "320500", "320000", "default"]
    assert catalogue_candidates("320500") == ["320500", "320000", "default"]
    jilin = load_catalogue(REFERENCE, "220202")
    assert (jilin.b_share("Z-GINKGO-INJ"), jilin.b_share("X-J01DD04")) == (D("0.15"), D("0.10"))
