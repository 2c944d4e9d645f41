"""The bench's outputs: a table on the terminal, a JSON file, and docs/benchmarks.md."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shared.config import REPO_ROOT

DOCS = REPO_ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:figures:begin -->", "<!-- bench:figures:end -->"

TARGETS = {
    "throughput": ("settlements/s", ">=", 5000),
    "latency_p99": ("ms", "<=", 250),
    "clearing": ("s", "<=", 10),
    "audit": ("events/s", ">=", 20000),
    "memory": ("MB", "<=", 300),
}


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{value:,.{digits}f}"


def _mmm(spread: dict[str, Any] | None, digits: int = 0) -> str:
    if not spread or not spread.get("n"):
        return "not measured"
    if spread["n"] == 1:
        return f"{_fmt(spread['median'], digits)} (n=1)"
    return (f"{_fmt(spread['min'], digits)} / {_fmt(spread['median'], digits)} / "
            f"{_fmt(spread['max'], digits)} (n={spread['n']})")


def _ok(value: Any, op: str, target: float) -> str:
    if value is None or value != value:
        return "–"
    return "yes" if (value >= target if op == ">=" else value <= target) else "NO"


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, min / median / max, target, met) rows."""
    t, lat, clr = results["throughput"], results["latency"], results["clearing"]
    base, mem, audit = results["baselines"], results["memory"], results["audit"]
    out: list[tuple[str, str, str, str]] = []
    if t.get("settlements_per_s"):
        med = t["settlements_per_s"]["median"]
        out.append((f"1. end-to-end settlements/s ({t['settlements']:,} a run)",
                    _mmm(t["settlements_per_s"]), "≥ 5,000", _ok(med, ">=", 5000)))
        out.append(("   events/s incl. refunds and re-settlements", _mmm(t["events_per_s"]), "",
                    ""))
        out.append(("   seconds a run", _mmm(t["seconds"], 2), "", ""))
        registry = t.get("registry_check")
        if registry:
            out.append(("   with the registry check ÷ without it (same run)",
                        f"{_fmt(registry['ratio_on_to_off'], 2)} "
                        f"({_fmt(registry['off_settlements_per_s'])}/s without, n=1)", "", ""))
    if t.get("enrolment_import"):
        imported = t["enrolment_import"]
        out.append((f"   enrolment import rows/s ({imported['rows']:,} rows, to the settlement "
                    "view)", f"{_fmt(imported['rows_per_s'])} (n=1)", "", ""))
        out.append(("   enrolment rows/s acknowledged by Kafka",
                    f"{_fmt(imported['sent_rows_per_s'])} (n=1)", "", ""))
    if lat.get("completed_p99"):
        label = f"{lat['rate']:,}/s for {lat['seconds']:g} s"
        for to, name in (("completed", "settlement.completed"), ("ledger", "ledger posting")):
            for q in ("p50", "p99", "max"):
                target = "≤ 250" if q == "p99" else ""
                met = _ok(lat[f"{to}_{q}"]["median"], "<=", 250) if q == "p99" else ""
                out.append((f"2. latency to {name} {q} ms ({label})",
                            _mmm(lat[f"{to}_{q}"]), target, met))
    for load in lat.get("loads") or []:
        label = (f"{load['share']:.0%} of capacity, {_fmt(load['rate'])}/s offered "
                 f"for {results['sizes']['latency_seconds']:g} s")
        for to, name in (("completed", "settlement.completed"), ("ledger", "ledger posting")):
            figures = load[f"{to}_ms"]
            at_half = load["share"] == 0.5 and to == "completed"
            out.append((f"2. latency to {name} p50 / p99 / max ms ({label})",
                        f"{_fmt(figures['p50'])} / {_fmt(figures['p99'])} / "
                        f"{_fmt(figures['max'])} (n=1)",
                        "p99 ≤ 250" if at_half else "",
                        _ok(figures["p99"], "<=", 250) if at_half else ""))
    scaled = results.get("instances") or {}
    if scaled.get("ratio"):
        out.append((f"1. settlements/s with {scaled['instances']} instances of each service "
                    f"({scaled['run']['settlements']:,})",
                    f"{_fmt(scaled['scaled_settlements_per_s'])} (n=1)", "", ""))
        out.append((f"   {scaled['instances']} instances ÷ 1 instance (median above)",
                    _fmt(scaled["ratio"], 2), "≥ 0.95 (not worse)",
                    _ok(scaled["ratio"], ">=", 0.95)))
    if clr.get("statements_s"):
        out.append((f"3. day 2 → all statements, s ({clr['settlements']:,} settlements)",
                    _mmm(clr["statements_s"], 2), "≤ 10",
                    _ok(clr["statements_s"]["median"], "<=", 10)))
        out.append(("3. day 10 → all instructions, s", _mmm(clr["instructions_s"], 2), "≤ 10",
                    _ok(clr["instructions_s"]["median"], "<=", 10)))
    if audit.get("measured"):
        out.append((f"4. audit replay events/s ({audit['records_replayed']:,} records, "
                    f"match={audit.get('match')})", _fmt(audit["events_per_s"]) + " (n=1)",
                    "≥ 20,000", _ok(audit["events_per_s"], ">=", 20000)))
        out.append(("   incl. reading the log, migrations, comparing (wall)",
                    _fmt(audit["events_per_s_wall"]) + " (n=1)", "", ""))
    else:
        out.append(("4. audit replay events/s", "not measured: " + audit.get("why", ""),
                    "≥ 20,000", "–"))
    for name, spread in (mem.get("peak_rss_mb") or {}).items():
        out.append((f"5. peak RSS {name}, MB", _mmm(spread), "≤ 300",
                    _ok(spread.get("max"), "<=", 300)))
    if base.get("consumer"):
        out.append((f"6. bare aiokafka consumer msg/s ({base['consumer']['messages']:,})",
                    _mmm(base["consumer"]["per_s"]), "", ""))
        out.append(("   project settlements/s ÷ consumer msg/s",
                    _fmt(base.get("ratio_to_consumer"), 3), "", ""))
    if base.get("copy"):
        out.append((f"6. bare COPY rows/s ({base['copy']['rows']:,} posting rows)",
                    _mmm(base["copy"]["per_s"]), "", ""))
        out.append(("   project posting rows/s ÷ COPY rows/s",
                    _fmt(base.get("ratio_to_copy"), 3), "", ""))
    sig = results.get("signatures") or {}
    if sig.get("ratio_on_to_off"):
        out.append((f"7. settlements/s, signatures on ({sig['settlements']:,} a run, "
                    f"{sig['pairs']} pairs)", _mmm(sig["on_settlements_per_s"]), "", ""))
        out.append(("   settlements/s, signatures off (bench only)",
                    _mmm(sig["off_settlements_per_s"]), "", ""))
        out.append(("   on ÷ off (the cost of signing and verifying)",
                    _fmt(sig["ratio_on_to_off"], 3), "", ""))
    return out


