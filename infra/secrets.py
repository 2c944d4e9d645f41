"""Secrets of a local installation, generated on first use and kept in ``<cache>/secrets/``
(a directory only its owner may enter; every file mode 0600; never in the repository):

- ``kafka-credentials.json``: the Kafka password of every principal (``admin``, the
  services, hospitals, agencies, the auditor), read by ``shared.messaging.clients``;
- ``tls/``: a certificate authority made for this installation (``ca.pem``) and the
  broker's certificate and key (``broker.pem``), for the TLS listener.

Passwords come from ``secrets.token_urlsafe``; certificates and keys from the
``cryptography`` library. Nothing here is printed or logged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.messaging.clients import ADMIN

SECRETS = "secrets"
CREDENTIALS = "kafka-credentials.json"


def secrets_dir(cache: Path) -> Path:
    path = cache / SECRETS
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes | str) -> None:
    """Write a file that only its owner can read, atomically (never a moment world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def credentials_path(cache: Path) -> Path:
    return secrets_dir(cache) / CREDENTIALS


def read_credentials(path: Path) -> dict[str, str]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return {name: entry["password"] for name, entry in document.get("principals", {}).items()}


def ensure_credentials(path: Path, principals: Iterable[str]) -> dict[str, str]:
    """Every principal's password, generating those that are missing (existing ones are
    kept: a principal's password changes only when it is rotated). Returns all of them."""
    known = read_credentials(path)
    wanted = [ADMIN, *principals]
    missing = [p for p in dict.fromkeys(wanted) if p not in known]
    if missing or not path.exists():
        for name in missing:
            known[name] = secrets.token_urlsafe(24)
        document = {"principals": {name: {"password": known[name]} for name in sorted(known)}}
        write_private(path, json.dumps(document, indent=1) + "\n")
    return known


def rotate_password(path: Path, principal: str) -> str:
    known = read_credentials(path)
    known[principal] = secrets.token_urlsafe(24)
    document = {"principals": {name: {"password": known[name]} for name in sorted(known)}}
    write_private(path, json.dumps(document, indent=1) + "\n")
    return known[principal]


def admin_password(cache: Path) -> str:
    return ensure_credentials(credentials_path(cache), [])[ADMIN]


# ---- TLS ------------------------------------------------------------------------------

def tls_dir(cache: Path) -> Path:
    return secrets_dir(cache) / "tls"


def client_cert_paths(cache: Path, principal: str) -> tuple[Path, Path]:
    folder = tls_dir(cache) / "clients"
    return folder / f"{principal}.pem", folder / f"{principal}.key"


def ensure_client_certs(cache: Path, principals: Iterable[str]) -> int:
    """A client certificate (CN = the principal) and key for each principal, issued by the
    installation's CA, for the mutual-TLS listener. Existing ones are kept; returns how
    many were made."""
    ca_file, _ = ensure_tls(cache)
    folder = tls_dir(cache) / "clients"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
    ca_key = serialization.load_pem_private_key((tls_dir(cache) / "ca-key.pem").read_bytes(),
                                                password=None)
    made = 0
    now = dt.datetime.now(dt.UTC)
    pem = serialization.Encoding.PEM
    for principal in principals:
        cert_file, key_file = client_cert_paths(cache, principal)
        if cert_file.exists() and key_file.exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, principal)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        write_private(key_file, key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        write_private(cert_file, cert.public_bytes(pem))
        made += 1
    return made


def ensure_tls(cache: Path) -> tuple[Path, Path]:
    """(ca.pem, broker.pem): a CA of this installation and the broker's key and
    certificate chain (PEM, PKCS#8), made once; valid for 127.0.0.1 and localhost."""
    folder = tls_dir(cache)
    ca_file, broker_file = folder / "ca.pem", folder / "broker.pem"
    if ca_file.exists() and broker_file.exists():
        return ca_file, broker_file
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clearinghouse local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clearinghouse broker")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    write_private(folder / "ca-key.pem", ca_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    write_private(ca_file, ca_cert.public_bytes(pem))
    write_private(broker_file, key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    return ca_file, broker_file
