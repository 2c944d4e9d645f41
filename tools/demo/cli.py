"""`clearinghouse demo`: the main job (README.md). Generates a province, runs it through the
three services on a fresh namespace and database, and shows what happened; exit status 0
only when every check holds."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Coroutine
from typing import Any

from rich.console import Console

from shared.running import Interrupted, run_cancellable
from tools.demo.province import DEFAULT_MONTH, DEFAULT_SEED


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser(
        "demo", help="run a generated province through the services and show the clearing",
        description="Start what is missing, run the three services on a fresh topic namespace "
                    "and database, publish a generated province's filings, settlements, "
                    "refunds and re-settlements day by day, and show statements, "
                    "instructions, difference notices and checks. See docs/demo.md.")
    demo.add_argument("--persons", type=_positive, default=2000,
                      help="insured persons to generate (default 2000)")
    demo.add_argument("--settlements", type=_positive, default=5000,
                      help="settlements in the month (default 5000)")
    demo.add_argument("--seed", type=int, default=DEFAULT_SEED,
                      help=f"generator seed: the same seed gives the same events "
                           f"(default {DEFAULT_SEED})")
    demo.add_argument("--month", type=_month, default=DEFAULT_MONTH,
                      help=f"the month settled, YYYY-MM (default {DEFAULT_MONTH})")
    demo.add_argument("--no-infra", action="store_true",
                      help="do not start local Kafka and PostgreSQL; use "
                           "KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL")
    demo.add_argument("--keep", type=_not_negative, default=2,
                      help="earlier demo runs to keep (topics, database, logs); older ones "
                           "are removed when a run starts (default 2)")
    demo.add_argument("--json", action="store_true",
                      help="print one JSON document instead of tables and progress bars")
    demo.add_argument("--serve-portal", action="store_true",
                      help="afterwards, serve the portal on the demo's data until Ctrl-C "
                           "(docs/portal.md)")
    demo.add_argument("--portal-port", type=int, default=8710,
                      help="the portal's port with --serve-portal (default 8710)")
    demo.set_defaults(run=_demo)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _month(text: str) -> str:
    year, _, month = text.partition("-")
    if not (len(year) == 4 and year.isdigit() and month.isdigit() and 1 <= int(month) <= 12
            and len(month) == 2):
        raise argparse.ArgumentTypeError(f"month must be YYYY-MM, got {text!r}")
    return text


def _demo(args: argparse.Namespace) -> int:
    from tools.demo.run import Options

    # The demo's own consumers start right after their topics are made; aiokafka warns
    # (on stderr, over the progress bars) until the metadata has spread. Errors still show.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    options = Options(seed=args.seed, persons=args.persons, settlements=args.settlements,
                      month=args.month, local_infra=not args.no_infra,
                      keep=args.keep)
    status = _run_cancellable(_main(options, args.json))
    if status in (0, 1):
        from infra.local import resolve_cache_dir
        from services.portal.cli import demo_portal

        try:
            return demo_portal(resolve_cache_dir(), serve=args.serve_portal,
                               port=args.portal_port) or status
        except KeyboardInterrupt:
            return status
    return status


def _run_cancellable(main: Coroutine[Any, Any, int]) -> int:
    """Run `main`; SIGTERM cancels it like Ctrl-C, so the services are always stopped."""
    try:
        return run_cancellable(main)
    except Interrupted:
        print("demo interrupted; services stopped", file=sys.stderr)
        return 130


async def _main(options: Any, as_json: bool) -> int:
    from infra.local import resolve_cache_dir
    from shared.reference import load_reference
    from tools.demo import report
    from tools.demo.province import generate
    from tools.demo.run import DemoError, Steps, prepare, run

    started = time.monotonic()
    err = Console(stderr=True)
    cache = resolve_cache_dir()
    namespace = None

    def record(status: str, **extra: Any) -> None:
        if namespace is not None:
            namespace.record(cache / "last-demo.json", status=status, seed=options.seed,
                             month=options.month, persons=options.persons,
                             settlements=options.settlements, **extra)

    try:
        namespace = await prepare(options, cache)
        if not as_json:
            err.print(f"topics     [cyan]{namespace.topic_prefix}*[/] on "
                      f"{namespace.kafka_bootstrap_servers}\ndatabase   [cyan]"
                      f"{namespace.database}[/]\nlogs       {namespace.logs}\n"
                      f"recorded in {cache / 'last-demo.json'}")
        reference = load_reference()
        province = generate(reference, seed=options.seed, persons=options.persons,
                            settlements=options.settlements, month=options.month)
        if as_json:
            outcome = await run(options, namespace, province, Steps())
        else:
            with report.RichSteps.progress_bars(err) as bars:
                outcome = await run(options, namespace, province, report.RichSteps(bars))
        summary = report.summarize(outcome, reference, time.monotonic() - started)
    except DemoError as exc:
        record("failed", error=str(exc))
        if as_json:
            print(json.dumps({"ok": False, "error": str(exc)}, ensure_ascii=False))
        err.print(f"[red]demo failed:[/] {exc}")
        return 1
    except asyncio.CancelledError:
        record("interrupted")
        raise
    record("ok" if summary["ok"] else "checks failed", wall_seconds=summary["wall_seconds"])
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        report.render(summary, Console())
    return 0 if summary["ok"] else 1
