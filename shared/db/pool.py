"""asyncpg pools whose connections see one service's schema first.

Every service keeps its tables in its own schema (``filing``, ``settlement``,
``clearing``); nothing else touches them. The pool's ``search_path`` makes the
service's SQL schema-agnostic, so an audit replay can point the same code at a
fresh database.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import unquote, urlsplit

import asyncpg
import structlog

log = structlog.get_logger(__name__)
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


class MissingSchemaError(RuntimeError):
    """The service's schema is missing and its role may not create it."""


def url_user(url: str) -> str | None:
    user = urlsplit(url).username
    return unquote(user) if user else None


def _check_schema(schema: str) -> str:
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"schema name must be lower-case letters, digits and _, got {schema!r}")
    return schema


async def create_pool(
    database_url: str, schema: str, *, min_size: int = 1, max_size: int = 5,
    connect_timeout: float = 60.0,
) -> asyncpg.Pool:
    """A pool on `schema`, created if missing; retried with backoff while the server starts."""
    _check_schema(schema)
    delay = 0.2
    deadline = asyncio.get_running_loop().time() + connect_timeout
    while True:
        try:
            conn = await asyncpg.connect(database_url)
            try:
                # A prepared database (shared.db.roles) has the schema, owned by the
                # service's role, which may not create schemas: only create a missing one.
                if not await conn.fetchval(
                        "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema):
                    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            except asyncpg.UniqueViolationError:
                pass  # created concurrently by another process
            except asyncpg.InsufficientPrivilegeError as exc:
                raise MissingSchemaError(
                    f"database {urlsplit(database_url).path.strip('/')!r} has no schema "
                    f"{schema!r} and role {url_user(database_url)!r} may not create it: "
                    "prepare the database first (shared.db.prepare_database, "
                    "done by `clearinghouse infra up`, the demo, the bench and the tests)"
                ) from exc
            finally:
                await conn.close()
            pool = await asyncpg.create_pool(
                database_url, min_size=min_size, max_size=max_size,
                server_settings={"search_path": schema,
                                 "application_name": f"clearinghouse-{schema}"},
            )
            assert pool is not None
            return pool
        except (asyncpg.InvalidPasswordError,
                asyncpg.InvalidAuthorizationSpecificationError) as exc:
            # Permanent: say who was refused where, and where its password comes from.
            raise ConnectionError(
                f"PostgreSQL at {redact_url(database_url)} refused role "
                f"{url_user(database_url)!r}: {exc} (its password comes from "
                "DATABASE_PASSWORD_<ROLE> or the database roles file, see shared.db.roles)"
            ) from None
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise ConnectionError(
                    f"PostgreSQL at {redact_url(database_url)} did not answer within "
                    f"{connect_timeout:.0f} s ({exc}); is it running? try `clearinghouse infra up`"
                ) from exc
            log.warning("database.unavailable", error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for messages and reports (also
    ``password=`` in a query string)."""
    url = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)
    return re.sub(r"(?i)([?&](?:password|sslpassword)=)[^&]*", r"\1***", url)
