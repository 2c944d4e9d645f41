"""Money: yuan as `Decimal` with exactly two decimals, never `float`.

On the wire money is a JSON string such as ``"1234.50"``; inside, a `Decimal`
quantized to the fen. Rounding is half up, as the contract prescribes.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

FEN = Decimal("0.01")
ZERO = Decimal("0.00")
MONEY_PATTERN = r"^-?(0|[1-9][0-9]{0,12})\.[0-9]{2}$"
_MONEY_RE = re.compile(MONEY_PATTERN)
#: Largest amount accepted in one field: a trillion yuan is already absurd.
MONEY_LIMIT = Decimal("1000000000000.00")


class MoneyError(ValueError):
    """A value that is not a contract money string."""


def round_fen(value: Decimal) -> Decimal:
    """Round to the fen, half up (四舍五入)."""
    return value.quantize(FEN, rounding=ROUND_HALF_UP)


def parse_money(value: Any) -> Decimal:
    """Parse a contract money string (``"12.30"``) into a `Decimal`.

    JSON numbers, floats, three decimals and absurd magnitudes are refused.
    """
    if isinstance(value, Decimal):
        if value != value.quantize(FEN) or abs(value) >= MONEY_LIMIT:
            raise MoneyError(f"money must have at most two decimals and be below {MONEY_LIMIT}")
        return value.quantize(FEN)
    if not isinstance(value, str):
        raise MoneyError(
            f"money must be a JSON string with two decimals such as \"12.30\", got {type(value).__name__}"
        )
    if not _MONEY_RE.match(value):
        raise MoneyError(f"money must be a string with exactly two decimals such as \"12.30\", got {value!r}")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already guards this
        raise MoneyError(f"not a decimal amount: {value!r}") from exc
    return amount


def format_money(value: Decimal) -> str:
    """Render a `Decimal` as a contract money string with exactly two decimals."""
    return str(value.quantize(FEN))


def to_fen(value: Decimal) -> int:
    """Integer fen, for checksums and compact storage."""
    return int((value.quantize(FEN) * 100).to_integral_value())


def from_fen(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(FEN)


Money = Annotated[
    Decimal,
    BeforeValidator(parse_money),
    PlainSerializer(format_money, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "examples": ["1234.50"]}),
]
"""A pydantic field type: two-decimal string on the wire, `Decimal` inside."""


def non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise MoneyError(f"amount must not be negative, got {format_money(value)}")
    return value


NonNegativeMoney = Annotated[
    Decimal,
    BeforeValidator(lambda v: non_negative(parse_money(v))),
    PlainSerializer(format_money, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": r"^(0|[1-9][0-9]{0,12})\.[0-9]{2}$"}),
]
