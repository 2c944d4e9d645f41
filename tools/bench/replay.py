"""The audit replay at a log of N records (issue 14, item 4; docs/benchmarks.md).

A fresh namespace and database; the three services run live over generated months of the
province (enrolment, filings, then months of settlements, refunds and re-settlements, as the
throughput figure makes them) until the topics the audit reads hold at least N records; then
`clearinghouse audit replay` (streaming, the default) replays the whole log while every audit
process (the command and the rebuild processes it spawns) is sampled for its resident memory.
Reported: records replayed, replay events/s, the match, and the peak RSS of every audit
process.

    python3 -m tools.bench.replay --records 300000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from shared.config import REPO_ROOT
from shared.db import redact_url
from tools.audit.replay import topics_to_read
from tools.bench import province as pv
from tools.bench.infra import (
    LedgerWatch,
    MemorySampler,
    _infrastructure_pids,
    end_offsets,
    participant_keys_for,
)
from tools.bench.runner import Bench, Sizes, say

#: Settlements a generated month holds (the log grows by about 5 records a settlement).
MONTH = 50_000


async def log_records(bootstrap: str, prefix: str) -> int:
    total = 0
    for topic in topics_to_read():
        total += sum((await end_offsets(bootstrap, prefix + topic)).values())
    return total


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _name(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/comm").read_text().strip() + f" {pid}")
    except OSError:
        return str(pid)


async def _sample_tree(pid: int, peaks: dict[str, float], stop: asyncio.Event) -> None:
    """VmRSS of `pid` and its descendants every 0.2 s; the largest seen per process."""
    while not stop.is_set():
        tree, frontier = [pid], [pid]
        while frontier:
            frontier = [c for p in frontier for c in _children(p)]
            tree += frontier
        for p in tree:
            mb = MemorySampler.rss_mb(p)
            if mb:
                name = "audit (command)" if p == pid else f"audit child {_name(p)}"
                peaks[name] = max(peaks.get(name, 0.0), mb)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


async def run(database_url: str, bootstrap: str, records: int, *, persons: int | None = None,
              keep: bool = False, workdir: Path | None = None,
              extra: tuple[str, ...] = (), profile: Path | None = None) -> dict[str, Any]:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bench-replay-"))
    persons = persons or max(500, min(200_000, records // 10))
    bench = Bench(Sizes(persons=persons, hospitals=400), bootstrap=bootstrap,
                  database_url=database_url, workdir=workdir, keep=keep)
    province = pv.write_reference(workdir / "reference", hospitals=400, seed=1)
    bench.signer = participant_keys_for(province, workdir / "secrets")
    env = bench.environment()
    watch = LedgerWatch()
    result: dict[str, Any] = {"records_wanted": records, "persons": persons}
    try:
        await env.create()
        people = pv.persons(province, persons, seed=2)
        env.start("filing", "settlement", "clearing")
        await watch.start(env)
        generating = time.perf_counter()
        await bench._enrolment(env, people)  # noqa: SLF001 - the bench's own steps
        await bench._filings(env, people)  # noqa: SLF001
        cycle, n, settlements = "2026-01", 0, 0
        while (have := await log_records(bootstrap, env.prefix)) < records:
            size = max(100, min(MONTH, (records - have) // 5 + 100))
            month = pv.month(province, people, size, cycle=cycle, tag=f"M{n}", seed=10 + n)
            await bench._throughput_run(env, watch, month, record=False)  # noqa: SLF001
            settlements += size
            say(f"log: {await log_records(bootstrap, env.prefix):,} records "
                f"({settlements:,} settlements)")
            cycle, n = pv.next_cycle(cycle), n + 1
        await bench._outbox_empty(env)  # noqa: SLF001 - everything published
        result["generate_seconds"] = round(time.perf_counter() - generating, 1)
        result["log_records"] = await log_records(bootstrap, env.prefix)
        result["settlements"] = settlements
        env.stop()  # the live side stands still while it is audited
        if keep:  # `--again DIR` audits the same log again
            (workdir / "audit-target.json").write_bytes(orjson.dumps({
                "env": env.env, "prefix": env.prefix, "database_url": env.database_url,
                "generated": result}))
            say(f"kept: the log of {env.prefix}* and its database; audit it again with "
                f"`python3 -m tools.bench.replay --again {workdir}`")
        result |= await audit(env.env, env.prefix, env.database_url, extra, profile)
        return result
    finally:
        await watch.stop()
        env.stop()
        if not keep:
            await env.drop()
            shutil.rmtree(workdir, ignore_errors=True)


async def audit(env: dict[str, str], prefix: str, database_url: str,
                extra: tuple[str, ...] = (), profile: Path | None = None) -> dict[str, Any]:
    """`clearinghouse audit replay` of the namespace, its audit processes sampled (and
    profiled by py-spy, the rebuild processes included, into `profile` when given: collapsed
    stacks, one line per stack)."""
    started = time.perf_counter()
    cpu_before = _cpu_now()
    spy = ("py-spy", "record", "--subprocesses", "--rate", "200", "--format", "raw",
           "--nonblocking", "-o", str(profile), "--") if profile else ()
    process = await asyncio.create_subprocess_exec(
        *spy, sys.executable, "-m", "cli", "audit", "replay", "--prefix", prefix,
        "--database-url", redact_url(database_url), "--json", "--quiet", *extra,
        env={**os.environ, **env}, cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    peaks: dict[str, float] = {}
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_tree(process.pid, peaks, stop))
    try:
        output, errors = await process.communicate()
    finally:
        stop.set()
        await sampler
    seconds = time.perf_counter() - started
    cpu = {k: round(v - cpu_before[k], 1) for k, v in _cpu_now().items()}
    try:
        report = orjson.loads(output)
    except orjson.JSONDecodeError:
        return {"measured": False, "exit_code": process.returncode,
                "why": errors.decode(errors="replace")[-500:]}
    run = report["run"]
    replayed = sum(s["records"] for s in report["replayed"].values())
    return {"measured": True, "match": report["match"], "exit_code": process.returncode,
            "records_replayed": replayed, "replay_seconds": run["replay_seconds"],
            "events_per_s": run["events_per_second"], "read_seconds": run["read_seconds"],
            "plan_seconds": run["plan_seconds"], "compare_seconds": run["compare_seconds"],
            "wall_seconds": round(seconds, 1),
            "events_per_s_wall": round(replayed / seconds) if seconds else None,
            "per_service": run["per_service"], "streaming": run.get("streaming"),
            "peak_rss_mb": {k: round(v, 1) for k, v in sorted(peaks.items())},
            "largest_rss_mb": round(max(peaks.values()), 1) if peaks else None,
            # CPU seconds over the whole audit (read, plan, rebuild, compare): where it goes
            "cpu_seconds": cpu}


def _cpu_now() -> dict[str, float]:
    """CPU seconds so far of this process's finished children (the audit command and the
    rebuild processes it reaped), of the PostgreSQL server (the postmaster, the backends
    it reaped and those still running) and of every core (busy, all)."""
    import resource

    tick = os.sysconf("SC_CLK_TCK")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = {"audit": children.ru_utime + children.ru_stime, "postgres": 0.0}
    _, postgres = _infrastructure_pids()
    if postgres is not None:
        def times(pid: int, reaped: bool) -> float:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return 0.0
            return sum(int(f) for f in fields[11:15 if reaped else 13]) / tick
        found["postgres"] = times(postgres, True) + sum(
            times(pid, False) for pid in _children(postgres))
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    found["machine_busy"] = (sum(values) - values[3] - values[4]) / tick
    found["machine_all"] = sum(values) / tick
    return found


def main(argv: list[str] | None = None) -> int:
    from shared.config import load_settings

    parser = argparse.ArgumentParser(prog="python3 -m tools.bench.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300_000,
                        help="records in the log (at least)")
    parser.add_argument("--persons", type=int, help="insured persons (default records/10)")
    parser.add_argument("--json", type=Path, help="where to write the JSON result")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="py-spy the audit and its rebuild processes into FILE "
                             "(collapsed stacks; the figures are then slower)")
    parser.add_argument("--in-memory", action="store_true",
                        help="replay with the whole log in memory (the former replay)")
    parser.add_argument("--groups", type=int, metavar="N",
                        help="the audit's --groups (default: the audit's own default)")
    parser.add_argument("--again", type=Path, metavar="DIR",
                        help="audit again the log a run with --keep left (its work directory)")
    args = parser.parse_args(argv)
    settings = load_settings()
    extra = (("--in-memory",) if args.in_memory else ()) + (
        ("--groups", str(args.groups)) if args.groups else ())
    if args.again:
        target = orjson.loads((args.again / "audit-target.json").read_bytes())
        result = target["generated"] | asyncio.run(audit(
            target["env"], target["prefix"], target["database_url"], extra, args.profile))
    else:
        result = asyncio.run(run(settings.database_url, settings.kafka_bootstrap_servers,
                                 args.records, persons=args.persons, keep=args.keep,
                                 extra=extra, profile=args.profile))
    path = args.json or REPO_ROOT / "tools" / "bench" / "results" / (
        f"bench-replay-{time.strftime('%Y%m%d-%H%M%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(f"JSON: {path}")
    return 0 if result.get("match") else 1


if __name__ == "__main__":
    raise SystemExit(main())
