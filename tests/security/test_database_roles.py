"""Database roles (issue 13, part 3), against the real server: each service's role owns its
schema and nothing else, the auditor's and the portal's roles only read what they may, a
wrong password is refused, and the running services connect as their roles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from services.registry import SERVICES, spec_of
from shared.db import apply_migrations, create_pool, role_url, service_database_url
from shared.db import roles as db_roles
from shared.db.roles import AUDITOR, PORTAL, SERVICE_ROLES, with_credentials
from tests.helpers import Services, create_topics, new_prefix

pytestmark = pytest.mark.infra


def _as(url: str, role: str) -> str:
    """`url` as `role`; the role's password must be known (the roles are on)."""
    assert db_roles.role_password(role), (
        f"no password for {role}: the roles are not set up (clearinghouse infra up)")
    derived = role_url(url, role)
    assert db_roles.url_user(derived) == role
    return derived


@pytest.fixture
async def migrated(fresh_database: str) -> AsyncIterator[str]:
    """A prepared database whose three schemas each service migrated as its own role."""
    for service in SERVICES:
        pool = await create_pool(service_database_url(fresh_database, service), service,
                                 max_size=1)
        try:
            await apply_migrations(pool, spec_of(service).migrations)
        finally:
            await pool.close()
    yield fresh_database


async def _connect(url: str, role: str) -> asyncpg.Connection:
    return await asyncpg.connect(_as(url, role))


async def test_each_service_owns_its_schema_and_its_tables(migrated: str) -> None:
    admin = await asyncpg.connect(migrated)
    try:
        for schema, role in SERVICE_ROLES.items():
            assert await admin.fetchval(
                "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1",
                schema) == role
            owners = {r["owner"] for r in await admin.fetch(
                "SELECT tableowner AS owner FROM pg_tables WHERE schemaname = $1", schema)}
            assert owners == {role}, (schema, owners)
    finally:
        await admin.close()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_role_may_not_read_or_write_another_services_tables(
        migrated: str, service: str) -> None:
    conn = await _connect(migrated, SERVICE_ROLES[service])
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {service}.inbox") == 0  # its own
        await conn.execute(f"INSERT INTO {service}.outbox (topic, value) VALUES ('t', 'v')")
        for other in SERVICES:
            if other == service:
                continue
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT * FROM {other}.inbox")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    f"INSERT INTO {other}.outbox (topic, value) VALUES ('t', 'forged')")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"DELETE FROM {other}.inbox")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"CREATE TABLE {other}.planted (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE SCHEMA squatted")  # no schema of anyone else's name
    finally:
        await conn.close()


async def test_the_auditor_reads_every_service_schema_and_writes_nothing(migrated: str) -> None:
    conn = await _connect(migrated, AUDITOR)
    try:
        for schema in SERVICES:
            for table in ("inbox", "outbox", "rejected", "schema_migrations"):
                await conn.fetch(f"SELECT * FROM {schema}.{table}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"INSERT INTO {schema}.outbox (topic, value) VALUES ('t', 'v')")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"UPDATE {schema}.inbox SET topic = 'x'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"DELETE FROM {schema}.schema_migrations")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"CREATE TABLE {schema}.planted (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TEMPORARY TABLE scratch (x int)")
    finally:
        await conn.close()


async def test_the_portal_reads_the_clearing_schema_only(migrated: str) -> None:
    conn = await _connect(migrated, PORTAL)
    try:
        assert await conn.fetchval("SELECT count(*) FROM clearing.results") == 0
        await conn.fetch("SELECT * FROM clearing.clearing_state")
        for schema in ("filing", "settlement"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT * FROM {schema}.inbox")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM clearing.results")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("INSERT INTO clearing.outbox (topic, value) VALUES ('t', 'v')")
    finally:
        await conn.close()


@pytest.mark.parametrize("role", db_roles.ROLES)
async def test_a_wrong_or_missing_password_is_refused(fresh_database: str, role: str) -> None:
    right = _as(fresh_database, role)
    await (await asyncpg.connect(right)).close()  # the right one works
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(with_credentials(fresh_database, role, "not-" + role))
    with pytest.raises(asyncpg.InvalidPasswordError):
        # a password given for another role is no password for this one
        other = next(r for r in db_roles.ROLES if r != role)
        await asyncpg.connect(with_credentials(fresh_database, role,
                                               db_roles.role_password(other)))
    with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.ClientCannotConnectError)):
        await asyncpg.connect(with_credentials(fresh_database, role, None), password="")


