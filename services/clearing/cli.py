"""`clearinghouse clearing …`: the clearing calendar for operators, tests and the demo."""

from __future__ import annotations

import argparse
import asyncio
from datetime import date

from services.clearing import reports_cli, scheduler
from shared.config import load_settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    clearing = sub.add_parser("clearing", help="the clearing calendar and clearing results")
    actions = clearing.add_subparsers(dest="action", required=True)
    advance = actions.add_parser(
        "advance", help="start every business day after the last one, through --to")
    advance.add_argument("--to", required=True, type=date.fromisoformat,
                         help="last day to start (YYYY-MM-DD)")
    advance.add_argument("--start", type=date.fromisoformat,
                         help="first day, on a calendar that has none yet")
    advance.set_defaults(run=_advance)
    follow = actions.add_parser("scheduler", help="start each day as the wall clock reaches it")
    follow.set_defaults(run=_follow)
    reports_cli.add_actions(actions)


def _advance(args: argparse.Namespace) -> int:
    settings = load_settings()
    days = asyncio.run(scheduler.advance(settings.kafka_bootstrap_servers, args.to,
                                         prefix=settings.topic_prefix, start=args.start))
    print(f"started {len(days)} day(s)" + (f": {days[0]} .. {days[-1]}" if days else ""))
    return 0


def _follow(args: argparse.Namespace) -> int:
    settings = load_settings()
    asyncio.run(scheduler.follow(settings.kafka_bootstrap_servers, prefix=settings.topic_prefix))
    return 0
