"""The documentation keeps up with the code: reason codes listed, schemas generated."""

from __future__ import annotations

import re

from shared.config import REPO_ROOT
from tools.docs import render, schema_documents

DOCS = REPO_ROOT / "docs"


def _codes_in_code(*paths: str) -> set[str]:
    found: set[str] = set()
    for path in paths:
        text = (REPO_ROOT / path).read_text()
        found |= set(re.findall(r'Rejection\(\s*"([a-z_]+)"', text))
        found |= set(re.findall(r'MoneyError\(\s*"([a-z_]+)"', text))
        found |= set(re.findall(r'return "([a-z_]+)", message', text))
    return found


def test_every_contract_reason_code_is_documented() -> None:
    codes = _codes_in_code("shared/events/__init__.py", "shared/money.py",
                           "shared/messaging/processing.py")
    assert {"not_json", "money_not_string", "processing_failed"} <= codes
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", (DOCS / "reason-codes.md").read_text(),
                                re.MULTILINE))
    assert codes - {"invalid_field"} <= documented, codes - documented


def test_generated_json_schemas_are_current() -> None:
    """`clearinghouse docs` regenerates them; this fails when a model changed without it."""
    for name, document in schema_documents().items():
        path = DOCS / "schemas" / name
        assert path.exists(), f"{path} missing: run `clearinghouse docs`"
        assert path.read_text(encoding="utf-8") == render(document), (
            f"{path} is stale: run `clearinghouse docs`")


def test_money_in_schemas_is_a_two_decimal_string() -> None:
    schema = schema_documents()["settlement.events/settlement.completed.json"]
    text = render(schema)
    assert '"pattern": "^-?(0|[1-9][0-9]{0,11})\\\\.[0-9]{2}$"' in text
