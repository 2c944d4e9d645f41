"""PostgreSQL plumbing: one schema per service, pools bound to it, ordered migrations,
a role per service (shared.db.roles)."""

from shared.db.admin import drop_database
from shared.db.migrations import apply_migrations
from shared.db.pool import create_pool, redact_url
from shared.db.roles import (
    AUDITOR,
    PORTAL,
    RolesError,
    prepare_database,
    role_url,
    service_database_url,
    service_role,
)

__all__ = ["AUDITOR", "PORTAL", "RolesError", "apply_migrations", "create_pool",
           "drop_database", "prepare_database", "redact_url", "role_url",
           "service_database_url", "service_role"]
