"""The portal's page latency at a cycle of N settlements (issue 15, docs/benchmarks.md).

A fresh database is built from the real migrations (settlement and clearing, as their own
roles) and filled with one cycle of N settlements as the clearing service stores them:
items (bulk COPY of the rows `store._save_items` writes), the settlement service's id table
(the search by person id), the daily reports, statements and net-transfer instructions
computed from those items by the clearing domain (`store.cycle_totals`,
`statements_from_totals`, `build_daily_reports`, `net_transfer_instructions`) and stored as
published results, and the clearing aggregate. Then the real portal server (`clearinghouse
serve portal`) is started on it, an agency and the auditor log in with real sessions, and
every page and API endpoint is requested repeatedly: p50/p95/max per page, set against the
200 ms (demo size) / 1 s (1M settlements) targets and against a trivial endpoint of the same
server (`/api/me`) measured in the same run.

Not filled: ledger postings (the auditor's ledger check runs over none here) and difference
notices.

    python3 -m tools.bench.portal --settlements 5000,1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from services.clearing import store
from services.clearing.domain.cycles import net_transfer_instructions, statements_from_totals
from services.clearing.domain.items import ClearingItem, ItemKind, refund_key, settlement_key
from services.clearing.domain.ledger import EventRef
from services.clearing.domain.periods import milestone
from services.clearing.domain.reports import Answer, build_daily_reports
from services.clearing.domain.state import (
    ClearingState,
    CycleState,
    CycleStatus,
    InstructionState,
    StatementRecord,
)
from shared.business_time import SHANGHAI
from shared.config import REPO_ROOT
from shared.db import apply_migrations, create_pool, drop_database, prepare_database
from shared.db.roles import service_database_url
from shared.events import make_event
from shared.events.clearing import HUB
from shared.reference import load_reference

CYCLE = "2026-10"
#: The busiest agency (长春, the provincial capital): its pages are the ones measured.
AGENCY = "220100"
DEMO_SETTLEMENTS = 5000
#: The targets of issue 15: at the demo's size, and at a cycle of 1M settlements.
DEMO_TARGET_MS, LARGE_TARGET_MS = 200.0, 1000.0
REFUND_SHARE = 0.01
CLEARING_SOURCE = "service/clearing"
SETTLEMENT_SOURCE = "service/settlement"
ITEM_COLUMNS = ("item_id", "kind", "hospital", "settlement_id", "insured_agency",
                "care_agency", "business_date", "origin_cycle", "cycle", "cleared_amount",
                "reported_on", "document")


def say(text: str) -> None:
    print(f"[tools.bench.portal {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---- filling a cycle -------------------------------------------------------------------------


@dataclass
class Filled:
    settlements: int
    items: int
    persons: int
    seconds: float
    #: Examples the measurement asks for: a settlement and a person of AGENCY, its biggest
    #: counterpart.
    settlement_id: str = ""
    person_id: str = ""
    counterpart: str = ""
    agency_items: int = 0


def _days(cycle: str) -> list[date]:
    first = date.fromisoformat(cycle + "-01")
    return [first + timedelta(days=n) for n in range(31)
            if (first + timedelta(days=n)).strftime("%Y-%m") == cycle]


def _fen(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low, high)) / 100


async def _migrate(database_url: str) -> None:
    """The settlement and clearing services' migrations, each as its own role."""
    for service in ("settlement", "clearing"):
        pool = await create_pool(service_database_url(database_url, service), service,
                                 max_size=1)
        try:
            await apply_migrations(pool, REPO_ROOT / "services" / service / "migrations")
        finally:
            await pool.close()


