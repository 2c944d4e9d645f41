"""Secrets hygiene (issue 13, part 4): credentials files readable by their owner only, no
password in the repository, a log line, an error message or a process title, and URLs
redacted where they are shown."""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
import subprocess
import time
from pathlib import Path

import pytest

from shared.config import REPO_ROOT
from shared.db import redact_url
from shared.db import roles as db_roles
from tests.helpers import Services, create_topics, new_prefix
from tests.security.leaks import known_passwords, leaks
from tools.audit.cli import _unredacted


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- without servers ------------------------------------------------------------------------


def test_generated_passwords_are_written_for_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "postgres-roles.json"
    old = os.umask(0)  # even a process that would make files world-readable
    try:
        first = db_roles.ensure_passwords(path)
    finally:
        os.umask(old)
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert set(first) == set(db_roles.ROLES)
    assert len(set(first.values())) == len(first)  # one of its own for every role
    assert all(len(p) >= 32 for p in first.values())
    assert db_roles.ensure_passwords(path) == first  # kept, not generated again
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_roles_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "postgres-roles.json"
    db_roles.ensure_passwords(path)
    password = db_roles.read_passwords(path)["ch_filing"]
    os.chmod(path, 0o644)
    with pytest.raises(db_roles.RolesError) as refused:
        db_roles.read_passwords(path)
    assert "chmod 600" in str(refused.value) and password not in str(refused.value)


def test_an_unknown_role_password_is_reported_without_any_secret(
        tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "postgres-roles.json"
    known = db_roles.ensure_passwords(path, roles=["ch_filing"])
    monkeypatch.setenv("CLEARINGHOUSE_PG_ROLES_FILE", str(path))
    for role in db_roles.ROLES:
        monkeypatch.delenv(db_roles.password_variable(role), raising=False)
    url = "postgresql://clearinghouse:admin-secret@127.0.0.1:1/db"
    with pytest.raises(db_roles.RolesError) as missing:
        db_roles.role_url(url, "ch_clearing")
    assert "admin-secret" not in str(missing.value)
    assert known["ch_filing"] not in str(missing.value)
    derived = db_roles.role_url(url, "ch_filing")
    assert db_roles.url_user(derived) == "ch_filing" and "admin-secret" not in derived
    monkeypatch.setenv("DATABASE_PASSWORD_CH_CLEARING", "from-the-environment")
    assert "from-the-environment@" in db_roles.role_url(url, "ch_clearing")


def test_urls_are_redacted() -> None:
    assert redact_url("postgresql://ch_filing:s3cr%2Ft@db:5432/x") == \
        "postgresql://ch_filing:***@db:5432/x"
    assert redact_url("postgresql://u@db/x?password=s3cret&sslmode=require") == \
        "postgresql://u@db/x?password=***&sslmode=require"
    assert redact_url("postgresql://db/x") == "postgresql://db/x"


def test_the_audit_takes_a_redacted_urls_password_from_database_url() -> None:
    configured = "postgresql://clearinghouse:pw@127.0.0.1:15432/clearinghouse"
    assert _unredacted("postgresql://clearinghouse:***@127.0.0.1:15432/demo_1", configured) \
        == "postgresql://clearinghouse:pw@127.0.0.1:15432/demo_1"
    assert _unredacted("postgresql://clearinghouse@127.0.0.1:15432/demo_1", configured) \
        == "postgresql://clearinghouse:pw@127.0.0.1:15432/demo_1"
    assert _unredacted("postgresql://other:own@h/d", configured) == "postgresql://other:own@h/d"
    assert _unredacted("postgresql://other:***@h/d", configured) == "postgresql://other@h/d"
    assert _unredacted(None, configured) == configured


def test_the_leak_check_finds_what_it_looks_for() -> None:
    """The check the demo, bench and service tests rely on would see a leak."""
    secret = secrets.token_urlsafe(32)
    assert leaks(f"connecting with {secret}", {"ch_x": secret}) == ["the password of ch_x"]
    assert leaks("postgresql://clearinghouse:clearinghouse@h/d", {})
    assert not leaks("postgresql://clearinghouse:***@h/d and http://host/path", {})


# ---- the installation in use ----------------------------------------------------------------


def test_the_credentials_files_are_readable_by_their_owner_only(infra) -> None:
    folder = db_roles.roles_file().parent
    assert db_roles.roles_file().exists(), "no roles file: run clearinghouse infra up"
    assert _mode(folder) & 0o077 == 0, oct(_mode(folder))
    files = [p for p in folder.iterdir() if p.is_file()]
    files += [p for p in folder.rglob("*key*") if p.is_file()]  # private keys, if any
    wrong = {str(p): oct(_mode(p)) for p in files if _mode(p) & 0o077}
    assert not wrong, wrong


def test_no_password_is_in_the_repository(infra) -> None:
    passwords = known_passwords()
    assert passwords, "no database role password known: the roles are not set up"
    found = subprocess.run(
        ["git", "grep", "--untracked", "-l", "-F", *[a for p in passwords.values()
                                                     for a in ("-e", p)]],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert found.returncode == 1, f"passwords in the repository: {found.stdout}"
    assert not db_roles.roles_file().resolve().is_relative_to(REPO_ROOT)


async def test_a_service_log_and_process_title_carry_no_password(
        infra, fresh_database: str, tmp_path: Path) -> None:
    """Three services run and one is refused (a wrong password, given as production would
    by the environment): the logs say why, the refused password and the right ones appear
    in no log line, error message or process title."""
    prefix = new_prefix()
    await create_topics(infra.kafka_bootstrap, prefix)
    services = Services(infra.kafka_bootstrap, fresh_database, prefix, tmp_path)
    wrong = "wrong-" + secrets.token_urlsafe(24)
    titles: dict[str, str] = {}
    try:
        services.start("settlement", "clearing")
        services.start("filing", DATABASE_PASSWORD_CH_FILING=wrong)
        deadline = time.monotonic() + 120
        filing = services.processes["filing"]
        while filing.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert filing.poll() not in (None, 0), "the filing service ran with a wrong password"
        for name in ("settlement", "clearing"):  # what `ps` shows of the running ones
            process = services.processes[name]
            assert process.poll() is None, services.log_text(name)[-2000:]
            titles[name] = subprocess.run(["ps", "-o", "args=", "-p", str(process.pid)],
                                          capture_output=True, text=True, check=True).stdout
            assert f"services.registry {name}" in titles[name]
    finally:
        services.stop()
    text = {name: services.log_text(name) for name in ("filing", "settlement", "clearing")}
    assert "password authentication failed" in text["filing"], text["filing"][-2000:]
    secrets_known = known_passwords() | {"wrong filing password": wrong}
    found = {name: leaks(t, secrets_known) for name, t in {**text, **{
        f"process title of {n}": t for n, t in titles.items()}}.items()}
    assert not any(found.values()), found
