"""SQL migrations applied in order, each once, and recorded in ``schema_migrations``.

A service's migrations are the backbone's own (inbox, outbox) followed by the
files of its ``migrations/`` folder, named ``NNN_description.sql``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger(__name__)
BACKBONE = Path(__file__).parent / "migrations"


def migration_files(*folders: Path) -> list[tuple[str, Path]]:
    """(version, path) pairs: backbone versions are ``0NNN``, a service's ``1NNN``."""
    found: list[tuple[str, Path]] = []
    for prefix, folder in enumerate(folders):
        for path in sorted(folder.glob("[0-9][0-9][0-9]_*.sql")):
            found.append((f"{prefix}{path.name[:3]}", path))
    return found


async def apply_migrations(pool: asyncpg.Pool, *folders: Path) -> list[str]:
    """Apply the not-yet-applied migrations of `folders` (backbone first); return their names."""
    applied: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        # One migrator at a time per schema; the lock ends with the transaction.
        schema = await conn.fetchval("SELECT current_schema()")
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"]: r for r in await conn.fetch("SELECT * FROM schema_migrations")}
        for version, path in migration_files(BACKBONE, *folders):
            sql = path.read_text(encoding="utf-8")
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version]["checksum"] != checksum:
                    log.warning("migration.changed_after_apply", migration=path.name)
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                version, path.name, checksum,
            )
            applied.append(path.name)
            log.info("migration.applied", schema=schema, migration=path.name)
    return applied