async def fill(database_url: str, settlements: int, *, cycle: str = CYCLE,
               seed: int = 2026) -> Filled:
    """One cycle of `settlements` cross-region settlements (and 1 % refunded) into the
    prepared database `database_url`, stored as the clearing service stores them."""
    started = time.perf_counter()
    await _migrate(database_url)
    rng = random.Random(seed)
    reference = load_reference(REPO_ROOT / "reference")
    agencies = sorted(reference.agencies)
    hospitals: dict[str, list[str]] = {}
    for h in sorted(reference.hospitals.values(), key=lambda h: h.code):
        pool = reference.pool_covering(h.county)
        if pool is not None:
            hospitals.setdefault(pool.code, []).append(h.code)
    cares = sorted(hospitals)
    # The capital insures more of those who travel: five times the weight of any other pool.
    weights = [5 if a == AGENCY else 1 for a in agencies]
    persons = max(1, settlements // 3)
    person_agency = rng.choices(agencies, weights, k=persons)
    filled = Filled(settlements=settlements, items=0, persons=persons, seconds=0.0)
    days = _days(cycle)
    per_day = [settlements // len(days) + (1 if n < settlements % len(days) else 0)
               for n in range(len(days))]
    clearing = await asyncpg.connect(service_database_url(database_url, "clearing"),
                                     server_settings={"search_path": "clearing"})
    settlement = await asyncpg.connect(service_database_url(database_url, "settlement"),
                                       server_settings={"search_path": "settlement"})
    results: list[tuple[str, str, str, str]] = []
    records = []
    serial = 0
    try:
        for day, count in zip(days, per_day, strict=True):
            items: list[ClearingItem] = []
            ids: list[tuple[str, str, str]] = []
            for _ in range(count):
                serial += 1
                person = rng.randrange(persons)
                insured = person_agency[person]
                care = rng.choice([c for c in cares if c != insured])
                hospital = rng.choice(hospitals[care])
                settlement_id = f"S{serial:09d}"
                person_id = f"P{220000000 + person:012d}"
                settled_at = datetime(day.year, day.month, day.day, rng.randint(8, 18),
                                      rng.randint(0, 59), rng.randint(0, 59), tzinfo=SHANGHAI)
                fund = _fen(rng, 1_000, 2_000_000)
                account = _fen(rng, 0, 50_000)
                cash = _fen(rng, 0, 300_000)
                item = ClearingItem(
                    item_id=settlement_key(hospital, settlement_id), kind=ItemKind.SETTLEMENT,
                    hospital=hospital, settlement_id=settlement_id, insured_agency=insured,
                    care_agency=care, business_time=settled_at, origin_cycle=cycle,
                    cycle=cycle, fund_pay=fund, account_pay=account, cash_pay=cash,
                    cleared_amount=fund + account,
                    cause=EventRef(SETTLEMENT_SOURCE, f"{hospital}-{settlement_id}-completed"),
                    reported_on=day + timedelta(days=1))
                items.append(item)
                ids.append((hospital, settlement_id, person_id))
                if rng.random() < REFUND_SHARE:
                    refund_id = f"R{serial:09d}"
                    items.append(ClearingItem(
                        item_id=refund_key(hospital, refund_id), kind=ItemKind.REFUND,
                        hospital=hospital, settlement_id=settlement_id,
                        insured_agency=insured, care_agency=care,
                        business_time=settled_at + timedelta(minutes=30), origin_cycle=cycle,
                        cycle=cycle, fund_pay=fund, account_pay=account, cash_pay=cash,
                        cleared_amount=fund + account,
                        cause=EventRef(SETTLEMENT_SOURCE, f"{hospital}-{refund_id}-refunded"),
                        refund_id=refund_id, reported_on=day + timedelta(days=1)))
                if insured == AGENCY or care == AGENCY:
                    filled.settlement_id, filled.person_id = settlement_id, person_id
            await clearing.copy_records_to_table("items", columns=ITEM_COLUMNS, records=[
                (i.item_id, i.kind.value, i.hospital, i.settlement_id, i.insured_agency,
                 i.care_agency, i.business_date, i.origin_cycle, i.cycle, i.cleared_amount,
                 i.reported_on, store._item_document(i)) for i in items])
            await settlement.copy_records_to_table(
                "settlement_ids", columns=("hospital", "settlement_id", "person_id"),
                records=ids)
            reports, day_records = build_daily_reports(day, items)
            report_time = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI) + timedelta(
                days=1)
            for report in reports:
                results.append(_result(report, f"daily-report-{report.agency}-{day}",
                                       report.agency, report_time))
            records.extend(day_records)
            filled.items += len(items)
            if day.day % 10 == 0:
                say(f"filled {serial:,} settlements ({day})")
        await clearing.copy_records_to_table(
            "daily_reports", columns=("agency", "date", "checksum", "settlement_ids", "answer"),
            records=[(r.agency, r.date, r.checksum, list(r.settlement_ids),
                      Answer.CONFIRMED.value) for r in records])
        await _issue(clearing, cycle, results)
        # As autovacuum leaves a table the service has written for a while: statistics, and
        # the visibility map that lets the paged reads scan their indexes only.
        await clearing.execute("VACUUM ANALYZE")
        await settlement.execute("VACUUM ANALYZE")
        examples = await clearing.fetchrow(
            """SELECT CASE WHEN care_agency = $1 THEN insured_agency ELSE care_agency END AS c,
                      count(*) AS n FROM items WHERE cycle = $2
                 AND (care_agency = $1 OR insured_agency = $1) GROUP BY 1 ORDER BY 2 DESC
               LIMIT 1""", AGENCY, cycle)
        filled.counterpart = examples["c"] if examples else ""
        filled.agency_items = int(await clearing.fetchval(
            "SELECT count(*) FROM items WHERE care_agency = $1 OR insured_agency = $1",
            AGENCY))
    finally:
        await clearing.close()
        await settlement.close()
    filled.seconds = time.perf_counter() - started
    return filled


