"""reference/revolving-fund.toml as a `FundPolicy` (the clearing service's reference data).

Read once per directory (``$CLEARINGHOUSE_REFERENCE_DIR`` or the repository's
``reference/``); a directory without the file keeps no funds. Mistakes are refused with
the file, the key and what to do (`shared.reference.ReferenceDataError`).
"""

from __future__ import annotations

import functools
import os
import tomllib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from services.clearing.domain.fund import FundPolicy, FundTerms
from shared.money import parse_money
from shared.reference import DEFAULT_DIRECTORY, ENV_VAR, ReferenceDataError

FILE = "revolving-fund.toml"
DAY_COUNTS = {"ACT/360": 360, "ACT/365": 365}


def load_fund_policy(directory: str | Path | None = None) -> FundPolicy | None:
    """The revolving funds of a reference directory; None when it has no such file."""
    path = Path(directory or os.environ.get(ENV_VAR) or DEFAULT_DIRECTORY).resolve()
    return _load(path)


@functools.lru_cache(maxsize=8)
def _load(directory: Path) -> FundPolicy | None:
    file = directory / FILE
    if not file.exists():
        return None
    with file.open("rb") as handle:
        document = tomllib.load(handle)
    return parse_policy(document, FILE)


def _decimal(table: dict[str, Any], key: str, where: str, problems: list[str]) -> Decimal:
    value = table.get(key)
    try:
        number = Decimal(str(value))
        if not isinstance(value, str) or number < 0:
            raise InvalidOperation
        return number
    except InvalidOperation:
        problems.append(f"{where}: `{key}` must be a non-negative decimal in a string, "
                        f"such as \"0.50\"; got {value!r}")
        return Decimal(0)


def _money(table: dict[str, Any], key: str, where: str, problems: list[str]) -> Decimal:
    try:
        return parse_money(table.get(key))
    except Exception:
        problems.append(f"{where}: `{key}` must be money as a string with two decimals, "
                        f"such as \"1000000.00\"; got {table.get(key)!r}")
        return Decimal(0)


def parse_policy(document: dict[str, Any], where: str = FILE) -> FundPolicy:
    problems: list[str] = []
    terms = document.get("terms", {})
    convention = terms.get("day_count")
    if convention not in DAY_COUNTS:
        problems.append(f"{where} [terms]: `day_count` must be one of "
                        f"{', '.join(DAY_COUNTS)}; got {convention!r}")
    funds: dict[str, FundTerms] = {}
    for n, fund in enumerate(document.get("fund", []), start=1):
        at = f"{where} [[fund]] #{n}"
        agency = fund.get("agency")
        if not isinstance(agency, str) or agency in funds:
            problems.append(f"{at}: `agency` must be an agency code given once; got {agency!r}")
            continue
        funds[agency] = FundTerms(agency, _money(fund, "initial_advance", at, problems),
                                  _money(fund, "required_level", at, problems))
    policy = FundPolicy(
        version=str(document.get("version", "")),
        warning_share=_decimal(terms, "warning_share", f"{where} [terms]", problems),
        annual_rate=_decimal(terms, "annual_rate", f"{where} [terms]", problems),
        day_count=DAY_COUNTS.get(convention, 365),
        months_covered=_decimal(terms, "months_covered", f"{where} [terms]", problems),
        funds=funds)
    if policy.warning_share > 1:
        problems.append(f"{where} [terms]: `warning_share` is a share of the required level, "
                        f"at most \"1\"; got {policy.warning_share}")
    if problems:
        raise ReferenceDataError(problems)
    return policy
