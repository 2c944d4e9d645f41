"""The portal's pure parts: password hashes and their file, amounts and times as shown,
and the SVG charts."""

from __future__ import annotations

import stat
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal

from services.portal import charts, users
from services.portal.labels import LABELS, label, money, shanghai


def test_users_are_stored_hashed_in_a_private_file(tmp_path) -> None:
    password = users.add(tmp_path, "220100")
    text = (tmp_path / users.USERS_FILE).read_text()
    assert password not in text and "$argon2id$" in text
    assert stat.S_IMODE((tmp_path / users.USERS_FILE).stat().st_mode) == 0o600
    user = users.authenticate(tmp_path, "220100", password)
    assert user is not None and user.agency == "220100" and not user.is_auditor
    assert users.authenticate(tmp_path, "220100", password + "x") is None
    assert users.authenticate(tmp_path, "220200", password) is None


def test_sync_makes_each_missing_login_once(tmp_path) -> None:
    first = users.sync(tmp_path, ["220100", "220200"])
    assert set(first) == {"220100", "220200", "auditor"}
    assert users.sync(tmp_path, ["220100", "220200"]) == {}
    auditor = users.authenticate(tmp_path, "auditor", first["auditor"])
    assert auditor is not None and auditor.is_auditor and auditor.may_see("220100")


def test_who_sees_what() -> None:
    agency = users.User("220100", "agency", "220100")
    assert agency.may_see("220100") and not agency.may_see("220200")


def test_the_session_key_is_generated_once_and_private(tmp_path) -> None:
    key = users.session_key(tmp_path)
    assert len(key) == 64 and users.session_key(tmp_path) == key
    assert stat.S_IMODE((tmp_path / users.SESSION_KEY_FILE).stat().st_mode) == 0o600


def test_amounts_have_thousands_separators_and_two_decimals() -> None:
    assert money(Decimal("1234567.5")) == "1,234,567.50"
    assert money("-11346.74") == "-11,346.74"
    assert money("0.00") == "0.00"
    # Decimal all the way: a float would show 0.30000000000000004 somewhere.
    assert money(Decimal("0.1") + Decimal("0.2")) == "0.30"


def test_times_are_shown_in_shanghai() -> None:
    assert shanghai(datetime(2026, 10, 31, 17, 30, tzinfo=UTC)) == "2026-11-01 01:30"
    assert shanghai("2026-10-03T09:15:00+08:00") == "2026-10-03 09:15"
    assert shanghai(date(2026, 10, 3)) == "2026-10-03"


def test_every_label_has_both_languages() -> None:
    assert all(zh and en for zh, en in LABELS.values())
    assert label("statement", "zh") == "清算单" and label("statement", "en") == "Statement"


def _titles(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]


def test_net_bars_carry_exact_figures() -> None:
    svg = charts.net_bars([("2026-09", "220100", Decimal("13234.27")),
                           ("2026-09", "220200", Decimal("-13234.27")),
                           ("2026-10", "220100", Decimal("-5.00"))], "nets")
    titles = _titles(svg)
    assert "2026-09 220100: 13,234.27" in titles
    assert "2026-09 220200: -13,234.27" in titles and "2026-10 220100: -5.00" in titles


def test_flow_diagram_has_a_band_per_party() -> None:
    svg = charts.flow_diagram([("220200", Decimal("100.00")), ("220281", Decimal("50.00"))],
                              "hub", [("220100", Decimal("150.00"))], "flows")
    root = ET.fromstring(svg)
    bands = [p for p in root.iter("{http://www.w3.org/2000/svg}path")
             if p.get("class") == "band"]
    assert len(bands) == 3
    assert "220281 → hub: 50.00" in _titles(svg)


def test_daily_bars_and_empty_charts() -> None:
    svg = charts.daily_bars([(date(2026, 10, 1), 3, Decimal("1200.50")),
                             (date(2026, 10, 2), 1, Decimal("-20.00"))], "daily")
    assert "2026-10-01: 3, 1,200.50" in _titles(svg)
    for empty in (charts.net_bars([], "x"), charts.flow_diagram([], "hub", [], "x"),
                  charts.daily_bars([], "x")):
        ET.fromstring(empty)
