"""Which secrets a piece of output gives away: the database roles' passwords this session
knows (shared.db.roles) and any URL that carries a password."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from shared.db import redact_url, roles

#: ``scheme://user:password@`` with a password that is not the redaction mark.
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^:/@\s\"']+:(?!\*\*\*@)[^@/\s\"']+@")


def known_passwords() -> dict[str, str]:
    """role -> password of every database role and Kafka principal whose password this
    process knows (Kafka principals as ``kafka:<principal>``)."""
    import json

    from shared.messaging.clients import credentials_file

    found = dict(roles.read_passwords())
    for role in roles.ROLES:
        password = roles.role_password(role)
        if password:
            found[role] = password
    try:
        kafka = json.loads(credentials_file().read_text()).get("principals", {})
    except (OSError, ValueError):
        kafka = {}
    found.update({f"kafka:{name}": entry["password"] for name, entry in kafka.items()})
    return found


def leaks(text: str, secrets: dict[str, str] | None = None) -> list[str]:
    """What in `text` should not be there: names of roles whose password occurs, and URLs
    that carry a password (shown redacted)."""
    secrets = known_passwords() if secrets is None else secrets
    found = [f"the password of {role}" for role, password in secrets.items()
             if password and password in text]
    found += [f"a URL with a password ({redact_url(m.group(0))})"
              for m in URL_WITH_PASSWORD.finditer(text)]
    return found


def leaks_in_files(paths: Iterable[Path], secrets: dict[str, str] | None = None
                   ) -> dict[str, list[str]]:
    """`leaks` of every file under `paths` (files or folders), by file."""
    secrets = known_passwords() if secrets is None else secrets
    found: dict[str, list[str]] = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            problems = leaks(file.read_text(errors="replace"), secrets)
            if problems:
                found[str(file)] = problems
    return found
