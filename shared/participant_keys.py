"""Participants' key pairs on disk: the public registry and the local private keys.

- The registry (``CLEARINGHOUSE_PARTICIPANT_KEYS``, default
  ``<cache>/secrets/participant-keys.toml``) lists every public key: participant, ``kid``,
  key, ``valid_from`` and, once revoked, ``revoked_at``. The services read it (again
  whenever the file changes); it holds no secret.
- Private keys (``CLEARINGHOUSE_PARTICIPANT_SECRETS``, default ``<cache>/secrets/keys/``)
  are PKCS#8 PEM files ``<kid>.pem``, mode 0600 in a directory mode 0700. They never go
  into the repository; in production each participant keeps its own and registers only
  the public key (reference/participants.md).

`ensure_key_pairs` generates what is missing (idempotent), `rotate` adds a newer key (the
old one stays valid until revoked), `revoke` marks a key revoked from now on.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from joserfc.jwk import OKPKey

from shared.messaging.clients import agency_principal, cache_dir, hospital_principal
from shared.signatures import KeyRegistry, PublicKey, participant_of


class KeyFileError(RuntimeError):
    """A key file is missing or unreadable; the message names the file, never a key."""


def registry_file() -> Path:
    env = os.environ.get("CLEARINGHOUSE_PARTICIPANT_KEYS")
    return Path(env).expanduser() if env else cache_dir() / "secrets" / "participant-keys.toml"


def secrets_dir() -> Path:
    env = os.environ.get("CLEARINGHOUSE_PARTICIPANT_SECRETS")
    return Path(env).expanduser() if env else cache_dir() / "secrets" / "keys"


def participants(reference_dir: str | Path | None = None) -> list[str]:
    """Every hospital and agency of the reference data, as participant ids."""
    from shared.reference import load_reference

    reference = load_reference(reference_dir)
    return ([hospital_principal(code) for code in sorted(reference.hospitals)]
            + [agency_principal(code) for code in sorted(reference.agencies)])


# ---- the registry file ----------------------------------------------------------------------


def _time(value: object) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"time without an offset: {value!r}")
    return moment


def read_registry(path: Path | None = None) -> KeyRegistry:
    """The registry in `path` (default `registry_file()`); empty when there is no file."""
    path = path or registry_file()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return KeyRegistry()
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read the participant key registry {path}: {exc}") from None
    keys = []
    for n, entry in enumerate(document.get("key", [])):
        try:
            revoked = entry.get("revoked_at")
            keys.append(PublicKey(
                participant=str(entry["participant"]), kid=str(entry["kid"]),
                public_key=str(entry["public_key"]), valid_from=_time(entry["valid_from"]),
                revoked_at=_time(revoked) if revoked else None))
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyFileError(f"{path}: key #{n + 1} is malformed: {exc!r}") from None
    return KeyRegistry(keys)


def write_registry(registry: KeyRegistry, path: Path | None = None) -> None:
    """Write `registry` to `path` atomically (a reader sees the old or the new file)."""
    path = path or registry_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = ["# Public keys of the clearing house's participants (no secrets here).",
             "# Written by `clearinghouse participants keys`; docs/security.md.", ""]
    for key in sorted(registry.keys.values(), key=lambda k: (k.participant, k.valid_from)):
        lines += ["[[key]]", f'participant = "{key.participant}"', f'kid = "{key.kid}"',
                  f'public_key = "{key.public_key}"',
                  f'valid_from = "{key.valid_from.isoformat()}"']
        if key.revoked_at is not None:
            lines.append(f'revoked_at = "{key.revoked_at.isoformat()}"')
        lines.append("")
    temporary = path.with_name(path.name + ".tmp")
    # public keys, but in the secrets folder, where every file is its owner's only: no one
    # else may read (or, above all, change) which keys the services trust
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines))
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


_cache: dict[Path, tuple[tuple[int, int, int], KeyRegistry]] = {}


def current_registry(path: Path | None = None) -> KeyRegistry:
    """The registry, read again only when the file changed (a revocation takes effect in
    running services with their next batch)."""
    path = path or registry_file()
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except FileNotFoundError:
        stamp = (0, 0, 0)
    cached = _cache.get(path)
    if cached is None or cached[0] != stamp:
        cached = _cache[path] = (stamp, read_registry(path))
    return cached[1]


# ---- private keys -----------------------------------------------------------------------------


def _write_private(directory: Path, kid: str, key: OKPKey) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    descriptor = os.open(directory / f"{kid}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key.as_pem(private=True))


def private_key_file(kid: str, directory: Path | None = None) -> Path:
    return (directory or secrets_dir()) / f"{kid}.pem"


_private: dict[Path, OKPKey] = {}


def private_key(kid: str, directory: Path | None = None) -> OKPKey:
    file = private_key_file(kid, directory)
    key = _private.get(file)
    if key is None:
        try:
            key = _private[file] = OKPKey.import_key(file.read_bytes())
        except FileNotFoundError:
            raise KeyFileError(f"no private key for kid {kid!r}: {file} does not exist "
                               f"(run `clearinghouse participants keys`)") from None
    return key


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _new_key(registry: KeyRegistry, participant: str, directory: Path,
             now: datetime) -> PublicKey:
    serial = 1 + max((int(k.kid.rsplit(".", 1)[1]) for k in registry.of(participant)
                      if k.kid.rsplit(".", 1)[-1].isdigit()), default=0)
    kid = f"{participant}.{serial}"
    key = OKPKey.generate_key("Ed25519")
    _write_private(directory, kid, key)
    public = PublicKey(participant, kid, str(key.as_dict(private=False)["x"]), now)
    registry.keys[kid] = public
    return public


def ensure_key_pairs(wanted: Iterable[str], *, registry_path: Path | None = None,
                     directory: Path | None = None, now: datetime | None = None
                     ) -> list[PublicKey]:
    """Give every participant of `wanted` a key that is not revoked and whose private half
    is here; return the keys made (none when everything exists: idempotent)."""
    registry_path = registry_path or registry_file()
    directory = directory or secrets_dir()
    registry = read_registry(registry_path)
    made = []
    for participant in wanted:
        current = registry.current(participant)
        if current is None or not private_key_file(current.kid, directory).exists():
            made.append(_new_key(registry, participant, directory, now or _now()))
    if made or not registry_path.exists():
        write_registry(registry, registry_path)
    return made


def rotate(participant: str, *, registry_path: Path | None = None,
           directory: Path | None = None, now: datetime | None = None) -> PublicKey:
    """A new key for `participant`; its older keys stay valid until revoked."""
    registry_path = registry_path or registry_file()
    registry = read_registry(registry_path)
    key = _new_key(registry, participant, directory or secrets_dir(), now or _now())
    write_registry(registry, registry_path)
    return key


def revoke(kid: str, *, registry_path: Path | None = None,
           now: datetime | None = None) -> PublicKey:
    """Mark `kid` revoked from `now` on: records appended to the log from then on fail."""
    registry_path = registry_path or registry_file()
    registry = read_registry(registry_path)
    key = registry.get(kid)
    if key is None:
        raise KeyFileError(f"no key {kid!r} in {registry_path}")
    if key.revoked_at is None:
        key = registry.keys[kid] = replace(key, revoked_at=now or datetime.now(UTC))
        write_registry(registry, registry_path)
    return key


class Signer:
    """Signs value bytes for the participant named in their ``source``, with its newest
    key that is not revoked (or a `kid` given), from the local private keys."""

    def __init__(self, registry_path: Path | None = None, directory: Path | None = None):
        self.registry_path = registry_path
        self.directory = directory

    def kid_for(self, source: str) -> str:
        participant = participant_of(source)
        if participant is None:
            raise KeyFileError(f"source {source!r} names no participant (hospital/<code>, "
                               f"agency/<code>)")
        key = current_registry(self.registry_path or registry_file()).current(participant)
        if key is None:
            raise KeyFileError(f"no key for {participant} in "
                               f"{self.registry_path or registry_file()} "
                               f"(run `clearinghouse participants keys`)")
        return key.kid

    def sign(self, value: bytes, source: str, kid: str | None = None) -> str:
        from shared.signatures import sign

        kid = kid or self.kid_for(source)
        return sign(value, private_key(kid, self.directory), kid)