def _result(payload: Any, event_id: str, key: str, moment: datetime
            ) -> tuple[str, str, str, str]:
    event = make_event(payload, id=event_id, source=CLEARING_SOURCE, time=moment, subject=key)
    return event_id, payload.TYPE, key, event.model_dump_json(exclude_none=True)


async def _issue(conn: asyncpg.Connection, cycle: str,
                 results: list[tuple[str, str, str, str]]) -> ClearingState:
    """The cycle's statements and instructions from its items, as the clearing service issues
    them (all confirmed and paid), stored as results, and the aggregate that says so."""
    totals = await store.cycle_totals(conn, cycle)
    statements = statements_from_totals(cycle, totals, {}, {})
    instructions = net_transfer_instructions(cycle, {s.agency: s.net for s in statements})
    issued = datetime.combine(milestone(cycle, 2), datetime.min.time(), SHANGHAI)
    for s in statements:
        results.append(_result(s, f"statement-{s.agency}-{cycle}", s.agency, issued))
    instructed = datetime.combine(milestone(cycle, 10), datetime.min.time(), SHANGHAI)
    for i in instructions:
        party = i.payee if i.payer == HUB else i.payer
        results.append(_result(i, i.instruction_id, party, instructed))
    await conn.copy_records_to_table("results", columns=("event_id", "type", "key", "document"),
                                     records=results)
    last_day = _days(cycle)[-1]
    state = ClearingState(
        today=milestone(cycle, 25), reported_through=last_day + timedelta(days=1),
        issued_through=cycle, cycles={cycle: CycleState(
            cycle=cycle, status=CycleStatus.INSTRUCTIONS_ISSUED,
            confirmation_deadline_passed=True,
            statements={s.agency: StatementRecord(net=s.net, checksum=s.checksum,
                                                  answer=Answer.CONFIRMED)
                        for s in statements},
            instructions={i.instruction_id: InstructionState(
                instruction_id=i.instruction_id, payer=i.payer, payee=i.payee,
                amount=i.amount, due_on=i.due_on, paid=i.amount) for i in instructions})})
    await store.save_state(conn, state)
    return state


