"""Portal users: one per agency (its code is the login) and the auditor, with argon2id
password hashes, in ``<cache>/secrets/portal-users.json`` (mode 0600, never in the
repository); and the session key in ``<cache>/secrets/portal-session.key``."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

AUDITOR = "auditor"
USERS_FILE = "portal-users.json"
SESSION_KEY_FILE = "portal-session.key"

_hasher = PasswordHasher()
#: Verified against when the login is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("no such user")


@dataclass(frozen=True)
class User:
    """Who is logged in: an agency (it sees only its own data) or the auditor (all)."""

    login: str
    role: str  # "agency" | "auditor"
    agency: str | None = None

    @property
    def is_auditor(self) -> bool:
        return self.role == AUDITOR

    def may_see(self, agency: str) -> bool:
        return self.is_auditor or self.agency == agency


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (created 0600, never briefly wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    users: dict[str, dict[str, str]] = document.get("users", {})
    return users


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def add(secrets_dir: Path, login: str, password: str | None = None) -> str:
    """Add or reset a user (an agency code, or ``auditor``); return its password."""
    password = password or generate_password()
    path = secrets_dir / USERS_FILE
    users = _read(path)
    role = AUDITOR if login == AUDITOR else "agency"
    users[login] = {"role": role, "agency": "" if role == AUDITOR else login,
                    "password_hash": _hasher.hash(password)}
    write_private(path, json.dumps({"users": users}, indent=2, sort_keys=True) + "\n")
    return password


def logins(secrets_dir: Path) -> list[str]:
    return sorted(_read(secrets_dir / USERS_FILE))


def sync(secrets_dir: Path, agencies: list[str]) -> dict[str, str]:
    """A user for every agency (and the auditor) that has none; the new passwords."""
    known = set(logins(secrets_dir))
    return {login: add(secrets_dir, login) for login in [*agencies, AUDITOR]
            if login not in known}


def authenticate(secrets_dir: Path, login: str, password: str) -> User | None:
    entry = _read(secrets_dir / USERS_FILE).get(login)
    try:
        _hasher.verify(entry["password_hash"] if entry else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if entry is None:
        return None
    return User(login, entry["role"], entry.get("agency") or None)


def session_key(secrets_dir: Path) -> str:
    """The key that signs session cookies: generated once, kept mode 0600."""
    path = secrets_dir / SESSION_KEY_FILE
    if not path.exists():
        write_private(path, secrets.token_hex(32) + "\n")
    return path.read_text(encoding="utf-8").strip()
