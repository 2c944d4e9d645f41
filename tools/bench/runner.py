"""The bench's measurements: each figure of docs/benchmarks.md, on the local infrastructure."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from shared import topics
from shared.config import REPO_ROOT
from shared.db import redact_url
from shared.events import encode, make_event
from shared.events.clearing import DayStarted
from shared.messaging import clients as kafka_clients
from shared.participant_keys import Signer
from tools.bench import province as pv
from tools.bench.infra import (
    Environment,
    LedgerWatch,
    MemorySampler,
    TopicTail,
    end_offsets,
    now,
    participant_keys_for,
    producer,
    publish_all,
    signed,
)


@dataclass
class Sizes:
    persons: int = 200_000
    hospitals: int = 400
    settlements: int = 200_000
    repeat: int = 3
    latency_rate: int = 2_000
    latency_seconds: float = 30.0
    latency_repeat: int = 3
    cycle_settlements: int = 1_000_000
    cycle_repeat: int = 1
    baseline_repeat: int = 3
    #: Pairs of throughput runs with signatures on and off (services restarted between).
    signature_repeat: int = 2
    seed: int = 1

    @classmethod
    def quick(cls) -> Sizes:
        return cls(persons=2_000, hospitals=400, settlements=3_000, repeat=3, latency_rate=2_000,
                   latency_seconds=3.0, latency_repeat=3, cycle_settlements=10_000,
                   cycle_repeat=1, baseline_repeat=3, signature_repeat=2)


def spread(values: list[float]) -> dict[str, float | int]:
    """min / median / max (and n) of repeated measurements."""
    if not values:
        return {"n": 0}
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "n": len(values)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=REPO_ROOT, capture_output=True, text=True,
                                    timeout=5).stdout.strip())
    except Exception:
        commit, dirty = "", False
    return {"cpu": cpu, "nproc": os.cpu_count(), "memory_mb": memory,
            "python": platform.python_version(), "kernel": platform.release(),
            "load_average_at_start": list(os.getloadavg()),
            "commit": commit + ("+changes" if dirty else "")}


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Results:
    sizes: dict[str, Any]
    machine: dict[str, Any]
    throughput: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    clearing: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    signatures: dict[str, Any] = field(default_factory=dict)
    #: Throughput with several instances of each service against one (`Bench._instances`).
    instances: dict[str, Any] = field(default_factory=dict)
    accounting: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    finished_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Offered loads of the latency below capacity, as shares of the run's measured throughput.
LOAD_SHARES = (0.25, 0.50, 0.75)
#: Instances of each service in the scaled throughput run (against one).
SCALED_INSTANCES = 3
#: Months after the latency runs: one per load share, the scaled run's warm-up and run.
LATER_MONTHS = len(LOAD_SHARES) + 2


class Bench:
    def __init__(self, sizes: Sizes, *, bootstrap: str, database_url: str, workdir: Path,
                 keep: bool = False, profile_dir: Path | None = None):
        self.profile_dir = profile_dir
        self.sizes = sizes
        self.bootstrap = bootstrap
        self.database_url = database_url
        self.workdir = workdir
        self.keep = keep
        self.results = Results(sizes=asdict(sizes), machine=machine())
        self.skip: frozenset[str] = frozenset()
        #: Signs as the generated hospitals and agencies (keys made by `run`).
        self.signer: Signer | None = None

    # ---- the whole run ----------------------------------------------------------------------

    async def run(self, *, skip: frozenset[str] = frozenset()) -> Results:
        started = now()
        self.skip = skip
        reference = self.workdir / "reference"
        province = pv.write_reference(reference, hospitals=self.sizes.hospitals,
                                      seed=self.sizes.seed)
        say(f"province: {len(province.pools)} pools, {len(province.hospitals)} hospitals, "
            f"reference in {reference}")
        self.signer = participant_keys_for(province, self.workdir / "secrets")
        if "pipeline" not in skip:
            await self.pipeline(province)
        if "clearing" not in skip:
            await self.cycle(province)
        self.results.wall_seconds = now() - started
        self.results.finished_at = time.strftime("%Y-%m-%d %H:%M %Z")
        return self.results

    def environment(self) -> Environment:
        return Environment(self.bootstrap, self.database_url, self.workdir / "reference",
                           self.workdir / "logs", participant_keys=(
                               self.signer.registry_path if self.signer else None))

    # ---- figures 1, 2, 4, 5, 6: all services on one namespace --------------------------------

    async def pipeline(self, province: pv.Province) -> None:
        sizes = self.sizes
        env = self.environment()
        watch = LedgerWatch()
        try:
            await env.create()  # inside: a bench stopped while it creates still drops it
            say(f"namespace {env.name}: generating {sizes.persons} persons and "
                f"{sizes.repeat} month(s) of {sizes.settlements} settlements")
            people = pv.persons(province, sizes.persons, seed=sizes.seed + 1)
            cycles = ["2026-09"]
            # warm-up, the run without the registry check, a warm-up after the restart, the
            # runs, the latency runs, the signatures' off/on pairs
            while len(cycles) < sizes.repeat + sizes.latency_repeat + 3 + LATER_MONTHS + \
                    2 * sizes.signature_repeat:
                cycles.append(pv.next_cycle(cycles[-1]))
            warmup = pv.month(province, people, min(500, sizes.settlements), cycle=cycles[0],
                              tag="W", seed=sizes.seed)
            unchecked = pv.month(province, people, sizes.settlements, cycle=cycles[1],
                                 tag="X", seed=sizes.seed)
            rewarm = pv.month(province, people, min(500, sizes.settlements), cycle=cycles[2],
                              tag="V", seed=sizes.seed)
            months = [pv.month(province, people, sizes.settlements, cycle=cycles[3 + r],
                               tag=chr(ord("A") + r), seed=sizes.seed)
                      for r in range(sizes.repeat)]
            # The settlement service starts without the registry check, for the figure it is
            # compared with (the throughput before the registry existed), then runs with it.
            env.start("filing", "clearing")
            env.start("settlement", CLEARINGHOUSE_ENROLMENT_CHECK="off")
            await watch.start(env)
            await self._enrolment(env, people)
            await self._filings(env, people)
            say("warm-up month")
            await self._throughput_run(env, watch, warmup, record=False)
            off = await self._throughput_run(env, watch, unchecked, record=True)
            off_accounted = (await self._account(env, unchecked, off))["accounted"]
            say(f"without the registry check: {off['settlements_per_s']:.0f} settlements/s "
                f"({off['seconds']:.2f} s)")
            env.restart("settlement")  # with the check, as it always runs
            await self._throughput_run(env, watch, rewarm, record=False)
            sampler = MemorySampler(env)
            profilers = self._profile(env)
            for r, month in enumerate(months):
                sampler.start()
                run = await self._throughput_run(env, watch, month, record=True)
                peaks = await sampler.stop()
                run["peak_rss_mb"] = peaks
                run["cpu_seconds"] = sampler.cpu_used()
                run["machine_busy"] = sampler.machine_utilisation()
                say(f"run {r + 1}/{len(months)}: {run['settlements_per_s']:.0f} settlements/s "
                    f"({run['seconds']:.2f} s); peak RSS {peaks}; CPU s {run['cpu_seconds']}, "
                    f"machine busy {run['machine_busy']:.0%}")
                self.results.accounting.append(await self._account(env, month, run))
                self.results.throughput.setdefault("runs", []).append(run)
            for process in profilers:
                process.send_signal(2)
                process.wait(30)
            runs = self.results.throughput["runs"]
            median_on = statistics.median(r["settlements_per_s"] for r in runs)
            self.results.throughput["registry_check"] = {
                "off_settlements_per_s": off["settlements_per_s"], "off_seconds": off["seconds"],
                "off_accounted": off_accounted,
                "on_settlements_per_s": median_on,
                "ratio_on_to_off": median_on / off["settlements_per_s"]}
            say(f"registry check on: {median_on:.0f} settlements/s, "
                f"{median_on / off['settlements_per_s']:.2f} of the figure without it")
            self.results.throughput |= {
                "settlements": sizes.settlements,
                "settlements_per_s": spread([r["settlements_per_s"] for r in runs]),
                "events_per_s": spread([r["events_per_s"] for r in runs]),
                "seconds": spread([r["seconds"] for r in runs]),
                "postings_per_s": spread([r["postings_per_s"] for r in runs]),
            }
            self.results.memory = {
                "peak_rss_mb": {name: spread([r["peak_rss_mb"].get(name, 0.0) for r in runs])
                                for name in env.processes},
                "vm_hwm_mb_at_end": {name: MemorySampler.rss_mb(p.pid, "VmHWM")
                                     for name, p in env.processes.items()},
            }
            lat_months = [pv.month(province, people,
                                   int(sizes.latency_rate * sizes.latency_seconds * 0.97),
                                   cycle=cycles[3 + sizes.repeat + r], tag=f"L{r}",
                                   seed=sizes.seed)
                          for r in range(sizes.latency_repeat)]
            for r, month in enumerate(lat_months):
                sampler.start()
                run = await self._latency_run(env, watch, month)
                await sampler.stop()
                run["cpu_seconds"] = sampler.cpu_used()
                run["machine_busy"] = sampler.machine_utilisation()
                say(f"latency {r + 1}/{len(lat_months)}: completed p50 "
                    f"{run['completed_ms']['p50']:.0f} p99 {run['completed_ms']['p99']:.0f} ms; "
                    f"ledger p50 {run['ledger_ms']['p50']:.0f} p99 {run['ledger_ms']['p99']:.0f}"
                    f" ms; offered {run['offered_per_s']:.0f}/s; CPU s {run['cpu_seconds']}, "
                    f"machine busy {run['machine_busy']:.0%}")
                self.results.accounting.append(await self._account(env, month, run))
                self.results.latency.setdefault("runs", []).append(run)
            if lat_months:
                runs = self.results.latency["runs"]
                self.results.latency |= {
                    "rate": sizes.latency_rate, "seconds": sizes.latency_seconds,
                    **{f"{to}_{q}": spread([r[f"{to}_ms"][q] for r in runs])
                       for to in ("completed", "ledger") for q in ("p50", "p99", "max")}}
            later = cycles[3 + sizes.repeat + sizes.latency_repeat:]
            if self.results.throughput.get("runs"):
                await self._loads(env, watch, province, people, later[:len(LOAD_SHARES)])
                await self._instances(env, watch, province, people,
                                      later[len(LOAD_SHARES):LATER_MONTHS])
            await self._baselines(env, months[0] if months else warmup)
            if "audit" not in self.skip:
                await self._audit(env)
            else:
                self.results.audit = {"measured": False, "why": "skipped (--no-audit)"}
            # Last: the log the audit replayed is signed throughout.
            first = 3 + sizes.repeat + sizes.latency_repeat + LATER_MONTHS
            await self._signatures(env, watch, province, people, cycles[first:])
        finally:
            await watch.stop()
            env.stop()
            if not self.keep:
                await env.drop()

    def _profile(self, env: Environment, suffix: str = "") -> list[subprocess.Popen[bytes]]:
        """py-spy on each service during the throughput runs, when asked (--profile DIR)."""
        if self.profile_dir is None:
            return []
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        return [subprocess.Popen(
            ["py-spy", "record", "--pid", str(p.pid), "--rate", "200", "--format", "raw",
             "--nonblocking", "-o", str(self.profile_dir / f"{name}{suffix}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, p in env.processes.items()]

    async def _enrolment(self, env: Environment, people: list[pv.Person]) -> None:
        """The agencies load their insured persons with `clearinghouse enrolment import`'s
        code; timed until the settlement service has folded every one (the import rate)."""
        from shared.reference import load_reference
        from tools.enrolment.importer import import_file

        path = pv.write_enrolment_csv(people, self.workdir / f"{env.name}-persons.csv")
        say(f"enrolment import: {len(people)} rows")
        started = now()
        result = await import_file(path, bootstrap=self.bootstrap, prefix=env.prefix,
                                   reference=load_reference(env.reference_dir), restart=True,
                                   signer=self.signer)
        sent = now()
        if result.bad:
            raise RuntimeError(f"the bench's enrolment file has bad rows: {result.bad[:3]}")
        await env.wait_for_table("settlement", "filing_views")
        conn = await env.connect("settlement")
        try:
            deadline = now() + max(120, len(people) / 200)
            while (n := await conn.fetchval("SELECT count(*) FROM filing_views")) < len(people):
                env.check_alive()
                if now() > deadline:
                    raise TimeoutError(f"only {n} of {len(people)} enrolments reached "
                                       "settlement")
                await asyncio.sleep(0.5)
        finally:
            await conn.close()
        loaded = now() - started
        self.results.throughput["enrolment_import"] = {
            "rows": result.sent, "send_seconds": sent - started,
            "sent_rows_per_s": result.sent / (sent - started), "loaded_seconds": loaded,
            "rows_per_s": result.sent / loaded}
        say(f"enrolment: {result.sent} rows sent in {sent - started:.1f} s, folded into the "
            f"settlement service in {loaded:.1f} s ({result.sent / loaded:.0f} rows/s)")

    async def _filings(self, env: Environment, people: list[pv.Person]) -> None:
        say(f"filings: {len(people)} persons")
        started = now()
        await publish_all(self.bootstrap, env.prefix + topics.FILING_COMMANDS, pv.filings(people),
                          signer=self.signer)
        await env.wait_for_table("settlement", "filing_views")
        conn = await env.connect("settlement")
        try:
            deadline = now() + max(120, len(people) / 200)
            # Every person has a view since the enrolment: count the views with a filing.
            while (n := await conn.fetchval(
                    "SELECT count(*) FROM filing_views "
                    "WHERE jsonb_array_length(view->'filings') > 0")) < len(people):
                env.check_alive()
                if now() > deadline:
                    raise TimeoutError(f"only {n} of {len(people)} filings reached settlement")
                await asyncio.sleep(0.5)
        finally:
            await conn.close()
        self.results.throughput["filings_setup_s"] = now() - started
        say(f"filings folded into the settlement service in {now() - started:.1f} s")

    async def _signatures(self, env: Environment, watch: LedgerWatch, province: pv.Province,
                          people: list[pv.Person], cycles: list[str]) -> None:
        """Throughput with signing and verification on against the same with them off, in
        pairs on one namespace (services restarted, and warmed up, before each run)."""
        sizes = self.sizes
        if not sizes.signature_repeat:
            return
        runs: dict[str, list[float]] = {"on": [], "off": []}
        accounting: list[dict[str, Any]] = []
        for r in range(sizes.signature_repeat):
            for n, mode in enumerate(("on", "off")):
                env.stop()
                env.overrides = {"CLEARINGHOUSE_SIGNATURES": mode}
                env.start("filing", "settlement", "clearing")
                warmup = pv.month(province, people, min(500, sizes.settlements),
                                  cycle=cycles[2 * r + n], tag=f"SW{r}{mode}", seed=sizes.seed)
                await self._throughput_run(env, watch, warmup, record=False, sign=mode == "on")
                month = pv.month(province, people, sizes.settlements, cycle=cycles[2 * r + n],
                                 tag=f"S{r}{mode}", seed=sizes.seed)
                run = await self._throughput_run(env, watch, month, record=True,
                                                 sign=mode == "on")
                runs[mode].append(run["settlements_per_s"])
                say(f"signatures {mode} {r + 1}/{sizes.signature_repeat}: "
                    f"{run['settlements_per_s']:.0f} settlements/s")
                accounting.append(await self._account(env, month, run))
        env.overrides = {}
        on, off = spread(runs["on"]), spread(runs["off"])
        self.results.signatures = {
            "settlements": sizes.settlements, "pairs": sizes.signature_repeat,
            "on_settlements_per_s": on, "off_settlements_per_s": off,
            "ratio_on_to_off": on["median"] / off["median"] if off["median"] else None,
            "accounting": accounting}
        say(f"signatures: on {on['median']:.0f}/s, off {off['median']:.0f}/s, "
            f"ratio {self.results.signatures['ratio_on_to_off']:.2f}")

    async def _throughput_run(self, env: Environment, watch: LedgerWatch, month: pv.Month, *,
                              record: bool, sign: bool = True) -> dict[str, Any]:
        target = watch.settled + month.total
        # Signed as a hospital would, before the clock starts (the senders' cost is theirs).
        messages = signed([(s.key, s.value) for s in month.submissions],
                          self.signer if sign else None)
        sender = producer(self.bootstrap)
        await sender.start()
        try:
            conn = await env.connect("clearing")
            try:
                postings_before = await conn.fetchval("SELECT count(*) FROM postings")
                started = now()
                await publish_all(self.bootstrap, env.prefix + topics.SETTLEMENT_SUBMISSIONS,
                                  messages, sender)
                published = now()
                done = await watch.wait(settled=target, timeout=600 + month.total / 50, env=env)
                postings = await conn.fetchval("SELECT count(*) FROM postings") - postings_before
            finally:
                await conn.close()
        finally:
            await sender.stop()
        seconds = done - started
        settled = month.settlements + month.resettlements
        return {"cycle": month.cycle, "submissions": month.total, "settlements": settled,
                "refunds": month.refunds, "resettlements": month.resettlements,
                "seconds": seconds, "publish_seconds": published - started,
                "settlements_per_s": settled / seconds, "events_per_s": month.total / seconds,
                "postings": postings, "postings_per_s": postings / seconds}

    async def _loads(self, env: Environment, watch: LedgerWatch, province: pv.Province,
                     people: list[pv.Person], cycles: list[str]) -> None:
        """Latency below capacity: offered loads of `LOAD_SHARES` of the throughput measured
        in this run (median submissions/s of the throughput runs), each for
        ``latency_seconds``; p50/p99/max of each."""
        sizes = self.sizes
        capacity = self.results.throughput["events_per_s"]["median"]
        loads = []
        for share, cycle in zip(LOAD_SHARES, cycles, strict=True):
            rate = max(1.0, share * capacity)
            month = pv.month(province, people, max(50, int(rate * sizes.latency_seconds)),
                             cycle=cycle, tag=f"Q{int(share * 100)}", seed=sizes.seed)
            run = await self._latency_run(env, watch, month, rate=rate)
            run |= {"share": share, "rate": rate}
            say(f"latency at {share:.0%} of capacity ({rate:.0f}/s offered): completed p50 "
                f"{run['completed_ms']['p50']:.0f} p99 {run['completed_ms']['p99']:.0f} max "
                f"{run['completed_ms']['max']:.0f} ms; ledger p99 "
                f"{run['ledger_ms']['p99']:.0f} ms")
            self.results.accounting.append(await self._account(env, month, run))
            loads.append(run)
        self.results.latency["capacity_events_per_s"] = capacity
        self.results.latency["loads"] = loads

    async def _instances(self, env: Environment, watch: LedgerWatch, province: pv.Province,
                         people: list[pv.Person], cycles: list[str]) -> None:
        """Throughput with `SCALED_INSTANCES` instances of each service (one consumer group
        each; clearing: one active, the others on standby) against the run's one-instance
        median; then back to one instance of each."""
        sizes = self.sizes
        single = self.results.throughput["settlements_per_s"]["median"]
        env.stop()
        env.start("filing", "settlement", "clearing", instances=SCALED_INSTANCES)
        warm = pv.month(province, people, min(500, sizes.settlements), cycle=cycles[0],
                        tag="IW", seed=sizes.seed)
        month = pv.month(province, people, sizes.settlements, cycle=cycles[1], tag="I",
                         seed=sizes.seed)
        await self._throughput_run(env, watch, warm, record=False)
        run = await self._throughput_run(env, watch, month, record=True)
        self.results.accounting.append(await self._account(env, month, run))
        self.results.instances = {
            "instances": SCALED_INSTANCES, "one_settlements_per_s": single,
            "scaled_settlements_per_s": run["settlements_per_s"],
            "ratio": run["settlements_per_s"] / single, "run": run}
        say(f"{SCALED_INSTANCES} instances of each service: {run['settlements_per_s']:.0f} "
            f"settlements/s, {run['settlements_per_s'] / single:.2f} of one instance's")
        env.stop()
        env.start("filing", "settlement", "clearing")

    async def _latency_run(self, env: Environment, watch: LedgerWatch, month: pv.Month,
                           rate: float | None = None) -> dict[str, Any]:
        rate = rate or self.sizes.latency_rate
        target = watch.settled + month.total
        tail = TopicTail(self.bootstrap, env.prefix + topics.SETTLEMENT_EVENTS)
        await tail.start()
        sender = producer(self.bootstrap)
        await sender.start()
        sent_at: list[float] = [0.0] * month.total
        headers = [h for _, _, h in signed([(s.key, s.value) for s in month.submissions],
                                           self.signer)]
        futures = []
        try:
            topic = env.prefix + topics.SETTLEMENT_SUBMISSIONS
            started = now()
            n = 0
            while n < month.total:
                due = min(month.total, int((now() - started) * rate) + 1)
                while n < due:
                    s = month.submissions[n]
                    sent_at[n] = now()
                    futures.append(await sender.send(topic, s.value, key=s.key,
                                                     headers=headers[n]))
                    n += 1
                await asyncio.sleep(0.005)
            offered_seconds = now() - started
            await asyncio.gather(*futures)
            await watch.wait(settled=target, timeout=300 + month.total / 50, env=env)
            wanted = {s.outcome_id for s in month.submissions}
            await tail.wait_until(lambda rs: len(rs) >= month.total, timeout=60)
        finally:
            await sender.stop()
            await tail.stop()
        received: dict[str, float] = {}
        for at, value in tail.records:
            event_id = orjson.loads(value)["id"]
            if event_id in wanted:
                received.setdefault(event_id, at)
        conn = await env.connect("clearing")
        try:
            rows = await conn.fetch(
                "SELECT id, xmin::text::bigint AS xid FROM inbox WHERE topic = $1 "
                "AND id = ANY($2::text[])", topics.SETTLEMENT_EVENTS, list(wanted))
        finally:
            await conn.close()
        committed = {r["id"]: watch.commit_times.get(r["xid"]) for r in rows}
        completed_ms, ledger_ms = [], []
        for s, at in zip(month.submissions, sent_at, strict=True):
            if s.kind == "refund":
                continue
            if s.outcome_id in received:
                completed_ms.append((received[s.outcome_id] - at) * 1000)
            if committed.get(s.outcome_id) is not None:
                ledger_ms.append((committed[s.outcome_id] - at) * 1000)  # type: ignore[operator]

        def summary(values: list[float]) -> dict[str, float]:
            return {"p50": percentile(values, 0.50), "p99": percentile(values, 0.99),
                    "max": max(values) if values else float("nan"), "count": len(values)}

        return {"cycle": month.cycle, "submissions": month.total,
                "offered_per_s": month.total / offered_seconds,
                "completed_ms": summary(completed_ms), "ledger_ms": summary(ledger_ms)}

    async def _account(self, env: Environment, month: pv.Month, run: dict[str, Any]
                       ) -> dict[str, Any]:
        """Every submission of the month: its outcome on settlement.events, taken in by the
        clearing service, and an item in the ledger for each completion and refund."""
        outcomes: dict[str, str] = {s.outcome_id: s.kind for s in month.submissions}
        found: dict[str, int] = {}
        types: dict[str, int] = {}
        tail = TopicTail(self.bootstrap, env.prefix + topics.SETTLEMENT_EVENTS, from_start=True)
        ends = await end_offsets(self.bootstrap, env.prefix + topics.SETTLEMENT_EVENTS)
        total_records = sum(ends.values())
        await tail.start()
        try:
            await tail.wait_until(lambda rs: len(rs) >= total_records, timeout=120)
        finally:
            await tail.stop()
        for _, value in tail.records:
            event = orjson.loads(value)
            if event["id"] in outcomes:
                found[event["id"]] = found.get(event["id"], 0) + 1
                types[event["type"]] = types.get(event["type"], 0) + 1
        conn = await env.connect("clearing")
        try:
            taken = await conn.fetchval(
                "SELECT count(*) FROM inbox WHERE topic = $1 AND id = ANY($2::text[])",
                topics.SETTLEMENT_EVENTS, list(outcomes))
            items = {r["kind"]: r["n"] for r in await conn.fetch(
                "SELECT kind, count(*) AS n FROM items WHERE settlement_id = ANY($1::text[]) "
                "GROUP BY kind", sorted(_settlement_ids(month)))}
        finally:
            await conn.close()
        completed = types.get("settlement.completed", 0)
        refunded = types.get("settlement.refunded", 0)
        missing = len(outcomes) - len(found)
        duplicated = sum(1 for n in found.values() if n > 1)
        account = {
            "cycle": month.cycle, "submitted": month.total, "settlements": month.settlements,
            "refunds": month.refunds, "refunds_not_latest": month.refunds_not_latest,
            "resettlements": month.resettlements, "outcomes": types,
            "missing_outcomes": missing, "duplicated_outcomes": duplicated,
            "taken_by_clearing": taken, "items": items,
            "accounted": (missing == 0 and duplicated == 0 and taken == month.total
                          and items.get("settlement", 0) == completed
                          and items.get("refund", 0) == refunded),
        }
        if not account["accounted"]:
            say(f"ACCOUNTING MISMATCH for {month.cycle}: {account}")
        return account

    # ---- figure 6 ---------------------------------------------------------------------------

    async def _baselines(self, env: Environment, month: pv.Month) -> None:
        topic = env.prefix + topics.SETTLEMENT_SUBMISSIONS
        ends = await end_offsets(self.bootstrap, topic)
        total = sum(ends.values())
        rates = []
        for _ in range(self.sizes.baseline_repeat):
            consumer = kafka_clients.consumer(bootstrap=self.bootstrap, group_id=None,
                                        enable_auto_commit=False,
                                        fetch_max_bytes=64 * 1024 * 1024,
                                        max_partition_fetch_bytes=16 * 1024 * 1024)
            await consumer.start()
            try:
                consumer.assign(list(ends))
                for tp in ends:
                    consumer.seek(tp, 0)
                read = 0
                started = now()
                while read < total:
                    batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                    read += sum(len(v) for v in batch.values())
                rates.append(read / (now() - started))
            finally:
                await consumer.stop()
        self.results.baselines["consumer"] = {"messages": total, "per_s": spread(rates)}
        conn = await env.connect("clearing")
        try:
            rows = await conn.fetch("SELECT * FROM postings WHERE cycle = $1", month.cycle)
            columns = list(rows[0].keys()) if rows else []
            records = [tuple(r.values()) for r in rows]
            copy_rates = []
            for n in range(self.sizes.baseline_repeat):
                table = f"bench_copy_{n}"
                await conn.execute(f"DROP TABLE IF EXISTS public.{table}")
                await conn.execute(
                    f"CREATE TABLE public.{table} (LIKE clearing.postings INCLUDING ALL)")
                started = now()
                await conn.copy_records_to_table(table, schema_name="public", columns=columns,
                                                 records=records)
                copy_rates.append(len(records) / (now() - started))
                await conn.execute(f"DROP TABLE public.{table}")
        finally:
            await conn.close()
        self.results.baselines["copy"] = {"rows": len(records), "per_s": spread(copy_rates)}
        project = self.results.throughput.get("settlements_per_s", {}).get("median")
        postings = self.results.throughput.get("postings_per_s", {}).get("median")
        if project and rates:
            self.results.baselines["ratio_to_consumer"] = project / statistics.median(rates)
        if postings and copy_rates:
            self.results.baselines["ratio_to_copy"] = postings / statistics.median(copy_rates)
        say(f"baselines: consumer {statistics.median(rates):.0f} msg/s, COPY "
            f"{statistics.median(copy_rates) if copy_rates else 0:.0f} rows/s")

    # ---- figure 4 ---------------------------------------------------------------------------

    async def _audit(self, env: Environment) -> None:
        if importlib.util.find_spec("tools.audit") is None:
            self.results.audit = {"measured": False,
                                  "why": "services/audit (clearinghouse audit replay) is not "
                                         "in this tree"}
            say("audit replay: not measured (no services/audit)")
            return
        events = 0
        for topic in (topics.FILING_COMMANDS, topics.FILING_EVENTS,
                      topics.SETTLEMENT_SUBMISSIONS, topics.SETTLEMENT_EVENTS,
                      topics.CLEARING_SUBMISSIONS, topics.CLEARING_SCHEDULE,
                      topics.CLEARING_RESULTS):
            events += sum((await end_offsets(self.bootstrap, env.prefix + topic)).values())
        started = now()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "audit", "replay", "--prefix", env.prefix,
            # no password on a command line: the audit takes it from DATABASE_URL (env)
            "--database-url", redact_url(env.database_url), "--json", "--quiet",
            env={**os.environ, **env.env}, cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            output, errors = await process.communicate()
        except asyncio.CancelledError:
            # The audit drops its database when stopped the same way (SIGTERM).
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            await process.wait()
            raise
        seconds = now() - started
        try:
            report = orjson.loads(output)
            run = report["run"]
            replayed = sum(s["records"] for s in report["replayed"].values())
        except Exception:
            self.results.audit = {"measured": False, "exit_code": process.returncode,
                                  "why": f"`audit replay` exited {process.returncode}: "
                                         + errors.decode(errors="replace")[-300:].strip()}
            say(f"audit replay: not measured ({self.results.audit['why']})")
            return
        self.results.audit = {
            "measured": True, "match": report.get("match"), "exit_code": process.returncode,
            "events_in_log": events, "records_replayed": replayed,
            "replay_seconds": run.get("replay_seconds"),
            "events_per_s": run.get("events_per_second"),
            "wall_seconds": seconds, "events_per_s_wall": replayed / seconds,
            "per_service": run.get("per_service"), "read_seconds": run.get("read_seconds")}
        say(f"audit replay: {replayed} records, {run.get('events_per_second')} events/s "
            f"(replay), {seconds:.1f} s wall, match={report.get('match')}")

    # ---- figure 3: the clearing service alone, fed a whole cycle ------------------------------

    async def cycle(self, province: pv.Province) -> None:
        runs = []
        for r in range(self.sizes.cycle_repeat):
            env = self.environment()
            watch = LedgerWatch()
            try:
                await env.create()
                env.start("clearing")
                await watch.start(env)
                runs.append(await self._cycle_run(env, watch, province, seed=self.sizes.seed + r))
                say(f"cycle {r + 1}: statements {runs[-1]['statements_s']:.2f} s, "
                    f"instructions {runs[-1]['instructions_s']:.2f} s")
            finally:
                await watch.stop()
                env.stop()
                if not self.keep:
                    await env.drop()
        self.results.clearing = {
            "settlements": self.sizes.cycle_settlements, "runs": runs,
            "statements_s": spread([r["statements_s"] for r in runs]),
            "instructions_s": spread([r["instructions_s"] for r in runs]),
        }

    async def _cycle_run(self, env: Environment, watch: LedgerWatch, province: pv.Province,
                         seed: int) -> dict[str, Any]:
        cycle = "2026-10"
        first, day2, day10 = pv.cycle_days(cycle)
        say(f"cycle {cycle}: publishing {self.sizes.cycle_settlements} settlement.completed")
        started = now()
        sender = producer(self.bootstrap)
        await sender.start()
        events = 0
        try:
            for chunk in pv.completed_events(province, self.sizes.cycle_settlements, cycle=cycle,
                                             seed=seed):
                events += await publish_all(self.bootstrap,
                                            env.prefix + topics.SETTLEMENT_EVENTS, chunk, sender)
            await watch.wait(settled=events, timeout=600 + events / 100, env=env)
            intake = now() - started
            say(f"cycle {cycle}: {events} events taken in ({events / intake:.0f}/s); "
                f"days {first} .. {day2 - timedelta(days=1)}")
            days = 0
            day = first
            while day < day2 - timedelta(days=1):
                day += timedelta(days=1)
                await self._start_day(env, sender, day)
                days += 1
            await watch.wait(days=days, timeout=1200, env=env)
            await self._outbox_empty(env)
            statements_s = await self._timed_day(env, watch, sender, day2, days + 1,
                                                 "clearing.statement_issued", cycle)
            days += 1
            day = day2
            while day < day10 - timedelta(days=1):
                day += timedelta(days=1)
                await self._start_day(env, sender, day)
                days += 1
            await watch.wait(days=days, timeout=600, env=env)
            await self._outbox_empty(env)
            instructions_s = await self._timed_day(env, watch, sender, day10, days + 1,
                                                   "clearing.net_transfer_instruction", cycle)
        finally:
            await sender.stop()
        return {"cycle": cycle, "events": events, "intake_s": intake,
                "intake_per_s": events / intake, "statements_s": statements_s,
                "instructions_s": instructions_s}

    async def _start_day(self, env: Environment, sender: Any, day: date) -> None:
        from services.clearing import scheduler

        marks = await scheduler.watermarks(self.bootstrap, env.prefix)
        event = make_event(DayStarted(date=day, watermarks=marks), id=f"day:{day.isoformat()}",
                           source=scheduler.SOURCE, time=scheduler.midnight(day))
        await sender.send_and_wait(env.prefix + topics.CLEARING_SCHEDULE, encode(event),
                                   key=b"calendar")

    async def _timed_day(self, env: Environment, watch: LedgerWatch, sender: Any, day: date,
                         days: int, kind: str, cycle: str) -> float:
        """From the day's event in the log to the last result of `kind` on clearing.results."""
        tail = TopicTail(self.bootstrap, env.prefix + topics.CLEARING_RESULTS)
        await tail.start()
        profilers = self._profile(env, suffix=f"-{kind.rsplit('.', 1)[-1]}")
        try:
            await self._start_day(env, sender, day)
            started = now()
            await watch.wait(days=days, timeout=1200, env=env)
            conn = await env.connect("clearing")
            try:
                expected = await conn.fetchval(
                    "SELECT count(*) FROM results WHERE type = $1 AND document->'data'->>'cycle'"
                    " = $2", kind, cycle)
            finally:
                await conn.close()
            needle = f'"type":"{kind}"'.encode()

            def seen(records: list[tuple[float, bytes]]) -> bool:
                return sum(1 for _, v in records if needle in v) >= expected

            await tail.wait_until(seen, timeout=600)
            last = max(at for at, v in tail.records if needle in v)
            say(f"{day}: {expected} {kind} in {last - started:.2f} s")
            if expected == 0:
                raise RuntimeError(f"{day}: no {kind} was issued")
            return last - started
        finally:
            for process in profilers:
                process.send_signal(2)
                process.wait(30)
            await tail.stop()

    async def _outbox_empty(self, env: Environment, timeout: float = 600) -> None:
        conn = await env.connect("clearing")
        try:
            deadline = now() + timeout
            while await conn.fetchval("SELECT count(*) FROM outbox"):
                if now() > deadline:
                    raise TimeoutError("the clearing outbox did not drain")
                await asyncio.sleep(0.1)
        finally:
            await conn.close()


def _settlement_ids(month: pv.Month) -> set[str]:
    ids = set()
    for s in month.submissions:
        data = orjson.loads(s.value)["data"]
        ids.add(data["settlement_id"])
    return ids


def default_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="clearinghouse-bench-"))


async def connect_check(database_url: str) -> None:
    conn = await asyncpg.connect(database_url, timeout=5)
    await conn.close()
