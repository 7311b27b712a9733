"""Collection at a million records: the project's collectors against the bare limit and the server's own limit.

    python -m benchmarks.collection [--clients 80] [--agents 10] [--days 30] [--calls 20] [--repeats 2]

One sandbox (a process of its own, every listed record rendered before the first request) serves a first
collection of its Retell and Twilio records (1.04M at the defaults) three ways, each in a child process of its
own so that its peak RSS is its own, `repeats` rounds in alternating order (A B C, then C B A, ...):

- project: the collectors, dlt_sources.retell and dlt_sources.twilio run by dlt pipelines into a fresh database,
  as the Dagster assets run them; extract / normalize / load seconds from dlt's trace. Then, in another child, a
  second collection with nothing new an hour later: a fresh working folder, state restored from the warehouse,
  as each Dagster run does.
- bare: the same requests with requests + orjson, each page's records COPY'd (psycopg2) into a throwaway table
  of one jsonb column per listing.
- server: the same requests, each body only scanned for its record count and next page (benchmarks.listings).

Prints a markdown table (medians, min-max over the rounds, project/bare per round, peak RSS, the machine's load)
and the raw figures as JSON. The business clock is fixed (the morning after the sandbox's last day), so every
round asks exactly the same pages.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

from billing_usage.settings import NOW_ENV
from billing_usage.warehouse import Warehouse, create_database, drop_database, resolve_warehouse
from sandbox.config import SandboxConfig

ROUND_ORDER = ("server", "bare", "project")
LISTED_TABLES = ("calls", "messages", "usage_records", "calls_quarantine", "messages_quarantine")
END_DATE = date(2026, 3, 15)


# --- children: one measurement each, the result as one JSON line on stdout ------------------------------------

def _collection(spec: dict):
    from benchmarks.listings import Collection

    return Collection(spec["base_url"], SandboxConfig.from_json(spec["config"]), datetime.fromisoformat(spec["now"]))


def child_server(spec: dict) -> dict:
    """Every page of the collection's listings, bodies scanned only; OpenRouter's listings counted apart."""
    from benchmarks.listings import openrouter_pages, retell_pages, scan, twilio_pages

    collection, result = _collection(spec), {}
    for name, pages in (("retell", retell_pages), ("twilio", twilio_pages), ("openrouter", openrouter_pages)):
        started, records, requests = time.perf_counter(), 0, 0
        for _, _, count in pages(collection, scan):
            records, requests = records + count, requests + 1
        result[name] = {"records": records, "requests": requests, "seconds": time.perf_counter() - started}
    return result


def child_bare(spec: dict) -> dict:
    """requests + orjson + COPY: each page's records into a throwaway table per listing, one jsonb column."""
    import orjson

    from benchmarks.listings import parse, retell_pages, twilio_pages

    collection = _collection(spec)
    connection = Warehouse.from_url(spec["database_url"]).connect()
    tables: set[str] = set()
    started, records = time.perf_counter(), 0
    with connection, connection.cursor() as cursor:
        for pages in (retell_pages, twilio_pages):
            for kind, items, count in pages(collection, parse):
                records += count
                if not items:
                    continue
                if kind not in tables:
                    cursor.execute(f"create table bare_{kind} (record jsonb not null)")
                    tables.add(kind)
                # COPY's text format: a backslash is an escape, and orjson writes no raw tab or newline.
                rows = b"\n".join(orjson.dumps(item).replace(b"\\", b"\\\\") for item in items) + b"\n"
                cursor.copy_expert(f"copy bare_{kind} (record) from stdin", io.BytesIO(rows))
    seconds = time.perf_counter() - started
    connection.close()
    return {"records": records, "seconds": seconds}


def child_project(spec: dict) -> dict:
    """The Retell and Twilio collectors through dlt pipelines, in a working folder of their own."""
    os.environ[NOW_ENV] = spec["now"]
    import dlt

    from dlt_sources.destination import warehouse_destination
    from dlt_sources.retell import retell_source
    from dlt_sources.twilio import twilio_source

    config = SandboxConfig.from_json(spec["config"])
    base_url = spec["base_url"]
    sources = {
        "retell": lambda: retell_source(
            workspaces=[{"name": f"workspace_{n}", "api_key": config.retell_api_key(n)}
                        for n in range(config.retell_workspaces)], base_url=f"{base_url}/retell"),
        "twilio": lambda: twilio_source(
            accounts=[{"account_sid": config.twilio_account_sid, "auth_token": config.twilio_auth_token,
                       "include_subaccounts": True}], base_url=f"{base_url}/twilio"),
    }
    result: dict = {"records": 0, "seconds": 0.0, "steps": {}, "pipelines": {}}
    with tempfile.TemporaryDirectory() as pipelines_dir:
        for name, source in sources.items():
            pipeline = dlt.pipeline(pipeline_name=name, dataset_name=f"raw_{name}", pipelines_dir=pipelines_dir,
                                    destination=warehouse_destination(spec["database_url"]))
            started = time.perf_counter()
            pipeline.run(source())
            seconds = time.perf_counter() - started
            trace = pipeline.last_trace
            steps = {step.step: (step.finished_at - step.started_at).total_seconds()
                     for step in trace.steps if step.finished_at}
            counts = trace.last_normalize_info.row_counts if trace.last_normalize_info else {}
            rows = sum(count for table, count in counts.items() if table in LISTED_TABLES)
            result["pipelines"][name] = {"records": rows, "seconds": seconds, "steps": steps}
            result["records"] += rows
            result["seconds"] += seconds
            for step, step_seconds in steps.items():
                result["steps"][step] = result["steps"].get(step, 0.0) + step_seconds
    return result


