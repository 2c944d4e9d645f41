"""`clearinghouse portal users add|sync|list` and `clearinghouse serve portal`.

    clearinghouse portal users sync            a login for every agency of reference/agencies.toml
                                               and the auditor; prints new passwords once
    clearinghouse portal users add 220100      add or reset one login (prints its new password)
    clearinghouse serve portal [--port 8710]   the portal on http://127.0.0.1:8710/

Users and password hashes (argon2id) live in <cache>/secrets/portal-users.json (mode 0600).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from services.portal import users
from services.portal.config import DEFAULT_PORT, secrets_dir


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    portal = sub.add_parser("portal", help="the agencies' and auditors' portal: its users",
                            description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = portal.add_subparsers(dest="portal_command", required=True)
    users_parser = actions.add_parser("users", help="portal logins (agencies, auditor)")
    what = users_parser.add_subparsers(dest="users_command", required=True)
    add = what.add_parser("add", help="add or reset a login; prints the new password once")
    add.add_argument("login", help="an agency code of reference/agencies.toml, or `auditor`")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input instead of generating one")
    add.set_defaults(run=_add)
    sync = what.add_parser("sync", help="a login for every agency and the auditor")
    sync.add_argument("--passwords-file", type=Path,
                      help="write the new passwords to this file (mode 0600) instead of "
                           "printing them")
    sync.set_defaults(run=_sync)
    listing = what.add_parser("list", help="the logins (never a password)")
    listing.set_defaults(run=_list)


def _agency_codes() -> list[str]:
    from shared.reference import load_reference

    return sorted(load_reference().agencies)


def _add(args: argparse.Namespace) -> int:
    if args.login != users.AUDITOR and args.login not in _agency_codes():
        print(f"portal users add: {args.login!r} is neither `auditor` nor an agency of "
              "reference/agencies.toml", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    if args.password_stdin and not password:
        print("portal users add: empty password on standard input", file=sys.stderr)
        return 2
    chosen = users.add(secrets_dir(), args.login, password)
    if not args.password_stdin:
        print(f"{args.login}\t{chosen}")
    print(f"portal user {args.login} saved in {secrets_dir() / users.USERS_FILE}",
          file=sys.stderr)
    return 0


def _sync(args: argparse.Namespace) -> int:
    created = users.sync(secrets_dir(), _agency_codes())
    lines = "".join(f"{login}\t{password}\n" for login, password in created.items())
    if args.passwords_file:
        users.write_private(args.passwords_file, lines)
        print(f"{len(created)} new login(s); passwords in {args.passwords_file}",
              file=sys.stderr)
    else:
        sys.stdout.write(lines)
        print(f"{len(created)} new login(s) (passwords shown once, above)", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    for login in users.logins(secrets_dir()):
        print(login)
    return 0


DEMO_PASSWORDS = "portal-demo-passwords.txt"


def demo_portal(cache: Path, *, serve: bool, port: int = DEFAULT_PORT) -> int:
    """After `clearinghouse demo`: make sure every agency and the auditor have a login, tell
    (on stderr) where the portal is and how to log in, and with `serve` run it on the
    demo's namespace and database (``<cache>/last-demo.json``) until Ctrl-C."""
    import json
    import os

    try:
        demo = json.loads((cache / "last-demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    created = users.sync(secrets_dir(), _agency_codes())
    passwords = secrets_dir() / DEMO_PASSWORDS
    if created:
        known = passwords.read_text(encoding="utf-8") if passwords.exists() else ""
        users.write_private(passwords, known + "".join(f"{login}\t{password}\n"
                                                       for login, password in created.items()))
    login = "220100" if "220100" in users.logins(secrets_dir()) else users.AUDITOR
    address = f"http://127.0.0.1:{port}/"
    shown = (f"password {created[login]}" if login in created
             else f"passwords in {passwords}")
    how = "" if serve else (f" — start it with: DATABASE_URL={demo['database_url']} "
                            f"CLEARINGHOUSE_TOPIC_PREFIX={demo['topic_prefix']} "
                            f"clearinghouse serve portal --port {port}")
    print(f"portal     {address} — log in as {login} ({shown}), or as auditor{how}",
          file=sys.stderr)
    if not serve:
        return 0
    os.environ.update(demo_environment(demo))
    print("portal     serving the demo's data until Ctrl-C", file=sys.stderr)
    return serve_portal(port=port)


def demo_environment(demo: dict, database_url: str | None = None  # type: ignore[type-arg]
                     ) -> dict[str, str]:
    """The variables that point the portal at a demo run (``last-demo.json``): its database
    on the configured server (the record keeps no password), its namespace, and the keys
    its participants sign with (the demo's services verify against them)."""
    from shared.config import load_settings

    base = (database_url or load_settings().database_url).rpartition("/")[0]
    env = {"DATABASE_URL": f"{base}/{demo['database']}",
           "CLEARINGHOUSE_TOPIC_PREFIX": demo["topic_prefix"],
           "KAFKA_BOOTSTRAP_SERVERS": demo["kafka_bootstrap_servers"]}
    if demo.get("participant_keys"):
        env["CLEARINGHOUSE_PARTICIPANT_KEYS"] = demo["participant_keys"]
    if demo.get("participant_secrets"):
        env["CLEARINGHOUSE_PARTICIPANT_SECRETS"] = demo["participant_secrets"]
    return env


def serve_portal(host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 certfile: str | None = None, keyfile: str | None = None) -> int:
    """Run the portal until SIGINT/SIGTERM (uvicorn)."""
    from services.portal.app import create_app
    from services.portal.config import load_portal_settings
    from shared.config import load_settings
    from shared.logging import configure_logging

    configure_logging(load_settings().log_level, service="portal")
    overrides = {"secure_cookies": True} if certfile else {}
    app = create_app(load_portal_settings(**overrides))
    import uvicorn

    from services.portal.server import Server

    config = uvicorn.Config(app, host=host, port=port, ssl_certfile=certfile,
                            ssl_keyfile=keyfile, log_level="warning", access_log=False,
                            proxy_headers=False)
    asyncio.run(Server(config).serve())
    return 0
