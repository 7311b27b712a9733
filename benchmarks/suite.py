"""Every performance figure in one run and one table: `make bench`.

    python -m benchmarks.suite [--only collection,scale,webhooks] [--out .local/bench]

Runs, one after the other so they do not share the machine, each benchmark in a process of its own:

- collection (benchmarks.collection): a first collection of 1.04M Retell and Twilio records by the project's
  collectors, by the bare limit (requests + orjson + COPY) and by the sandbox's own limit, in two rounds of
  alternating order; then a second collection with nothing new;
- scale (benchmarks.incremental_scale): incremental builds after 10k changed objects on 100k and on 10M events,
  alternating; the build after a day of 1M events; every statement's plan of one more incremental build;
- webhooks (benchmarks.webhook_latency): webhook -> fct_daily_usage under 100 signed deliveries/s for 2 minutes.

Each writes its raw figures to --out (JSON, with its log); the table puts each figure next to its anchor, its
ratio, its spread (min-max over the rounds) and its target. Targets are shown, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from billing_usage.settings import PROJECT_ROOT

BENCHMARKS = {
    "collection": ["benchmarks.collection"],
    "scale": ["benchmarks.incremental_scale"],
    "webhooks": ["benchmarks.webhook_latency"],
}


def _run(name: str, out: Path) -> tuple[dict, float]:
    figures, log = out / f"{name}.json", out / f"{name}.log"
    print(f"{datetime.now(UTC):%H:%M:%S} {name} ... (log: {log})", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with log.open("w") as handle:
        subprocess.run([sys.executable, "-m", *BENCHMARKS[name], "--json-out", str(figures)], stdout=handle,
                       stderr=subprocess.STDOUT, check=True, env={**os.environ, "RUNTIME__LOG_LEVEL": "ERROR"})
    return json.loads(figures.read_text()), time.perf_counter() - started


def _spread(values: list[float], digits: int = 0) -> str:
    median = statistics.median(values)
    text = f"{median:,.{digits}f}"
    return text if len(set(values)) == 1 else f"{text} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def _row(what: str, figure: str, anchor: str, ratio: str, rss: str, target: str, met: bool | None) -> str:
    verdict = "" if met is None else ("met" if met else "**not met**")
    return f"| {what} | {figure} | {anchor} | {ratio} | {rss} | {target} {verdict} |"


def collection_rows(figures: dict) -> list[str]:
    rounds = figures["rounds"]

    def rates(kind: str) -> list[float]:
        return [r[kind]["records"] / r[kind]["seconds"] for r in rounds]

    def rss(kind: str, part=lambda r: r) -> str:
        return _spread([part(r[kind])["peak_rss_mb"] for r in rounds])

    project, bare, server = rates("project"), rates("bare"), rates("server")
    ratios = [p / b for p, b in zip(project, bare, strict=True)]
    steps = {step: [r["project"]["steps"].get(step, 0.0) / r["project"]["seconds"] for r in rounds]
             for step in ("extract", "normalize", "load")}
    split = " / ".join(f"{statistics.median(shares):.0%}" for shares in steps.values())
    records = rounds[0]["project"]["records"]
    second = [r["project"]["second"]["seconds"] for r in rounds]
    return [
        _row(f"collection of {records:,} Retell + Twilio records: the project's collectors, records/s "
             f"(extract / normalize / load {split})", _spread(project), f"bare {_spread(bare)}",
             f"{_spread(ratios, 2)}×", rss("project"), "≥ 0.8× bare, ≥ 15,000/s, ≤ 300 MB",
             statistics.median(ratios) >= 0.8 and statistics.median(project) >= 15_000
             and max(r["project"]["peak_rss_mb"] for r in rounds) <= 300),
        _row("bare limit: requests + orjson + COPY, records/s", _spread(bare), f"server {_spread(server)}",
             f"{_spread([b / s for b, s in zip(bare, server, strict=True)], 2)}×", rss("bare"), "-", None),
        _row("the sandbox's own limit, records/s", _spread(server), "-", "-",
             f"{figures['sandbox']['peak_rss_mb']:,.0f} (sandbox)", "≥ 50,000/s",
             statistics.median(server) >= 50_000),
        _row("second collection, nothing new, seconds", _spread(second, 1), "-", "-",
             rss("project", lambda r: r["second"]), "≤ 10 s", statistics.median(second) <= 10),
    ]


def scale_rows(figures: dict) -> list[str]:
    seconds = figures["incremental_seconds"]
    ratios = [b / a for a, b in zip(seconds["A"], seconds["B"], strict=True)]
    builds = figures["incremental"]["A"] + figures["incremental"]["B"]
    grown_tables = set(figures["grown_tables"])
    grown_raw = {name for name in grown_tables if name.startswith("raw_")}
    scans = [b["sequential_scans"].get("marts.fct_usage_events", {}).get("seq_scans", 0)
             for b in figures["incremental"]["B"]]
    raw_scans = [sum(v["seq_scans"] for k, v in b["sequential_scans"].items() if k in grown_raw)
                 for b in figures["incremental"]["B"]]
    day = figures["big_day"]
    explained = figures.get("explained", {})
    sequential = explained.get("sequential_reads", [])
    grown = [read for read in sequential if set(read["reads"]) & grown_tables]
    return [
        _row(f"incremental build, 10k changed objects, {figures['events_B']:,} events, seconds",
             _spread(seconds["B"], 1), f"{figures['events_A']:,} events: {_spread(seconds['A'], 1)}",
             f"{_spread(ratios, 2)}×", _spread([b["dbt_peak_rss_mb"] for b in builds]) + " (dbt)", "≤ 2×",
             statistics.median(ratios) <= 2),
        _row("… sequential scans in it: fct_usage_events / raw tables B grows",
             f"{_spread(scans)} / {_spread(raw_scans)}",
             "-", "-", "-", "0 / 0", max(scans) == 0 and max(raw_scans) == 0),
        _row(f"… statements of one such build reading a table B grows sequentially (auto_explain, "
             f"{explained.get('plans', '-')}; {len(sequential) - len(grown)} more read only tables it does not grow)",
             f"{len(grown)} of {explained.get('statements_explained', 0):,}", "-", "-", "-", "0",
             not grown if "statements_explained" in explained else None),
        _row(f"daily rollup: incremental build after a day of {day['events_that_day']:,} events, seconds"
             + (f" (day rollups {day['build']['day_rollups_seconds']} s)" if day["build"]["seconds"] else ""),
             f"{day['build']['seconds']:,.1f}" if day["build"]["seconds"] else
             f"stopped after {day['build']['stopped_after_seconds']:,.0f}", "-", "-",
             f"{day['build']['dbt_peak_rss_mb']} (dbt)", "≤ 60 s", (day["build"]["seconds"] or 10**9) <= 60),
    ]


def webhook_rows(figures: dict) -> list[str]:
    latency = figures["latency_seconds"] or {"p50": float("nan"), "p95": float("nan")}
    rss = ", ".join(f"{kind} {mb}" for kind, mb in figures["peak_rss_mb"].items())
    return [_row(f"webhook -> fct_daily_usage, {figures['deliveries']:,} signed deliveries at "
                 f"{figures['achieved_rate']:g}/s, seconds p50 / p95", f"{latency['p50']} / {latency['p95']}", "-",
                 "-", rss, "p95 ≤ 60 s", latency["p95"] <= 60 and figures["never_visible"] == 0)]


ROWS = {"collection": collection_rows, "scale": scale_rows, "webhooks": webhook_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="which benchmarks, comma-separated")
    parser.add_argument("--out", default=str(PROJECT_ROOT / ".local" / "bench"))
    parser.add_argument("--table-from", action="store_true", help="print the table from --out's last figures")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started, durations, lines = time.perf_counter(), {}, []
    for name in args.only.split(","):
        if args.table_from:
            figures = json.loads((out / f"{name}.json").read_text())
        else:
            figures, durations[name] = _run(name, out)
        lines += ROWS[name](figures)
    took = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in durations.items())
    print(f"billing-usage benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}: "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; minutes: {took or '-'}"
          f"{f', total {(time.perf_counter() - started) / 60:.1f}' if durations else ''}. Median (min–max) over "
          "the rounds; ratio = figure / anchor, per round.")
    print()
    print("| what | figure | anchor | ratio | peak RSS MB | target |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
