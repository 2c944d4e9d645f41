"""The fault and bad-input suite (docs/reliability.md): every test here is marked ``infra``
(real Kafka and PostgreSQL; the hypothesis properties run without them but belong to the
suite) and ``faults``, so ``-m faults`` runs the suite and ``-m "not faults"`` skips it."""

from __future__ import annotations

import pathlib

import pytest

HERE = pathlib.Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the fault and bad-input suite (tests/faults)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.infra)
            item.add_marker(pytest.mark.faults)
            _mark_known_gap(item)


#: Cases that show defects not fixed yet (docs/reliability.md, "Known gaps"). They stay in
#: the suite so that each is seen, and fixing one turns its xfail into a pass to clean up.
KNOWN_GAPS: dict[str, tuple[bool, str]] = {}


def _mark_known_gap(item: pytest.Item) -> None:
    for name, (strict, reason) in KNOWN_GAPS.items():
        if item.name == name or item.name.startswith(name + "["):
            item.add_marker(pytest.mark.xfail(reason=reason, strict=strict))
