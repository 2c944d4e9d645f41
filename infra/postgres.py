"""A local PostgreSQL server run as a detached process, its data in the cache folder.

The server refuses to run as root, so when we are root it runs as the unprivileged
``postgres`` system user (created by Debian's ``postgresql`` package); otherwise it
runs as ourselves. It listens on 127.0.0.1 only, with its Unix socket in the cache
folder, and keeps PostgreSQL's durability defaults (fsync, synchronous_commit on).
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra import (
    InfraError,
    log_tail,
    port_open,
    read_pid,
    read_port,
    spawn_detached,
    stop_pid,
)
from shared.db import roles as db_roles

log = logging.getLogger(__name__)

ROLE = "clearinghouse"
PASSWORD = "clearinghouse"
DATABASE = "clearinghouse"
SUPERUSER = "postgres"
SERVER_SETTINGS = {"shared_buffers": "256MB", "max_connections": "200"}

_BOOTSTRAP_SQL = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
    CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}';
  END IF;
  -- so that DROP DATABASE ... WITH (FORCE) may also end autovacuum workers on it
  IF NOT pg_has_role('{ROLE}', 'pg_signal_backend', 'MEMBER') THEN
    GRANT pg_signal_backend TO {ROLE};
  END IF;
END $$;
SELECT 'CREATE DATABASE {DATABASE} OWNER {ROLE}'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}') \\gexec
"""


@dataclass(frozen=True)
class PostgresServer:
    pid: int
    port: int
    url: str


@dataclass(frozen=True)
class _Paths:
    root: Path
    data: Path
    socket_dir: Path
    log: Path
    pid: Path

    @classmethod
    def of(cls, cache: Path) -> _Paths:
        root = cache / "postgres"
        return cls(
            root,
            root / "data",
            root / "run",
            cache / "logs" / "postgres.log",
            cache / "pids" / "postgres.pid",
        )


def database_url(port: int) -> str:
    return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"


def bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` (Debian layout), or ``pg_config --bindir``."""
    candidates = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
        if (found / "initdb").exists():
            return found
    raise InfraError(
        "PostgreSQL server binaries not found: run infra/install.sh (Debian package `postgresql`)"
    )


def _run_as() -> str | None:
    """The user the server runs as: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise InfraError(
            "running as root, but there is no `postgres` system user to run "
            "PostgreSQL as: run infra/install.sh"
        ) from None
    return SUPERUSER


def _grant_traverse(path: Path, user: str) -> None:
    """Make every ancestor of ``path`` traversable (x, never r) by ``user``.

    The default cache lives under root's home (mode 0700), which the ``postgres``
    user otherwise cannot reach.
    """
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    for directory in [path, *path.parents]:
        st = directory.stat()
        if st.st_uid == entry.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            log.warning(
                "granting others traverse (o+x) on %s so that user %s reaches %s",
                directory,
                user,
                path,
            )
            os.chmod(directory, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _own(path: Path, user: str | None, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, mode)


def _env(user: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    if user is not None:
        env["HOME"] = pwd.getpwnam(user).pw_dir
        env["USER"] = env["LOGNAME"] = user
    return env


def _initdb(paths: _Paths, user: str | None) -> None:
    """Create the cluster once (a data dir without PG_VERSION is a failed earlier try)."""
    if (paths.data / "PG_VERSION").exists():
        return
    if paths.data.exists():
        shutil.rmtree(paths.data)
    _own(paths.root, None, 0o755)
    _own(paths.data, user, 0o700)
    cmd = [
        str(bin_dir() / "initdb"),
        "-D",
        str(paths.data),
        "-U",
        SUPERUSER,
        "-E",
        "UTF8",
        "--locale=C",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
    ]
    done = subprocess.run(
        cmd,
        cwd=paths.root,
        env=_env(user),
        user=user,
        group=user,
        extra_groups=[] if user else None,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise InfraError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def running(cache: Path) -> tuple[int, int] | None:
    """(pid, port) of the server started from this cache, if it is alive."""
    paths = _Paths.of(cache)
    pid = read_pid(paths.pid, str(paths.data))
    port = read_port(paths.pid)
    return None if pid is None or port is None else (pid, port)


def _wait_ready(paths: _Paths, pid: int, port: int, timeout: float) -> None:
    pg_isready = str(bin_dir() / "pg_isready")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_pid(paths.pid, str(paths.data)) != pid:
            raise InfraError(
                f"PostgreSQL exited during start-up; log {paths.log}:\n{log_tail(paths.log)}"
            )
        ready = subprocess.run([pg_isready, "-q", "-h", "127.0.0.1", "-p", str(port)], check=False)
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise InfraError(
        f"PostgreSQL did not accept connections on 127.0.0.1:{port} within "
        f"{timeout:.0f} s; log {paths.log}:\n{log_tail(paths.log)}"
    )


def _bootstrap(paths: _Paths, port: int, cache: Path) -> None:
    """Create the admin role and database if missing, the services' and read-only roles
    (shared.db.roles; their passwords from ``<cache>/secrets/postgres-roles.json``, made
    on first use), and prepare the default database for them (superuser over the socket;
    the server is sent SCRAM verifiers, never a password)."""
    passwords = db_roles.ensure_passwords(db_roles.roles_file(cache))
    script = (_BOOTSTRAP_SQL + db_roles.roles_sql(passwords, admin=ROLE)
              + f"\\connect {DATABASE}\nSET ROLE {ROLE};\n" + db_roles.prepare_sql())
    cmd = [
        str(bin_dir() / "psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        str(paths.socket_dir),
        "-p",
        str(port),
        "-U",
        SUPERUSER,
        "-d",
        "postgres",
    ]
    done = subprocess.run(
        cmd, input=script, capture_output=True, text=True, env=_env(None), check=False
    )
    if done.returncode != 0:
        raise InfraError(f"creating role/database failed:\n{done.stdout}\n{done.stderr}")


def start(cache: Path, port: int, timeout: float = 60.0) -> PostgresServer:
    """Start the server (initdb on first use) or reuse the one already running."""
    paths = _Paths.of(cache)
    current = running(cache)
    if current is None:
        user = _run_as()
        cache.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _grant_traverse(cache, user)
        _initdb(paths, user)
        _own(paths.socket_dir, user, 0o700)
        if port_open(port):
            raise InfraError(
                f"port {port} is already in use by a process not started from "
                f"{cache}; set CLEARINGHOUSE_PG_PORT to another port"
            )
        cmd = [
            str(bin_dir() / "postgres"),
            "-D",
            str(paths.data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(paths.socket_dir),
        ]
        for key, value in SERVER_SETTINGS.items():
            cmd += ["-c", f"{key}={value}"]
        pid = spawn_detached(
            cmd, paths.log, paths.pid, cwd=paths.root, env=_env(user), user=user, port=port
        )
    else:
        pid, running_port = current
        if running_port != port:
            log.warning(
                "PostgreSQL from %s already runs on port %d (not %d): reusing it",
                cache,
                running_port,
                port,
            )
        port = running_port
    _wait_ready(paths, pid, port, timeout)
    _bootstrap(paths, port, cache)
    return PostgresServer(pid=pid, port=port, url=database_url(port))


def stop(cache: Path, timeout: float = 30.0) -> int | None:
    """Stop the server started from this cache (fast shutdown, then SIGKILL).
    Returns the pid it stopped, or None if none was running."""
    paths = _Paths.of(cache)
    current = running(cache)
    if current is not None:
        stop_pid(current[0], signal.SIGINT, timeout)
    paths.pid.unlink(missing_ok=True)
    return current[0] if current else None