CHILDREN = {"server": child_server, "bare": child_bare, "project": child_project}


# --- the parent: sandbox, databases, rounds, table --------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def start_sandbox(config: SandboxConfig) -> tuple[subprocess.Popen, str, dict]:
    """`python -m sandbox serve --prerender` on a free port; returns once it serves, with what it rendered."""
    port = _free_port()
    command = [sys.executable, "-m", "sandbox", "--seed", str(config.seed), "--clients", str(config.clients),
               "--agents-per-client", str(config.agents_per_client), "--days", str(config.days),
               "--calls-per-agent-per-day", str(config.calls_per_agent_per_day),
               "--end-date", config.end_date.isoformat(), "serve", "--port", str(port), "--prerender"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    rendered = {}
    for line in process.stdout:
        if match := re.match(r"sandbox rendered (\d+) listed records in ([\d.]+) s", line):
            rendered = {"records": int(match.group(1)), "rendered_seconds": float(match.group(2))}
        if line.startswith("sandbox serving"):
            return process, f"http://127.0.0.1:{port}", rendered
    raise RuntimeError(f"the sandbox stopped before serving (exit {process.wait()})")


def run_child(kind: str, spec: dict) -> dict:
    """One measurement in a child process: its result, wall seconds, peak RSS (MB) and the load around it."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.collection", "--child", kind, json.dumps(spec)],
                               stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "RUNTIME__LOG_LEVEL": "ERROR"})  # not dlt's schema warnings
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{kind} child failed (exit {process.returncode})")
    result = json.loads(output.strip().splitlines()[-1])
    result.update(wall=time.perf_counter() - started, peak_rss_mb=usage.ru_maxrss / 1024,
                  cpu_seconds=usage.ru_utime + usage.ru_stime, load=(load_before, os.getloadavg()[0]))
    return result


def _round(kind: str, spec: dict, server: Warehouse, sandbox_pid: int, label: str) -> dict:
    database = None
    if kind in ("bare", "project"):
        database = f"bench_collection_{os.getpid()}_{label}_{kind}"
        spec = {**spec, "database_url": create_database(server, database).url}
    try:
        cpu_before = _cpu_seconds(sandbox_pid)
        result = run_child(kind, spec)
        result["sandbox_cpu"] = _cpu_seconds(sandbox_pid) - cpu_before
        if kind == "project":  # a collection with nothing new, an hour later
            later = datetime.fromisoformat(spec["now"])
            result["second"] = run_child("project", {**spec, "now": (later + timedelta(hours=1)).isoformat()})
    finally:
        if database:
            drop_database(server, database)
    if kind == "server":
        listed = [result["retell"], result["twilio"]]
        result["records"] = sum(part["records"] for part in listed)
        result["seconds"] = sum(part["seconds"] for part in listed)
    print(f"  {label} {kind}: {result['records']} records in {result['seconds']:.1f} s, "
          f"peak RSS {result['peak_rss_mb']:.0f} MB, load {result['load'][0]:.1f}", file=sys.stderr, flush=True)
    return result


def _spread(values: list[float], digits: int = 0) -> str:
    """The median, and (min–max) when the rounds differ."""
    median, low, high = statistics.median(values), min(values), max(values)
    text = f"{median:,.{digits}f}"
    return text if len(values) == 1 else f"{text} ({low:,.{digits}f}–{high:,.{digits}f})"


def _rate(result: dict) -> float:
    return result["records"] / result["seconds"]


def table(rounds: list[dict[str, dict]], sandbox: dict, config: SandboxConfig) -> str:
    """The figures as a markdown table: medians over the rounds, (min–max) after them."""
    def column(kind: str, value) -> list[float]:
        return [value(r[kind]) for r in rounds]

    def row(label: str, kind: str, ratio: str, notes: str, value=lambda r: r) -> str:
        results = [value(r[kind]) for r in rounds]
        return (f"| {label} | {_spread([_rate(x) for x in results])} | {ratio} | "
                f"{_spread([x['seconds'] for x in results], 1)} | {_spread([x['peak_rss_mb'] for x in results])} | "
                f"{_spread([x['records'] / x['cpu_seconds'] for x in results])} | {notes} |")

    ratios = [_rate(r["project"]) / _rate(r["bare"]) for r in rounds]
    to_server = [_rate(r["project"]) / _rate(r["server"]) for r in rounds]
    seconds = statistics.median(column("project", lambda r: r["seconds"]))
    steps = {step: column("project", lambda r, s=step: r["steps"].get(s, 0.0)) for step in ("extract", "normalize",
                                                                                            "load")}
    split = ", ".join(f"{step} {_spread(values, 1)} s ({statistics.median(values) / seconds:.0%})"
                      for step, values in steps.items())
    listed = ("retell", "twilio", "openrouter")
    every = column("server", lambda r: sum(r[name]["records"] for name in listed)
                   / sum(r[name]["seconds"] for name in listed))
    per_cpu = column("server", lambda r: r["records"] / max(r["sandbox_cpu"], 0.01))
    loads = [load for r in rounds for result in r.values() for load in result["load"]]
    records = rounds[0]["project"]["records"]
    return "\n".join([
        f"Collection, {datetime.now(UTC):%Y-%m-%d}, {platform.node()}: {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, PostgreSQL on the same machine. {records:,} Retell + Twilio records "
        f"({config.clients} clients x {config.agents_per_client} agents x {config.days} days x "
        f"{config.calls_per_agent_per_day} calls); {len(rounds)} rounds, A/B/C then C/B/A; median (min–max); "
        f"load average {min(loads):.1f}–{max(loads):.1f} during the runs.",
        "",
        "| what | records/s | ratio | seconds | peak RSS MB | records per CPU-second of the process | notes |",
        "|---|---|---|---|---|---|---|",
        row("project: the collectors (dlt)", "project", f"{_spread(ratios, 2)} of bare",
            f"extract / normalize / load: {split}"),
        row("bare: requests + orjson + COPY", "bare", "1", "one jsonb column per listing"),
        row("server's own limit: bodies discarded", "server", f"project = {_spread(to_server, 2)} of it",
            f"sandbox CPU {_spread(per_cpu)} records/s; every list endpoint incl. OpenRouter "
            f"{_spread(every)} records/s"),
        row("second collection, nothing new (1 h later)", "project", "-",
            f"{_spread(column('project', lambda r: r['second']['records']))} records read again: Retell's last "
            "hour of calls, Twilio's calls and messages of the cursor's day and Usage Records of 3 days",
            value=lambda r: r["second"]),
        "",
        f"Sandbox: {sandbox['records']:,} listed records rendered in {sandbox['rendered_seconds']:.0f} s before "
        f"serving; its peak RSS {sandbox['peak_rss_mb']:,.0f} MB.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=80)
    parser.add_argument("--agents", type=int, default=10, help="agents per client")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--calls", type=int, default=20, help="calls per agent per day")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the three measurements")
    parser.add_argument("--json-out", help="also write the raw figures to this file")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, spec = args.child
        print(json.dumps(CHILDREN[kind](json.loads(spec))), flush=True)
        return

    config = SandboxConfig(clients=args.clients, agents_per_client=args.agents, days=args.days,
                           calls_per_agent_per_day=args.calls, end_date=END_DATE)
    now = datetime.combine(config.today, clock(6, 0), UTC)
    print(f"rendering {config.to_json()} ...", file=sys.stderr, flush=True)
    sandbox, base_url, rendered = start_sandbox(config)
    server = resolve_warehouse()
    spec = {"base_url": base_url, "config": config.to_json(), "now": now.isoformat()}
    rounds = []
    try:
        for number in range(args.repeats):
            order = ROUND_ORDER if number % 2 == 0 else tuple(reversed(ROUND_ORDER))
            rounds.append({kind: _round(kind, spec, server, sandbox.pid, f"r{number + 1}") for kind in order})
        rendered["peak_rss_mb"] = _peak_rss_mb(sandbox.pid)
    finally:
        sandbox.terminate()
        sandbox.wait()
    print(table(rounds, rendered, config))
    print()
    figures = json.dumps({"config": config.to_json(), "sandbox": rendered, "rounds": rounds}, default=str)
    print(figures)
    if args.json_out:
        Path(args.json_out).write_text(figures)


if __name__ == "__main__":
    main()