def print_table(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=140)
    m = results["machine"]
    table = Table(title=f"clearinghouse bench — {m['cpu']}, {m['nproc']} cores, "
                        f"{m['memory_mb']:,} MB, commit {m['commit']}")
    table.add_column("figure")
    table.add_column("min / median / max", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met", justify="center")
    for row in rows(results):
        table.add_row(*row)
    console.print(table)
    accounted = all(a["accounted"] for a in results["accounting"])
    console.print(f"accounting: {'every settlement accounted for' if accounted else 'MISMATCH'}"
                  f" ({len(results['accounting'])} months checked); "
                  f"wall time {results['wall_seconds']:.1f} s")


def markdown(results: dict[str, Any], json_path: Path | None) -> str:
    m, s = results["machine"], results["sizes"]
    lines = [
        f"Measured {results.get('finished_at') or time.strftime('%Y-%m-%d %H:%M %Z')} on "
        f"{m['cpu']}, {m['nproc']} cores, "
        f"{m['memory_mb']:,} MB, Python {m['python']}, Linux {m['kernel']}, commit "
        f"`{m['commit']}`; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}. "
        f"Kafka and PostgreSQL on the same machine (`clearinghouse infra up`).",
        "",
        f"Sizes: {s['persons']:,} persons with filings, {s['hospitals']} hospitals in 20 pools, "
        f"{s['settlements']:,} settlements a run × {s['repeat']} runs; latency "
        f"{s['latency_rate']:,}/s for {s['latency_seconds']:g} s × {s['latency_repeat']}; "
        f"clearing cycle of {s['cycle_settlements']:,} settlements × {s['cycle_repeat']}. "
        f"Wall time of the bench: {results['wall_seconds']:.0f} s.",
        "",
        "| figure | min / median / max | target | met |",
        "|---|---:|---:|:---:|",
    ]
    lines += [f"| {a.strip()} | {b} | {c} | {d} |" for a, b, c, d in rows(results)]
    accounted = all(a["accounted"] for a in results["accounting"])
    lines += ["", f"Accounting: {'every settlement accounted for' if accounted else 'MISMATCH'} "
              f"in {len(results['accounting'])} months."]
    if json_path is not None:
        try:
            shown = json_path.resolve().relative_to(REPO_ROOT).as_posix()
        except ValueError:
            shown = json_path.name
        lines += ["", f"Raw figures: `{shown}` (JSON written by the run; `tools/bench/results/` is "
                  "not under version control)."]
    return "\n".join(lines)


def update_docs(results: dict[str, Any], json_path: Path | None, path: Path = DOCS) -> None:
    """Replace the generated section of docs/benchmarks.md with this run's figures."""
    section = f"{BEGIN}\n{markdown(results, json_path)}\n{END}"
    text = (path.read_text(encoding="utf-8") if path.exists()
            else f"# Benchmarks\n\n{BEGIN}\n{END}\n")
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text,
                      flags=re.S)
    else:
        text += "\n" + section + "\n"
    path.write_text(text, encoding="utf-8")
