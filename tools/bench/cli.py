"""`clearinghouse bench`: measure the system on the local infrastructure (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path

import orjson


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = sub.add_parser(
        "bench", help="measure throughput, latency, monthly clearing, memory and baselines",
        description="Runs the services on a fresh topic namespace and database of the local "
                    "Kafka and PostgreSQL (`clearinghouse infra up`), prints a table, writes "
                    "JSON and (full runs) updates docs/benchmarks.md.")
    bench.add_argument("--quick", action="store_true",
                       help="small sizes (a few thousand settlements): under 3 minutes")
    bench.add_argument("--persons", type=int, help="insured persons with filings")
    bench.add_argument("--hospitals", type=int, help="hospitals in the 20 pools")
    bench.add_argument("--settlements", type=int, help="settlements in each throughput run")
    bench.add_argument("--repeat", type=int, help="throughput runs (min/median/max)")
    bench.add_argument("--latency-rate", type=int, help="offered settlements/s for latency")
    bench.add_argument("--latency-seconds", type=float, help="length of each latency run")
    bench.add_argument("--latency-repeat", type=int, help="latency runs")
    bench.add_argument("--cycle-settlements", type=int,
                       help="settlements in the monthly clearing cycle")
    bench.add_argument("--cycle-repeat", type=int, help="monthly clearing runs")
    bench.add_argument("--signature-repeat", type=int,
                       help="pairs of throughput runs with signatures on and off (figure 7)")
    bench.add_argument("--only", choices=["pipeline", "clearing", "portal", "replay"],
                       help="run only the pipeline figures (1, 2, 4, 5, 6), clearing (3), "
                            "the portal's page latency (tools/bench/portal.py) or the audit replay "
                            "of a generated log (tools/bench/replay.py, --replay-records)")
    bench.add_argument("--replay-records", type=int, metavar="N",
                       help="generate a log of at least N records with the live services and "
                            "replay it (events/s, peak RSS of every audit process); in a full "
                            "run after the other figures")
    bench.add_argument("--portal-settlements", metavar="N[,N]",
                       help="cycle sizes of the portal section (default 5000,1000000; "
                            "--quick: 5000; 0: skip it)")
    bench.add_argument("--portal-requests", type=int, default=20,
                       help="requests per portal page")
    bench.add_argument("--no-audit", action="store_true",
                       help="skip figure 4 (audit replay of the whole log)")
    bench.add_argument("--json", type=Path, help="where to write the JSON results "
                       "(default tools/bench/results/bench-<time>.json)")
    bench.add_argument("--update-docs", action=argparse.BooleanOptionalAction, default=None,
                       help="rewrite the figures in docs/benchmarks.md (default: on for full "
                            "runs, off with --quick)")
    bench.add_argument("--keep", action="store_true",
                       help="keep the bench databases, topics and work directory")
    bench.add_argument("--profile", type=Path, metavar="DIR",
                       help="record py-spy profiles of the services during the throughput "
                            "runs into DIR (collapsed stacks, one file a service)")
    bench.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from shared.config import REPO_ROOT, load_settings
    from shared.health import unreachable
    from shared.running import Interrupted, run_cancellable
    from tools.bench.report import print_table, update_docs
    from tools.bench.runner import Bench, Sizes, default_workdir, say

    sizes = Sizes.quick() if args.quick else Sizes()
    for name in ("persons", "hospitals", "settlements", "repeat", "latency_rate",
                 "latency_seconds", "latency_repeat", "cycle_settlements", "cycle_repeat",
                 "signature_repeat"):
        value = getattr(args, name)
        if value is not None:
            setattr(sizes, name, value)
    settings = load_settings()
    problems = asyncio.run(unreachable(settings.kafka_bootstrap_servers, settings.database_url))
    if problems:
        for problem in problems:
            print(f"bench: {problem}", file=sys.stderr)
        print("bench: start the local servers with `clearinghouse infra up` (or point "
              "KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL at running ones)", file=sys.stderr)
        return 2
    portal_sizes = [int(n) for n in (args.portal_settlements or (
        "5000" if args.quick else "5000,1000000")).replace("_", "").split(",") if int(n) > 0]
    if args.only == "portal":
        return _portal(settings.database_url, portal_sizes, args.portal_requests, args.json,
                       args.keep)
    if args.only == "replay":
        from tools.bench import replay

        return replay.main([f"--records={args.replay_records or 300_000}",
                            *([f"--json={args.json}"] if args.json else []),
                            *(["--keep"] if args.keep else [])])
    workdir = default_workdir()
    skip = frozenset({"pipeline", "clearing"} - {args.only}) if args.only else frozenset()
    run_portal = args.only is None and bool(portal_sizes)  # after the others, below
    if args.no_audit:
        skip |= {"audit"}
    bench = Bench(sizes, bootstrap=settings.kafka_bootstrap_servers,
                  database_url=settings.database_url, workdir=workdir, keep=args.keep,
                  profile_dir=args.profile)
    try:
        results = run_cancellable(bench.run(skip=skip)).as_dict()
    except Interrupted:
        say("interrupted: the bench's services, database and topics were removed"
            + (" (--keep: kept)" if args.keep else ""))
        return 130
    finally:
        if args.keep:
            say(f"kept the work directory (reference data, service logs): {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if run_portal:
        from tools.bench import portal

        results["portal"] = asyncio.run(portal.run(settings.database_url, portal_sizes,
                                                   args.portal_requests, args.keep))
        for run in results["portal"]["runs"]:
            print(portal.table(run))
    if args.replay_records:
        from tools.bench import replay

        results["replay"] = asyncio.run(replay.run(
            settings.database_url, settings.kafka_bootstrap_servers, args.replay_records,
            keep=args.keep))
        print(orjson.dumps(results["replay"], option=orjson.OPT_INDENT_2).decode())
    path = args.json or REPO_ROOT / "tools" / "bench" / "results" / (
        f"bench-{'quick-' if args.quick else ''}{time.strftime('%Y%m%d-%H%M%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print_table(results)
    print(f"JSON: {path}")
    if args.update_docs if args.update_docs is not None else not args.quick:
        update_docs(results, path)
        say("docs/benchmarks.md updated")
    return 0 if all(a["accounted"] for a in results["accounting"]) else 1


def _portal(database_url: str, sizes: list[int], requests: int, json_path: Path | None,
            keep: bool) -> int:
    """`clearinghouse bench --only portal`: the portal section alone (tools/bench/portal.py)."""
    from tools.bench import portal

    return portal.run_from_arguments(argparse.Namespace(
        settlements=",".join(str(n) for n in sizes), requests=requests, json=json_path,
        keep=keep))


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.bench.cli …`: the same as `clearinghouse bench …`."""
    parser = argparse.ArgumentParser(prog="clearinghouse")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(argv if argv is not None else __import__("sys").argv[1:])])
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
