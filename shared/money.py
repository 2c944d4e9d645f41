"""Money: yuan as `Decimal` with exactly two decimals, never `float`.

On the wire money is a JSON string such as ``"1234.50"``; inside, a `Decimal`
quantized to the fen. Rounding is half up, as the contract prescribes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from pydantic import GetPydanticSchema, WithJsonSchema
from pydantic_core import PydanticCustomError, core_schema

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


# ---- the pydantic field types -------------------------------------------------------------
#
# Parsing JSON (every event read from Kafka) is checked by pydantic-core itself: a strict
# string, then the money pattern (and, for non-negative amounts, the pattern without a
# minus), each step with its own reason code, and only the final `Decimal(text)` is a
# Python call. This accepts and refuses exactly what `parse_money` / `non_negative_money`
# do (tests/unit/test_money_fast_path.py compares them): Python's `$` also matches before a
# final newline, so the patterns allow one, and ``"-0.00"`` is not negative. Models built
# from Python values (the services' own events, with `Decimal`s) go through the Python
# functions as before. The error messages of the fast path are generic; `money_message`
# gives the exact one of the Python functions (`shared.events.decode` uses it).

#: Marks an error raised by the fast path (its ``ctx``), whose message `money_message` redoes.
MONEY_FIELD_CTX = "money_field"
_RUST_MONEY = r"^-?(0|[1-9][0-9]{0,11})\.[0-9]{2}\n?$"
_RUST_NON_NEGATIVE = r"^(-0\.00|(0|[1-9][0-9]{0,11})\.[0-9]{2})\n?$"


def _step(schema: core_schema.CoreSchema, code: str, message: str, negative_ok: bool
          ) -> core_schema.CoreSchema:
    return core_schema.custom_error_schema(
        schema, custom_error_type=code, custom_error_message=message,
        custom_error_context={MONEY_FIELD_CTX: "money" if negative_ok else "non_negative"})


def _money_schema(check: Callable[[Any], Decimal], negative_ok: bool) -> GetPydanticSchema:
    steps = [
        _step(core_schema.str_schema(strict=True), "money_not_string",
              "money must be a JSON string with two decimals such as \"12.30\"", negative_ok),
        _step(core_schema.str_schema(pattern=_RUST_MONEY), "money_format",
              "money must be a string with exactly two decimals such as \"12.30\", below "
              f"{MONEY_LIMIT}", negative_ok),
    ]
    if not negative_ok:
        steps.append(_step(core_schema.str_schema(pattern=_RUST_NON_NEGATIVE), "money_negative",
                           "amount must not be negative", negative_ok))
    steps.append(core_schema.no_info_plain_validator_function(Decimal))
    schema = core_schema.json_or_python_schema(
        json_schema=core_schema.chain_schema(steps),
        python_schema=core_schema.no_info_plain_validator_function(_pydantic(check)),
        # `format(value, ".2f")` called by pydantic-core: the same text as `format_money`
        # (both round as the decimal context says, and only ever see values that already
        # have two decimals), without a Python function call per amount.
        serialization=core_schema.format_ser_schema(".2f", when_used="always"))
    return GetPydanticSchema(lambda _type, _handler: schema)


def money_message(error: Mapping[str, Any]) -> str | None:
    """The exact message `parse_money` / `non_negative_money` give for the input of a money
    error of the fast path (an item of ``ValidationError.errors()``); None for other errors."""
    kind = (error.get("ctx") or {}).get(MONEY_FIELD_CTX)
    if kind is None:
        return None
    try:
        (parse_money if kind == "money" else non_negative_money)(error.get("input"))
    except MoneyError as exc:
        return str(exc)
    return None


Money = Annotated[
    Decimal,
    _money_schema(parse_money, negative_ok=True),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "examples": ["1234.50"]}),
]
"""A pydantic field type: two-decimal string on the wire, `Decimal` inside."""

NonNegativeMoney = Annotated[
    Decimal,
    _money_schema(non_negative_money, negative_ok=False),
    WithJsonSchema({"type": "string", "pattern": r"^(0|[1-9][0-9]{0,11})\.[0-9]{2}$"}),
]
