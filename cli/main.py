"""The `clearinghouse` command: infrastructure, services, demo and documentation.

    clearinghouse infra up|down|status     local PostgreSQL and Kafka, no Docker
    clearinghouse infra up --brokers 3     the same with a replicated three-node Kafka
    clearinghouse serve NAME|all           run one service, or all three as child processes
    clearinghouse participants sync|keys   Kafka logins, certificates, keys and ACLs of participants
    clearinghouse serve portal             the agencies' and auditors' portal (HTTP)
    clearinghouse clearing advance --to D  start the clearing calendar's days through D
    clearinghouse demo                     the main job: see README.md
    clearinghouse docs                     regenerate docs/schemas and docs/asyncapi
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

SERVICES = ("filing", "settlement", "clearing")
#: Modules that add their own subcommands: each has ``register(subparsers)``.
COMMAND_MODULES = ("services.clearing.cli", "services.clearing.reports_cli", "tools.audit.cli",
                   "tools.bench.cli", "tools.demo.cli", "tools.enrolment.cli",
                   "tools.participants.cli", "services.portal.cli")


def _infra(args: argparse.Namespace) -> int:
    from infra import local

    if args.action == "topics":
        return _create_topics()
    brokers = ["--brokers", str(args.brokers)] if args.brokers and args.action == "up" else []
    return local.main([args.action, *brokers])


def _create_topics() -> int:
    """Create the contract's topics and the namespace's ACLs on the configured broker
    (docker-compose, production)."""
    import asyncio

    from infra.participants import prepare_namespace
    from shared.config import load_settings

    settings = load_settings()
    created = asyncio.run(prepare_namespace(settings.kafka_bootstrap_servers,
                                            settings.topic_prefix, settings.group_prefix,
                                            reference_dir=settings.reference_dir))
    print(f"topics on {settings.kafka_bootstrap_servers}: created {len(created)}")
    return 0


def _health(args: argparse.Namespace) -> int:
    """Exit 0 when the broker and the database configured for this process answer."""
    import asyncio

    from shared.config import load_settings
    from shared.health import unreachable

    settings = load_settings()
    problems = asyncio.run(unreachable(settings.kafka_bootstrap_servers,
                                       settings.database_url))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def _serve(args: argparse.Namespace) -> int:
    if args.name == "portal":
        from services.portal.cli import serve_portal

        return serve_portal(args.host, args.port, args.certfile, args.keyfile)
    if args.name == "all" or args.instances > 1:
        return _supervise(SERVICES if args.name == "all" else (args.name,), args.instances)
    from services.registry import run_service

    return run_service(args.name)


def _supervise(names: tuple[str, ...], instances: int) -> int:
    """Run each service as processes of its own (as in production), `instances` of each in
    one consumer group; stop all when one dies."""
    from services.supervisor import Supervisor

    supervisor = Supervisor(cwd=None)
    for name in names:
        supervisor.start(name, instances=instances)
    return supervisor.supervise()


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more, got {text!r}")
    return int(text)


def _docs(args: argparse.Namespace) -> int:
    from tools.docs import generate

    for path in generate():
        print(path)
    return 0


def _register(sub: argparse._SubParsersAction, module: str) -> None:  # type: ignore[type-arg]
    """Add a module's subcommands; a module that fails to load must not take the others
    (``serve`` above all) down with it: its command then reports why it is unavailable."""
    try:
        importlib.import_module(module).register(sub)
    except Exception as exc:  # noqa: BLE001 - reported when the command is used
        name = module.split(".")[-2] if module.endswith(".cli") else module.split(".")[-1]
        if name in sub.choices:
            return
        broken = sub.add_parser(name, help=f"(unavailable: {exc!r})")
        broken.add_argument("rest", nargs=argparse.REMAINDER)

        def unavailable(_: argparse.Namespace, error: Exception = exc) -> int:
            print(f"clearinghouse: the {name!r} command could not be loaded from {module}: "
                  f"{error!r}", file=sys.stderr)
            return 2

        broken.set_defaults(run=unavailable)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clearinghouse",
        description="Event-sourced clearing house for cross-region medical insurance settlement.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    infra = sub.add_parser("infra", help="start, stop or inspect local PostgreSQL and Kafka")
    infra.add_argument("action", choices=["up", "down", "status", "topics"],
                       help="topics: create the topics on KAFKA_BOOTSTRAP_SERVERS")
    infra.add_argument("--brokers", type=_positive, default=None, metavar="N",
                       help="up: Kafka nodes (3: a replicated cluster, replication 3, "
                            "min.insync.replicas 2; default: as the cache was made, else 1)")
    infra.set_defaults(run=_infra)

    serve = sub.add_parser("serve", help="run a service (or all three)")
    serve.add_argument("name", choices=[*SERVICES, "all", "portal"])
    serve.add_argument("--instances", type=_positive, default=1, metavar="N",
                       help="processes of each service, sharing its consumer group (default 1)")
    portal = serve.add_argument_group("portal", "only for `serve portal` (docs/portal.md)")
    portal.add_argument("--host", default="127.0.0.1", help="address to listen on")
    portal.add_argument("--port", type=int, default=8710, help="port (default 8710)")
    portal.add_argument("--certfile", help="TLS certificate (PEM): serve https, Secure cookies")
    portal.add_argument("--keyfile", help="TLS private key (PEM)")
    serve.set_defaults(run=_serve)

    for module in COMMAND_MODULES:
        _register(sub, module)

    health = sub.add_parser("health", help="exit 0 when Kafka and PostgreSQL answer")
    health.set_defaults(run=_health)

    docs = sub.add_parser("docs", help="regenerate JSON Schemas and AsyncAPI documents")
    docs.set_defaults(run=_docs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
