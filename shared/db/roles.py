"""PostgreSQL roles: each service its own, read-only ones for the audit and the portal.

=================  =====================================================================
role               may
=================  =====================================================================
``ch_filing``      own schema ``filing`` (create, read, write its tables); nothing else
``ch_settlement``  own schema ``settlement``; nothing else
``ch_clearing``    own schema ``clearing``; nothing else
``ch_auditor``     SELECT on every table of the three service schemas; nothing else
``ch_portal``      SELECT on the tables of ``clearing`` (the query tables); nothing else
``clearinghouse``  the admin: creates and drops databases, prepares them (a member of the
                   service roles, so it may hand them their schemas)
=================  =====================================================================

The roles are cluster-wide and made by ``clearinghouse infra up`` (as the superuser); each
database the services run in is prepared once by the admin (`prepare_database`,
idempotent): its schemas created and owned by their service's role, the read-only grants
given. A service never gets a URL of its own: `role_url` derives it from ``DATABASE_URL``
(which names the server and the database) and the role, whose password comes from

1. ``DATABASE_PASSWORD_<ROLE>`` (``DATABASE_PASSWORD_CH_FILING``...): production gives each
   process its own password this way;
2. else the roles file ``CLEARINGHOUSE_PG_ROLES_FILE`` (default
   ``<cache>/secrets/postgres-roles.json``), written mode 0600 by ``infra up`` with passwords
   from :mod:`secrets`; a file that others may read is refused.

A ``DATABASE_URL`` that already names the role is used as it is. Where no password of the
role is known at all (no file, no variable: a server set up by other means, such as
``docker compose``), the URL is used unchanged: the process connects as ``DATABASE_URL``
says. No password is ever logged, put in an error message or on a command line; the
server is given SCRAM verifiers, never a password.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import structlog

from shared.config import cache_dir
from shared.db.pool import url_user

log = structlog.get_logger(__name__)

#: The admin role (``infra up`` makes it): databases, and preparing them.
ADMIN = "clearinghouse"
#: service name -> its role; the service's schema has the service's name.
SERVICE_ROLES = {"filing": "ch_filing", "settlement": "ch_settlement",
                 "clearing": "ch_clearing"}
#: Read-only on every service schema (``clearinghouse audit``).
AUDITOR = "ch_auditor"
#: Read-only on the clearing schema (the web portal, ``clearinghouse clearing ...``).
PORTAL = "ch_portal"
#: Schemas each read-only role may read.
READERS = {AUDITOR: tuple(SERVICE_ROLES), PORTAL: ("clearing",)}
ROLES = (*SERVICE_ROLES.values(), AUDITOR, PORTAL)

_SCRAM_ITERATIONS = 4096


class RolesError(RuntimeError):
    """A role's password is unknown or its file unsafe: says where, never a secret."""


def service_role(service: str) -> str:
    try:
        return SERVICE_ROLES[service]
    except KeyError:
        raise ValueError(f"no database role for {service!r}; one of "
                         f"{', '.join(SERVICE_ROLES)}") from None


def roles_file(cache: Path | None = None) -> Path:
    """The roles file: of `cache` when given (``infra up``), else
    ``CLEARINGHOUSE_PG_ROLES_FILE``, else ``<cache>/secrets/postgres-roles.json``."""
    if cache is not None:
        return Path(cache) / "secrets" / "postgres-roles.json"
    env = os.environ.get("CLEARINGHOUSE_PG_ROLES_FILE")
    return Path(env).expanduser() if env else cache_dir() / "secrets" / "postgres-roles.json"


def password_variable(role: str) -> str:
    return "DATABASE_PASSWORD_" + role.upper()


def read_passwords(path: Path | None = None) -> dict[str, str]:
    """role -> password from the roles file ({} when there is none)."""
    path = path or roles_file()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise RolesError(f"the database roles file {path} may be read by others (mode "
                         f"{stat.S_IMODE(mode):o}): refusing it; chmod 600 it")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        roles = document["roles"]
        return {str(k): str(v) for k, v in roles.items()}
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise RolesError(f"cannot read the database roles file {path}: "
                         f"{type(exc).__name__}") from None


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (never, even briefly, by others)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_passwords(path: Path | None = None,
                     roles: Iterable[str] = ROLES) -> dict[str, str]:
    """The roles file's passwords, with one generated (:mod:`secrets`) for each role
    missing, written back (mode 0600). Safe to call from several processes at once."""
    path = path or roles_file()
    with _locked(path):
        known = read_passwords(path)
        missing = [r for r in roles if r not in known]
        if missing:
            known |= {role: secrets.token_urlsafe(32) for role in missing}
            _write_private(path, json.dumps({"roles": known}, indent=2) + "\n")
    return known


def role_password(role: str) -> str | None:
    """The role's password: ``DATABASE_PASSWORD_<ROLE>``, else the roles file, else None."""
    return os.environ.get(password_variable(role)) or read_passwords().get(role)