# ---- the portal server and its pages --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def portal_server(database_url: str, cache: Path, log: Path) -> AsyncIterator[str]:
    """`clearinghouse serve portal` on `database_url` (its read-only role) with its own
    cache (users, session key); the base URL while it runs."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "CLEARINGHOUSE_CACHE": str(cache)}
    env.pop("CLEARINGHOUSE_PORTAL_DATABASE_URL", None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "portal", "--port", str(port)],
            env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(300):
                if process.poll() is not None:
                    raise RuntimeError(f"the portal exited: {log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/login")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError(f"the portal never answered: {log.read_text()[-2000:]}")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _users(cache: Path, logins: Iterable[str]) -> dict[str, str]:
    """A generated password for each login, saved as `portal users add` saves it."""
    from services.portal import users

    secrets_dir = cache / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return {login: users.add(secrets_dir, login, secrets.token_urlsafe(16))
            for login in logins}


async def _login(client: httpx.AsyncClient, login: str, password: str) -> None:
    r = await client.post("/api/session", json={"login": login, "password": password})
    if r.status_code != 200:
        raise RuntimeError(f"login {login}: {r.status_code} {r.text[:200]}")


@dataclass
class Page:
    name: str
    path: str
    who: str  # "agency" | "auditor"
    ms: list[float] = field(default_factory=list)
    status: int = 0
    bytes: int = 0


def pages(filled: Filled, total_pages: Callable[[str], int], cycle: str = CYCLE
          ) -> list[Page]:
    """Every page and API endpoint an agency and the auditor use, with the drill-down's
    first, middle and last pages (of the whole cycle and of one statement line)."""
    a, c = AGENCY, filled.counterpart
    every = f"/agency/{a}/items?cycle={cycle}"
    line = f"{every}&counterpart={c}"
    n_all, n_line = total_pages(f"cycle={cycle}"), total_pages(f"cycle={cycle}&counterpart={c}")
    found = [
        Page("baseline: GET /api/me", "/api/me", "agency"),
        Page("home", f"/agency/{a}", "agency"),
        Page("API home", f"/api/agencies/{a}/home", "agency"),
        Page("statement", f"/agency/{a}/statements/{cycle}", "agency"),
        Page("API statements", f"/api/agencies/{a}/statements", "agency"),
        Page("API statement", f"/api/agencies/{a}/statements/{cycle}", "agency"),
        Page("daily reports", f"/agency/{a}/daily-reports", "agency"),
        Page("API daily reports", f"/api/agencies/{a}/daily-reports", "agency"),
        Page("instructions", f"/agency/{a}/instructions", "agency"),
        Page("API instructions", f"/api/agencies/{a}/instructions", "agency"),
        Page("notices", f"/agency/{a}/notices", "agency"),
        Page("API notices", f"/api/agencies/{a}/notices", "agency"),
        Page("drill-down cycle, first page", f"{every}&page=1", "agency"),
        Page(f"drill-down cycle, middle page ({(n_all + 1) // 2})",
             f"{every}&page={(n_all + 1) // 2}", "agency"),
        Page(f"drill-down cycle, last page ({n_all})", f"{every}&page={n_all}", "agency"),
        Page("drill-down line, first page", f"{line}&page=1", "agency"),
        Page(f"drill-down line, middle page ({(n_line + 1) // 2})",
             f"{line}&page={(n_line + 1) // 2}", "agency"),
        Page(f"drill-down line, last page ({n_line})", f"{line}&page={n_line}", "agency"),
        Page("API drill-down, first page", f"/api/agencies/{a}/items?cycle={cycle}&page=1",
             "agency"),
        Page("API drill-down, last page",
             f"/api/agencies/{a}/items?cycle={cycle}&page={n_all}", "agency"),
        Page("search by settlement id", f"/agency/{a}/items?q={filled.settlement_id}",
             "agency"),
        Page("search by person id", f"/agency/{a}/items?q={filled.person_id}", "agency"),
        Page("one settlement", f"/agency/{a}/settlements/{filled.settlement_id}", "agency"),
        Page("API one settlement", f"/api/agencies/{a}/settlements/{filled.settlement_id}",
             "agency"),
        Page("chart: nets over cycles", "/charts/nets.svg", "agency"),
        Page("chart: flows of the cycle", f"/charts/flows/{cycle}.svg", "agency"),
        Page("chart: daily volumes", f"/charts/daily/{cycle}.svg", "agency"),
        Page("auditor: /audit", "/audit", "auditor"),
        Page("auditor: API audit", "/api/audit", "auditor"),
        Page("auditor: /audit?fresh=1 (ledger check now)", "/audit?fresh=1", "auditor"),
        Page("auditor: chart flows via hub", f"/charts/flows/{cycle}.svg", "auditor"),
        Page("auditor: chart daily volumes", f"/charts/daily/{cycle}.svg", "auditor"),
    ]
    return found


def _summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"n": len(ms), "p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(p95, 2), "max_ms": round(ordered[-1], 2)}


async def measure(base: str, passwords: dict[str, str], filled: Filled, repeat: int,
                  target_ms: float) -> dict[str, Any]:
    """Each page `repeat` times (after one unmeasured request), page by page."""
    async with httpx.AsyncClient(base_url=base, timeout=120) as agency, \
            httpx.AsyncClient(base_url=base, timeout=120) as auditor:
        await _login(agency, AGENCY, passwords[AGENCY])
        await _login(auditor, "auditor", passwords["auditor"])
        counts: dict[str, int] = {}
        for query in (f"cycle={CYCLE}", f"cycle={CYCLE}&counterpart={filled.counterpart}"):
            r = await agency.get(f"/api/agencies/{AGENCY}/items?{query}&size=50")
            r.raise_for_status()
            counts[query] = int(r.json()["pages"])
        measured = pages(filled, counts.__getitem__)
        clients = {"agency": agency, "auditor": auditor}
        for page in measured:
            client = clients[page.who]
            await client.get(page.path)  # templates compiled, caches as a user finds them
            for _ in range(repeat):
                started = time.perf_counter()
                r = await client.get(page.path)
                body = r.content
                page.ms.append((time.perf_counter() - started) * 1000)
                page.status, page.bytes = r.status_code, len(body)
    baseline = _summary(measured[0].ms)["p50_ms"] or 1e-9
    rows: list[dict[str, Any]] = []
    for page in measured:
        s = _summary(page.ms)
        rows.append({"page": page.name, "path": page.path, "who": page.who,
                     "status": page.status, "bytes": page.bytes, **s,
                     "ratio_to_baseline_p50": round(s["p50_ms"] / baseline, 1),
                     "within_target": s["max_ms"] <= target_ms})
    return {"target_ms": target_ms, "repeat": repeat, "baseline_p50_ms": baseline,
            "drill_down_pages": counts, "pages": rows,
            "all_ok": all(r["status"] == 200 for r in rows),
            "all_within_target_p95": all(r["p95_ms"] <= target_ms for r in rows),
            "slowest_p95": max(rows, key=lambda r: r["p95_ms"])["page"]}


# ---- one size, end to end -------------------------------------------------------------------


async def run_size(admin_url: str, settlements: int, *, repeat: int = 20,
                   keep: bool = False, workdir: Path | None = None) -> dict[str, Any]:
    """A fresh database of `settlements`, the portal on it, every page measured; dropped
    afterwards unless `keep`."""
    name = f"bench_portal_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database_url = admin_url.rpartition("/")[0] + "/" + name
    try:
        await prepare_database(admin_url, name)
        say(f"{name}: filling a cycle of {settlements:,} settlements")
        filled = await fill(database_url, settlements)
        say(f"filled {filled.items:,} items in {filled.seconds:.1f} s; starting the portal")
        target = DEMO_TARGET_MS if settlements <= DEMO_SETTLEMENTS else LARGE_TARGET_MS
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            cache = Path(tmp)
            passwords = _users(cache, [AGENCY, "auditor"])
            async with portal_server(database_url, cache, cache / "portal.log") as base:
                result = await measure(base, passwords, filled, repeat, target)
        size = await _database_size(admin_url, name)
        return {"settlements": settlements, "items": filled.items,
                "agency": AGENCY, "agency_items": filled.agency_items,
                "counterpart": filled.counterpart, "persons": filled.persons,
                "fill_seconds": round(filled.seconds, 1), "database_bytes": size, **result}
    finally:
        if not keep:
            admin = await asyncpg.connect(admin_url)
            try:
                await drop_database(admin, name)
            finally:
                await admin.close()


async def _database_size(admin_url: str, name: str) -> int:
    admin = await asyncpg.connect(admin_url)
    try:
        return int(await admin.fetchval("SELECT pg_database_size($1)", name))
    finally:
        await admin.close()


def table(result: dict[str, Any]) -> str:
    """A markdown table of one size's pages."""
    lines = [f"| page ({result['settlements']:,} settlements) | p50 ms | p95 ms | max ms "
             f"| × baseline | ≤ {result['target_ms']:.0f} ms |",
             "|---|---:|---:|---:|---:|---|"]
    for r in result["pages"]:
        lines.append(f"| {r['page']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r['max_ms']:.1f} | {r['ratio_to_baseline_p50']:.1f} | "
                     f"{'yes' if r['p95_ms'] <= result['target_ms'] else '**no**'} |")
    return "\n".join(lines)


