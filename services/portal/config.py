"""The portal's settings: the one place its database connection and secrets are found.

The portal reads the clearing schema through a read-only role. In production that role is
``ch_portal`` (``SELECT`` on the schema ``clearing``, and on ``settlement.settlement_ids``
for the search by person id); its URL is ``CLEARINGHOUSE_PORTAL_DATABASE_URL``, falling
back to ``DATABASE_URL`` where no separate role is set up (tests, the demo). Every
connection is also opened with ``default_transaction_read_only`` on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shared.config import load_settings
from shared.messaging.clients import cache_dir

#: The PostgreSQL role the portal is meant to connect as (docs/portal.md).
PORTAL_ROLE = "ch_portal"
DEFAULT_PORT = 8710


def portal_database_url() -> str:
    """The portal's connection URL: ``CLEARINGHOUSE_PORTAL_DATABASE_URL``, else
    ``DATABASE_URL``'s server and database as the read-only role ``ch_portal``
    (shared.db.roles; as ``DATABASE_URL`` says where the roles are not set up)."""
    from shared.db.roles import role_url

    explicit = os.environ.get("CLEARINGHOUSE_PORTAL_DATABASE_URL")
    return explicit or role_url(load_settings().database_url, PORTAL_ROLE)


def secrets_dir() -> Path:
    return cache_dir() / "secrets"


@dataclass(frozen=True)
class PortalSettings:
    database_url: str
    kafka_bootstrap_servers: str
    topic_prefix: str
    secrets: Path
    #: Cookies only over https (``Secure``): on when the portal is served over TLS or
    #: ``CLEARINGHOUSE_PORTAL_SECURE_COOKIES=1`` (behind a TLS-terminating proxy).
    secure_cookies: bool = False


def load_portal_settings(**overrides: object) -> PortalSettings:
    settings = load_settings()
    values: dict[str, object] = {
        "database_url": portal_database_url(),
        "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
        "topic_prefix": settings.topic_prefix,
        "secrets": secrets_dir(),
        "secure_cookies": os.environ.get("CLEARINGHOUSE_PORTAL_SECURE_COOKIES") == "1",
    }
    values.update(overrides)
    return PortalSettings(**values)  # type: ignore[arg-type]