def with_credentials(url: str, user: str, password: str | None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    login = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{login}@{host}"))


def role_url(database_url: str, role: str) -> str:
    """`database_url`'s server and database, as `role` (see the module's docstring)."""
    if url_user(database_url) == role:
        return database_url
    password = role_password(role)
    if password is None:
        if read_passwords() or any(os.environ.get(password_variable(r)) for r in ROLES):
            raise RolesError(f"no password for database role {role!r}: not in "
                             f"{roles_file()} and {password_variable(role)} is not set "
                             "(run `clearinghouse infra up`)")
        return database_url  # roles not set up for this server: connect as the URL says
    return with_credentials(database_url, role, password)


def service_database_url(database_url: str, service: str) -> str:
    """The URL a service connects with: its own role on `database_url`'s database. A
    service without a role (a test's probe service) connects as `database_url` says."""
    if service not in SERVICE_ROLES:
        log.info("database.no_role", service=service, user=url_user(database_url))
        return database_url
    return role_url(database_url, service_role(service))


# ---- the server side ------------------------------------------------------------------------


def scram_verifier(password: str, salt: bytes | None = None,
                   iterations: int = _SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, the
    form ``psql \\password`` sends): the server is told this, never the password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return (f"SCRAM-SHA-256${iterations}:{b64(salt)}"
            f"${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def roles_sql(passwords: dict[str, str], admin: str = ADMIN) -> str:
    """SQL (for the superuser) that creates the roles or resets their passwords, and makes
    `admin` a member of each service role (so it may hand them their schemas)."""
    lines = ["DO $$ BEGIN"]
    for role in ROLES:
        lines += [
            f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN",
            f"    CREATE ROLE {role};",
            "  END IF;",
            f"  ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
            f" NOBYPASSRLS INHERIT PASSWORD {_literal(scram_verifier(passwords[role]))};",
        ]
    for role in SERVICE_ROLES.values():
        lines += [f"  IF NOT pg_has_role('{admin}', '{role}', 'MEMBER') THEN",
                  f"    GRANT {role} TO {admin};",
                  "  END IF;"]
    lines.append("END $$;")
    return "\n".join(lines) + "\n"


def prepare_sql() -> str:
    """SQL (for the admin, on the database) that gives each service its schema and the
    read-only roles their grants; idempotent, and it takes over schemas and tables an
    earlier version made as the admin."""
    everyone = ", ".join(ROLES)
    lines = [
        "DO $$ DECLARE r record; BEGIN",
        "  PERFORM pg_advisory_xact_lock(hashtext('clearinghouse:prepare_database'));",
        "  EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());",
        f"  EXECUTE format('GRANT CONNECT ON DATABASE %I TO {everyone}', current_database());",
    ]
    for schema, role in SERVICE_ROLES.items():
        lines += [
            f"  IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = '{schema}') THEN",
            f"    CREATE SCHEMA {schema} AUTHORIZATION {role};",
            "  END IF;",
            f"  ALTER SCHEMA {schema} OWNER TO {role};",
            "  FOR r IN SELECT c.oid::regclass AS name FROM pg_class c",
            "           JOIN pg_namespace n ON n.oid = c.relnamespace",
            f"           WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            f"             AND c.relowner <> '{role}'::regrole LOOP",
            f"    EXECUTE format('ALTER TABLE %s OWNER TO {role}', r.name);",
            "  END LOOP;",
            # sequences of their own (a column's sequence went with its table above)
            "  FOR r IN SELECT c.oid::regclass AS name FROM pg_class c",
            "           JOIN pg_namespace n ON n.oid = c.relnamespace",
            f"           WHERE n.nspname = '{schema}' AND c.relkind = 'S'",
            f"             AND c.relowner <> '{role}'::regrole LOOP",
            f"    EXECUTE format('ALTER SEQUENCE %s OWNER TO {role}', r.name);",
            "  END LOOP;",
            f"  REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;",
        ]
    for reader, schemas in READERS.items():
        for schema in schemas:
            role = SERVICE_ROLES[schema]
            lines += [
                f"  GRANT USAGE ON SCHEMA {schema} TO {reader};",
                f"  GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader};",
                f"  ALTER DEFAULT PRIVILEGES FOR ROLE {role} IN SCHEMA {schema}"
                f" GRANT SELECT ON TABLES TO {reader};",
            ]
    lines.append("END $$;")
    return "\n".join(lines) + "\n"


async def missing_roles(conn: asyncpg.Connection) -> list[str]:
    present = {r["rolname"] for r in await conn.fetch(
        "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", list(ROLES))}
    return [r for r in ROLES if r not in present]


async def prepare_database(admin_url: str, dbname: str | None = None) -> bool:
    """Prepare database `dbname` (default: `admin_url`'s) for the roles, as the admin of
    `admin_url`; idempotent. When the roles do not exist yet and the admin may create
    roles (a superuser, as in a testcontainers server), they are created first, with the
    roles file's passwords. False (nothing done) when the server has no roles and they
    cannot be made here: the services then connect as ``DATABASE_URL`` says."""
    url = admin_url if dbname is None else urlunsplit(
        urlsplit(admin_url)._replace(path="/" + dbname))
    conn = await asyncpg.connect(url)
    try:
        if await missing_roles(conn):
            may = await conn.fetchval(
                "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
            if not may:
                log.warning("database.roles_missing", database=dbname,
                            hint="run `clearinghouse infra up` to create the roles")
                return False
            admin = await conn.fetchval("SELECT current_user")
            await conn.execute(roles_sql(ensure_passwords(), admin=admin))
        await conn.execute(prepare_sql())
        return True
    finally:
        await conn.close()
