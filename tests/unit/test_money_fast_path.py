"""The money types' fast JSON path (pydantic-core checks) accepts and refuses exactly what the
Python validators `parse_money` / `non_negative_money` do, with the same reason codes and,
through `money_message`, the same messages."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Annotated, Any

import orjson
import pytest
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError

from shared.money import (
    Money,
    NonNegativeMoney,
    _pydantic,
    money_message,
    non_negative_money,
    parse_money,
)


class _Slow(BaseModel):
    """The types as they were: a Python validator for every value."""

    model_config = ConfigDict(strict=True)
    a: Annotated[Decimal, PlainValidator(_pydantic(parse_money))]
    n: Annotated[Decimal, PlainValidator(_pydantic(non_negative_money))]
    o: Annotated[Decimal, PlainValidator(_pydantic(non_negative_money))] | None = None


class _Fast(BaseModel):
    model_config = ConfigDict(strict=True)
    a: Money
    n: NonNegativeMoney
    o: NonNegativeMoney | None = None


FIXED: list[Any] = [
    "0.00", "-0.00", "00.00", "0.0", "1.2", "1.234", "+1.00", " 1.00", "1.00 ", "1.00\n",
    "1.00\n\n", "\n1.00", "1.00\r", "1.00\t", "1,00", "1e2", "1E+2", "999999999999.99",
    "1000000000000.00", "-999999999999.99", "-1000000000000.00", "-0.01", "0.1", ".50",
    "5.", "١.٠٠", "１.００", "NaN", "Infinity", "-", "", "-0.05", "-00.00", "012.30",
    "123456789012.34", "12345678901.23", "-0.00\n", "0.00\x00", "1_000.00", "{x}", "{0}",
    "1.00{}",
    0, 1, -1, 12.3, 1.0, 1e300, 10**30, -(10**30), None, True, False, [], {}, ["1.00"],
    {"a": "1.00"},
]


def _fuzz(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    alphabet = "0123456789.-+ \n1e"
    def number() -> str:
        sign = "-" if rng.random() < 0.3 else ""
        places = rng.choice((1, 2, 3))
        return f"{sign}{rng.randint(0, 10**13)}.{rng.randint(0, 10**places - 1):0{places}d}"

    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
            for _ in range(count)] + [number() for _ in range(count)]


def _outcome(model: type[BaseModel], field: str, value: Any, *, fast: bool
             ) -> tuple[Any, ...]:
    document = {"a": "1.00", "n": "1.00", field: value}
    raw = (orjson.dumps(document) if not isinstance(value, int) or abs(value) < 2**63
           else orjson.dumps(document | {field: 0}).replace(b'"%s":0' % field.encode(),
                                                           b'"%s":%d' % (field.encode(), value)))
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        message = money_message(first) if fast else first["msg"]
        return ("error", len(errors), first["type"], first["loc"], message)
    got = getattr(parsed, field)
    return ("ok", got if got is None else (str(got), got.as_tuple()))


@pytest.mark.parametrize("field", ["a", "n", "o"])
def test_fast_path_matches_the_python_validators(field: str) -> None:
    for value in FIXED + _fuzz(3000):
        slow = _outcome(_Slow, field, value, fast=False)
        fast = _outcome(_Fast, field, value, fast=True)
        assert fast == slow, (field, value)


def test_python_values_still_use_the_python_validators() -> None:
    assert _Fast(a=Decimal("-1.50"), n="2.00").a == Decimal("-1.50")
    for bad, code in ((Decimal("1.234"), "money_format"), (1.5, "money_not_string"),
                      (Decimal("-1.00"), "money_negative")):
        with pytest.raises(ValidationError) as raised:
            _Fast(a="1.00", n=bad)
        assert raised.value.errors()[0]["type"] == code
