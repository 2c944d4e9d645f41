"""Participants' key files (shared.participant_keys): generated once, rotated, revoked;
private keys readable only by their owner. Files in a temporary directory, no servers."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

from shared import inbound, participant_keys, signatures
from shared.participant_keys import Signer, ensure_key_pairs, read_registry, revoke, rotate

NOW = datetime(2026, 12, 1, tzinfo=UTC)
WHO = ["hospital-H220102001", "agency-220100"]


def test_ensure_key_pairs_is_idempotent_and_private_keys_are_the_owners_only(
        tmp_path: Path) -> None:
    registry, secrets = tmp_path / "keys.toml", tmp_path / "keys"
    made = ensure_key_pairs(WHO, registry_path=registry, directory=secrets, now=NOW)
    assert [k.kid for k in made] == ["hospital-H220102001.1", "agency-220100.1"]
    assert ensure_key_pairs(WHO, registry_path=registry, directory=secrets, now=NOW) == []
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for file in secrets.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    text = registry.read_text()
    assert "PRIVATE" not in text and '"d"' not in text
    assert read_registry(registry).keys == {k.kid: k for k in made}


def test_rotation_keeps_the_old_key_valid_until_it_is_revoked(tmp_path: Path) -> None:
    registry, secrets = tmp_path / "keys.toml", tmp_path / "keys"
    ensure_key_pairs(WHO, registry_path=registry, directory=secrets, now=NOW)
    signer = Signer(registry, secrets)
    value = inbound.envelope("clearing.statement_confirmed", {"agency": "220100"},
                             id="c1", source="agency/220100", time="2026-11-03T09:00:00+08:00")
    old = signer.sign(value, "agency/220100")
    new_key = rotate("agency-220100", registry_path=registry, directory=secrets, now=NOW)
    assert new_key.kid == "agency-220100.2"
    assert signer.kid_for("agency/220100") == "agency-220100.2"
    keys = participant_keys.current_registry(registry)
    signatures.verify(value, old.encode(), "agency/220100", keys, NOW)  # still valid
    revoke("agency-220100.1", registry_path=registry, now=NOW)
    keys = participant_keys.current_registry(registry)  # read again: the file changed
    assert keys.get("agency-220100.1").revoked_at == NOW
    signatures.verify(value, old.encode(), "agency/220100", keys,
                      datetime(2026, 11, 30, tzinfo=UTC))  # appended before: valid
    try:
        signatures.verify(value, old.encode(), "agency/220100", keys, NOW)
    except signatures.Rejection as rejection:
        assert rejection.code == "key_revoked"
    else:
        raise AssertionError("a revoked key verified")
    # ensure_key_pairs gives a participant whose keys are all revoked a new one.
    revoke("agency-220100.2", registry_path=registry, now=NOW)
    [made] = ensure_key_pairs(WHO, registry_path=registry, directory=secrets, now=NOW)
    assert made.kid == "agency-220100.3"


def test_signing_can_be_switched_off_for_the_bench_only(tmp_path: Path, monkeypatch) -> None:
    value = inbound.envelope("filing.revoked", {}, id="x", source="agency/220100",
                             time="2026-11-03T09:00:00+08:00")
    monkeypatch.setenv("CLEARINGHOUSE_SIGNATURES", "off")
    assert inbound.signature_headers(value) == []
    monkeypatch.delenv("CLEARINGHOUSE_SIGNATURES")
    assert signatures.enabled()
    assert inbound.signature_headers(b"not json", required=False) == []
