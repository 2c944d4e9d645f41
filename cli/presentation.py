"""How the command line shows things: tables, money with thousands separators, JSON."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table


def money(value: Decimal) -> str:
    return f"{value:,.2f}"


def print_json(document: Any) -> None:
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2,
                                  default=_default).decode() + "\n")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
          numeric: Sequence[str] = ()) -> Table:
    t = Table(title=title, title_justify="left")
    for column in columns:
        t.add_column(column, justify="right" if column in numeric else "left")
    for row in rows:
        t.add_row(*(money(v) if isinstance(v, Decimal) else "" if v is None else str(v)
                    for v in row))
    return t


def console() -> Console:
    """stdout; when it is not a terminal, wide enough that ids are not cut."""
    out = Console(highlight=False, soft_wrap=False)
    return out if out.is_terminal else Console(highlight=False, soft_wrap=False, width=200)