async def run(admin_url: str, sizes: list[int], repeat: int, keep: bool = False
              ) -> dict[str, Any]:
    runs = []
    for n in sizes:
        runs.append(await run_size(admin_url, n, repeat=repeat, keep=keep))
        say(f"{n:,} settlements: slowest p95 {max(r['p95_ms'] for r in runs[-1]['pages'])} ms "
            f"({runs[-1]['slowest_p95']})")
    return {"finished_at": time.strftime("%Y-%m-%d %H:%M %Z"), "runs": runs}


def register_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settlements", default=f"{DEMO_SETTLEMENTS},1000000",
                        help="cycle sizes, comma-separated (default: the demo's and 1M)")
    parser.add_argument("--requests", type=int, default=20, help="requests per page")
    parser.add_argument("--json", type=Path, help="where to write the JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the filled databases")


def run_from_arguments(args: argparse.Namespace) -> int:
    from shared.config import load_settings

    sizes = [int(s.replace("_", "")) for s in str(args.settlements).split(",") if s]
    results = asyncio.run(run(load_settings().database_url, sizes, args.requests, args.keep))
    path = args.json or REPO_ROOT / "bench" / "results" / (
        f"bench-portal-{time.strftime('%Y%m%d-%H%M%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    for r in results["runs"]:
        print(f"\n{r['settlements']:,} settlements ({r['items']:,} items, {r['agency']} has "
              f"{r['agency_items']:,}); filled in {r['fill_seconds']} s")
        print(table(r))
    print(f"JSON: {path}")
    return 0 if all(r["all_ok"] for r in results["runs"]) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tools.bench.portal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    register_arguments(parser)
    return run_from_arguments(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