async def test_preparing_a_database_twice_changes_nothing(migrated: str) -> None:
    admin = await asyncpg.connect(migrated)

    async def grants() -> list[asyncpg.Record]:
        return await admin.fetch(
            """SELECT n.nspname, c.relname, c.relowner::regrole::text AS owner,
                      c.relacl::text AS acl
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = ANY($1::text[]) ORDER BY 1, 2""", list(SERVICES))

    try:
        before = await grants()
        name = migrated.rpartition("/")[2]
        assert await db_roles.prepare_database(migrated, name)
        assert await grants() == before
    finally:
        await admin.close()


async def test_preparing_takes_over_schemas_the_admin_made(fresh_database: str) -> None:
    """A database an earlier version migrated as the admin: preparing hands the schema and
    its tables to the service's role, and the auditor may read them."""
    admin = await asyncpg.connect(fresh_database)
    try:
        await admin.execute("DROP SCHEMA filing")  # as before the roles: made by the admin
        await admin.execute("CREATE SCHEMA filing")
        await admin.execute("CREATE TABLE filing.persons (person text PRIMARY KEY,"
                            " n bigserial)")
        await admin.execute("CREATE SEQUENCE filing.counter")
        assert await admin.fetchval("SELECT tableowner FROM pg_tables WHERE schemaname ="
                                    " 'filing'") == db_roles.ADMIN
        await db_roles.prepare_database(fresh_database, fresh_database.rpartition("/")[2])
        owners = {r["relowner"] for r in await admin.fetch(
            "SELECT c.relowner::regrole::text AS relowner FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'filing'")}
        assert owners == {"ch_filing"}
    finally:
        await admin.close()
    auditor = await _connect(fresh_database, AUDITOR)
    try:
        assert await auditor.fetchval("SELECT count(*) FROM filing.persons") == 0
    finally:
        await auditor.close()


async def test_the_running_services_connect_as_their_own_roles(
        infra, fresh_database: str, tmp_path: Path) -> None:
    prefix = new_prefix()
    await create_topics(infra.kafka_bootstrap, prefix)
    services = Services(infra.kafka_bootstrap, fresh_database, prefix, tmp_path)
    name = fresh_database.rpartition("/")[2]
    admin = await asyncpg.connect(fresh_database)
    try:
        services.start(*SERVICES)
        deadline = time.monotonic() + 120
        seen: set[tuple[str, str]] = set()
        while time.monotonic() < deadline:  # until each service's pool is connected
            for service, process in services.processes.items():
                assert process.poll() is None, services.log_text(service)[-3000:]
            seen = {(r["application_name"], r["usename"]) for r in await admin.fetch(
                "SELECT application_name, usename FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name LIKE 'clearinghouse-%'", name)}
            migrated = [await admin.fetchval("SELECT to_regclass($1) IS NOT NULL",
                                             f"{s}.schema_migrations") for s in SERVICES]
            if len(seen) >= 3 and all(migrated):
                break
            await asyncio.sleep(0.2)
        assert seen == {(f"clearinghouse-{s}", SERVICE_ROLES[s]) for s in SERVICES}, seen
        for schema, role in SERVICE_ROLES.items():
            owners = {r["tableowner"] for r in await admin.fetch(
                "SELECT tableowner FROM pg_tables WHERE schemaname = $1", schema)}
            assert owners == {role}, (schema, owners)
    finally:
        await admin.close()
        services.stop()


async def test_the_audit_and_the_queries_read_as_the_read_only_roles(migrated: str) -> None:
    """Given the admin's URL (as the audit and `clearinghouse clearing ...` are), they
    connect as ch_auditor and ch_portal: what those roles may not read, they do not get."""
    from services.clearing import queries
    from tools.audit import cli as audit_cli
    from tools.audit import replay

    live = await audit_cli._read_only(migrated)
    try:
        assert await live.fetchval("SELECT current_user") == AUDITOR
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await live.execute("DELETE FROM filing.inbox")
    finally:
        await live.close()
    portal = await queries.connect(migrated)
    try:
        assert await portal.fetchval("SELECT current_user") == PORTAL
        await queries.state(portal)
    finally:
        await portal.close()
    admin = await asyncpg.connect(migrated)
    try:
        await admin.execute(f"REVOKE USAGE ON SCHEMA filing FROM {AUDITOR}")
    finally:
        await admin.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await replay.live_consumption(migrated, "filing")
    assert (await replay.live_consumption(migrated, "settlement")).present
