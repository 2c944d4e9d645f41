"""`clearinghouse enrolment import FILE.csv`: an insuring agency's bulk enrolment through
Kafka, with a progress bar, resumable from the checkpoint beside the file."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

#: Bad rows printed one by one; the rest are counted (all are in the checkpoint file).
SHOWN_BAD_ROWS = 50


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    enrolment = sub.add_parser("enrolment", help="insured persons (参保登记): bulk enrolment")
    actions = enrolment.add_subparsers(dest="action", required=True)
    load = actions.add_parser(
        "import", help="send a CSV of insured persons as person.enrolled commands",
        description="Columns: person_id, insured_agency, insurance_type (employee|resident), "
                    "effective (YYYY-MM-DD); optional date_of_birth, age_band, assistance "
                    "(医疗救助 category). One row a line. "
                    "Resumes where an interrupted run stopped (FILE.progress); a re-sent row is "
                    "a duplicate the filing service drops. Exit 1 when some row was bad.")
    load.add_argument("file", type=Path)
    load.add_argument("--restart", action="store_true",
                      help="ignore the checkpoint and send every row again (duplicates are "
                           "dropped by the filing service)")
    load.add_argument("--max-rows", type=int, help="stop after this many rows (resume later)")
    load.set_defaults(run=_import)


def _import(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from shared.config import load_settings
    from shared.reference import load_reference
    from tools.enrolment.importer import ImportFailed, import_file, load_progress

    path: Path = args.file
    err = Console(stderr=True)
    if not path.is_file():
        err.print(f"enrolment import: {path}: no such file")
        return 2
    settings = load_settings()
    reference = load_reference(settings.reference_dir)
    earlier = None if args.restart else load_progress(path)
    if earlier is not None and earlier.done:
        err.print(f"{path} was imported completely ({earlier.sent:,} rows sent); "
                  "--restart sends it again")
        return 1 if earlier.bad else 0
    if earlier is not None and earlier.offset:
        err.print(f"resuming after line {earlier.line:,} ({earlier.sent:,} rows sent before)")
    size = path.stat().st_size
    with Progress(TextColumn("[bold]enrolment"), BarColumn(), DownloadColumn(),
                  TextColumn("{task.fields[rows]:,} rows, {task.fields[bad]} bad"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("import", total=size, rows=0, bad=0,
                            completed=earlier.offset if earlier else 0)

        def follow(done: int, sent: int, bad: int) -> None:
            bar.update(task, completed=done, rows=sent, bad=bad)

        try:
            result = asyncio.run(import_file(
                path, bootstrap=settings.kafka_bootstrap_servers, prefix=settings.topic_prefix,
                reference=reference, restart=args.restart, max_rows=args.max_rows,
                on_progress=follow))
        except ImportFailed as exc:
            err.print(f"enrolment import: {exc}")
            return 2
    for bad in result.bad[:SHOWN_BAD_ROWS]:  # one line each, never wrapped: grep finds them
        print(f"{path}: {bad}", file=sys.stderr)
    if len(result.bad) > SHOWN_BAD_ROWS:
        err.print(f"… and {len(result.bad) - SHOWN_BAD_ROWS} more bad rows (all listed in "
                  f"{path.name}.progress)")
    state = "done" if result.done else "stopped (run again to resume)"
    print(f"{path}: {result.sent:,} rows sent in {result.seconds:.1f} s "
          f"({result.rows_per_s:,.0f} rows/s), {result.total_sent:,} in all; "
          f"{len(result.bad)} bad row(s) left out; {state}")
    sys.stdout.flush()
    return 1 if result.bad else 0
