"""PostgreSQL plumbing: one schema per service, pools bound to it, ordered migrations."""

from shared.db.admin import drop_database
from shared.db.migrations import apply_migrations
from shared.db.pool import create_pool, redact_url

__all__ = ["apply_migrations", "create_pool", "drop_database", "redact_url"]
