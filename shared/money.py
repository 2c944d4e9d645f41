"""Money: yuan as `Decimal` with exactly two decimals, never `float`.

On the wire money is a JSON string such as ``"1234.50"``; inside, a `Decimal`
quantized to the fen. Rounding is half up, as the contract prescribes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

FEN = Decimal("0.01")
ZERO = Decimal("0.00")
MONEY_PATTERN = r"^-?(0|[1-9][0-9]{0,11})\.[0-9]{2}$"
_MONEY_RE = re.compile(MONEY_PATTERN)
#: Amounts must stay below this: a trillion yuan in one field is already absurd.
MONEY_LIMIT = Decimal("1000000000000.00")


class MoneyError(ValueError):
    """A value that is not a contract money string; `code` is the documented reason code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def round_fen(value: Decimal) -> Decimal:
    """Round to the fen, half up (四舍五入)."""
    return value.quantize(FEN, rounding=ROUND_HALF_UP)


def parse_money(value: Any) -> Decimal:
    """Parse a contract money string (``"12.30"``) into a `Decimal`.

    JSON numbers, floats, three decimals and absurd magnitudes are refused.
    """
    if isinstance(value, Decimal):
        if value != value.quantize(FEN) or abs(value) >= MONEY_LIMIT:
            raise MoneyError("money_format", f"money must have two decimals and stay below "
                                             f"{MONEY_LIMIT}, got {value}")
        return value.quantize(FEN)
    if not isinstance(value, str):
        raise MoneyError("money_not_string", "money must be a JSON string with two decimals "
                                             f"such as \"12.30\", got {type(value).__name__}")
    if not _MONEY_RE.match(value):
        raise MoneyError("money_format", "money must be a string with exactly two decimals "
                                         f"such as \"12.30\", below {MONEY_LIMIT}; got {value!r}")
    return Decimal(value)


def non_negative_money(value: Any) -> Decimal:
    amount = parse_money(value)
    if amount < 0:
        raise MoneyError("money_negative", f"amount must not be negative, got {amount}")
    return amount


def format_money(value: Decimal) -> str:
    """Render a `Decimal` as a contract money string with exactly two decimals."""
    return str(value.quantize(FEN))


def to_fen(value: Decimal) -> int:
    """Integer fen, for checksums and compact storage."""
    return int((value.quantize(FEN) * 100).to_integral_value())


def from_fen(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(FEN)


def _pydantic(check: Callable[[Any], Decimal]) -> Callable[[Any], Decimal]:
    def validator(value: Any) -> Decimal:
        try:
            return check(value)
        except MoneyError as exc:
            raise PydanticCustomError(exc.code, str(exc)) from None

    return validator


Money = Annotated[
    Decimal,
    PlainValidator(_pydantic(parse_money)),
    PlainSerializer(format_money, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "examples": ["1234.50"]}),
]
"""A pydantic field type: two-decimal string on the wire, `Decimal` inside."""

NonNegativeMoney = Annotated[
    Decimal,
    PlainValidator(_pydantic(non_negative_money)),
    PlainSerializer(format_money, return_type=str, when_used="always"),
    WithJsonSchema({"type": "string", "pattern": r"^(0|[1-9][0-9]{0,11})\.[0-9]{2}$"}),
]
