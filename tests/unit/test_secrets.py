"""The local installation's secrets (infra/secrets.py): generated once, kept, and readable
only by their owner."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from infra import secrets


def test_passwords_are_generated_once_and_private(tmp_path: Path) -> None:
    path = secrets.credentials_path(tmp_path)
    first = secrets.ensure_credentials(path, ["svc-filing", "agency-220100"])
    again = secrets.ensure_credentials(path, ["svc-filing", "agency-220100", "auditor"])
    assert set(first) == {"admin", "svc-filing", "agency-220100"}
    assert {k: again[k] for k in first} == first  # kept, not regenerated
    assert len({*again.values()}) == 4 and all(len(p) >= 24 for p in again.values())
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700


def test_rotation_changes_one_password(tmp_path: Path) -> None:
    path = secrets.credentials_path(tmp_path)
    before = secrets.ensure_credentials(path, ["svc-filing", "auditor"])
    secrets.rotate_password(path, "auditor")
    after = secrets.read_credentials(path)
    assert after["auditor"] != before["auditor"]
    assert after["svc-filing"] == before["svc-filing"]


def test_client_certificates_name_their_principal_and_chain_to_the_ca(tmp_path: Path) -> None:
    ca_file, broker_file = secrets.ensure_tls(tmp_path)
    assert secrets.ensure_client_certs(tmp_path, ["hospital-H1", "agency-A1"]) == 2
    assert secrets.ensure_client_certs(tmp_path, ["hospital-H1"]) == 0
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    cert_file, key_file = secrets.client_cert_paths(tmp_path, "hospital-H1")
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=hospital-H1"
    cert.verify_directly_issued_by(ca)
    for private in (key_file, broker_file, tmp_path / "secrets" / "tls" / "ca-key.pem"):
        assert private.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in broker_file.read_bytes()
