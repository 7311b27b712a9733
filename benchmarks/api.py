"""Reporting API latency on a warehouse of 10 M events: `make bench-api`.

    python -m benchmarks.api [--events 10000000] [--days 100] [--runs 30] [--keep]

How the warehouse is made (a few minutes, on the same server as `make demo`, in a database of its own):

1. a small sandbox agency (50 clients x 10 agents, one day) is collected and built by the real dbt
   project, so every table, contract, index and directory row is the real one;
2. marts.fct_usage_events is emptied and refilled by one `insert ... select from generate_series`:
   N events spread evenly over the days before --end, on every client, agent and provider x metric of the
   real events (retell, twilio, openrouter), quantities and costs varying per row, 0.1 % pending a price.
   Its indexes are dropped during the insert and created again from their own definitions;
3. the aggregates are rebuilt by the real models: fct_daily_usage, fct_daily_client_usage and fct_hourly_usage
   (full refresh),
   fct_cycle_usage and fct_cycle_adjustments (emptied first, they are never fully refreshed), the reporting
   layer.

Then the API is served by uvicorn in a subprocess, as `make api` serves it, and each scenario is requested
--runs times over HTTP with an agency token (after two warm-up requests); p50 and p95 are printed with
the targets, and the EXPLAIN ANALYZE of the slowest scenario's main query.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import requests

from benchmarks.sandbox_load import collect_sandbox
from billing_usage.settings import DATABASE_URL_ENV, NOW_ENV, PII_SALT_ENV, PROVIDERS_ENV, SANDBOX_PII_SALT
from billing_usage.tables import ensure_tables
from billing_usage.warehouse import Warehouse, create_database, drop_database, resolve_warehouse
from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from reporting_api.db import WORK_MEM
from reporting_api.tokens import create_token
from reporting_api.usage import UsageQuery, usage_sql
from reporting_api.usage import windows as usage_windows
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread

CLIENTS, AGENTS_PER_CLIENT = 50, 10
# (provider, object_type, metric, unit, typical quantity, USD per unit): the shapes of the real events
SHAPES = [
    ("retell", "call", "voice_seconds", "second", 300, "0.0014"),
    ("retell", "call", "llm_tokens", "token", 30000, "0"),
    ("twilio", "call", "voice_minutes", "minute", 5, "0.0104"),
    ("twilio", "message", "sms_segments", "segment", 2, "0.0079"),
    ("twilio", "message", "mms_messages", "message", 1, "0.0220"),
    ("openrouter", "activity", "llm_tokens", "token", 20000, "0.0000009"),
    ("openrouter", "activity", "llm_requests", "request", 10, "0"),
]
TARGETS = {"statement": 0.100, "usage_90_days": 1.0}


def _dbt(warehouse: Warehouse, as_of: datetime, *args: str) -> None:
    subprocess.run([DBT_EXECUTABLE, *args, "--vars", json.dumps({"as_of": as_of.isoformat()}), "--project-dir",
                    str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet"], check=True,
                   env={**os.environ, **warehouse.dbt_env()})


def _execute(warehouse: Warehouse, sql: str, params=None) -> list[tuple]:
    connection = warehouse.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall() if cursor.description else []
        connection.commit()
        return rows
    finally:
        connection.close()


def build_seed(warehouse: Warehouse, end: date, as_of: datetime) -> None:
    """The real project on a small sandbox: every table, index and directory row of 50 clients."""
    config = SandboxConfig(clients=CLIENTS, agents_per_client=AGENTS_PER_CLIENT, days=1, calls_per_agent_per_day=1,
                           end_date=end)
    sandbox = start_in_thread(config)
    try:
        collect_sandbox(warehouse, sandbox.base_url, config)
    finally:
        sandbox.shutdown()
    _dbt(warehouse, as_of, "build", "--resource-type", "model", "--resource-type", "snapshot")


def generate_events(warehouse: Warehouse, events: int, start: datetime, days: int) -> None:
    """N events over [start, start + days), evenly spaced, cycling through clients, agents and shapes."""
    indexes = _execute(warehouse, """
        select indexname, indexdef from pg_indexes where schemaname = 'marts' and tablename = 'fct_usage_events'
          and indexname not in (select conname from pg_constraint
                                where conrelid = 'marts.fct_usage_events'::regclass)""")
    constraints = _execute(warehouse, """
        select conname, pg_get_constraintdef(oid) from pg_constraint
        where conrelid = 'marts.fct_usage_events'::regclass and contype in ('p', 'u')""")
    shapes = ", ".join(f"({n}, '{p}', '{o}', '{m}', '{u}', {q}, {r}::numeric)"
                       for n, (p, o, m, u, q, r) in enumerate(SHAPES))
    statements = [f'drop index marts."{name}"' for name, _ in indexes]
    statements += [f'alter table marts.fct_usage_events drop constraint "{name}"' for name, _ in constraints]
    pending = "mod(n, 1000) = 0"  # 0.1 % of the events wait for a price
    statements += ["truncate marts.fct_usage_events", f"""
        insert into marts.fct_usage_events (usage_event_id, idempotency_key, provider, object_type, metric, unit,
            quantity, cost_usd, currency, cost_native, occurred_at, usage_date, client_id, agent_id,
            attribution_status, external_id, linked_external_id, source_channels, first_seen_at, last_changed_at,
            last_observed_at, attributes, cost_status)
        select md5('bench:' || n), 'bench:' || shape.provider || ':' || n || ':' || shape.metric, shape.provider,
               shape.object_type, shape.metric, shape.unit, amount.quantity,
               case when {pending} then null else round(amount.quantity * shape.rate, 7) end, 'USD',
               case when {pending} then null else round(amount.quantity * shape.rate, 7) end,
               picked.occurred_at, (picked.occurred_at at time zone 'UTC')::date, picked.client_id,
               picked.client_id || '_agent_' || lpad(picked.agent_number::text, 2, '0'), 'attributed',
               'bench_' || n, null, array['poll'], picked.occurred_at + interval '2 minutes',
               picked.occurred_at + interval '2 minutes', picked.occurred_at + interval '2 minutes', '{{}}'::jsonb,
               case when not {pending} then 'settled'
                    when picked.occurred_at > %(start)s::timestamptz + interval '{days - 35} days' then 'pending'
                    else 'expired' end  -- pending_max_age_days
        from generate_series(0::bigint, {events - 1}) as n
        cross join lateral (
            select %(start)s::timestamptz + n * ({days} * 86400.0 / {events}) * interval '1 second' as occurred_at,
                   'client_' || lpad((mod(n, {CLIENTS}) + 1)::text, 3, '0') as client_id,
                   mod(n, {len(SHAPES)}) as shape_index,
                   mod(n / {CLIENTS}, {AGENTS_PER_CLIENT}) + 1 as agent_number
        ) as picked
        inner join (values {shapes}) as shape (shape_index, provider, object_type, metric, unit, typical, rate)
            on shape.shape_index = picked.shape_index
        cross join lateral (select (1 + mod(n * 7919, 2 * shape.typical))::numeric as quantity) as amount"""]
    statements += [f"alter table marts.fct_usage_events add constraint \"{name}\" {definition}"
                   for name, definition in constraints]
    statements += [definition for _, definition in indexes] + ["analyze marts.fct_usage_events"]
    for sql in statements:
        _execute(warehouse, sql, {"start": start})


def rebuild_aggregates(warehouse: Warehouse, as_of: datetime) -> None:
    _execute(warehouse, "truncate marts.fct_cycle_usage, marts.fct_cycle_usage_by_agent, marts.fct_cycle_adjustments")
    _dbt(warehouse, as_of, "run", "--select", "fct_daily_usage", "fct_daily_client_usage", "fct_hourly_usage",
         "--full-refresh")
    _dbt(warehouse, as_of, "run", "--select", "fct_cycle_usage", "fct_cycle_usage_by_agent", "fct_cycle_adjustments")
    reporting = _execute(warehouse, "select to_regclass('reporting.rpt_cycle_statements') is not null")[0][0]
    if reporting:
        _dbt(warehouse, as_of, "run", "--select", "models/reporting")
    _execute(warehouse, "analyze marts.fct_daily_usage; analyze marts.fct_daily_client_usage; "
                        "analyze marts.fct_hourly_usage")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(warehouse: Warehouse, as_of: datetime, log_path: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    environment = {**os.environ, PROVIDERS_ENV: "live", DATABASE_URL_ENV: warehouse.url, PII_SALT_ENV: SANDBOX_PII_SALT,
                   NOW_ENV: as_of.isoformat(), "BILLING_USAGE_API_PORT": str(port)}
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "reporting_api"], env=environment, stdout=log,
                                  stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/openapi.json", timeout=1)
            return server, base
        except requests.ConnectionError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"the API did not start; see {log_path}")


def _timed(session: requests.Session, url: str, runs: int) -> tuple[list[float], int, int]:
    """Seconds per request (whole body read), after two warm-ups; the last body's size and row count."""
    for _ in range(2):
        session.get(url).raise_for_status()
    timings, size, rows = [], 0, 0
    for _ in range(runs):
        started = time.perf_counter()
        response = session.get(url)
        body = response.content
        timings.append(time.perf_counter() - started)
        response.raise_for_status()
        size = len(body)
        rows = body.count(b"\n") - 1 if response.headers["content-type"].startswith("text/csv") \
            else len(response.json().get("data", response.json().get("lines", [])))
    return timings, size, rows


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=100, help="days the events spread over, ending with --end")
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 3, 15), help="last day of events")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument("--database", help="reuse a database a previous --keep run generated")
    args = parser.parse_args()
    as_of = datetime.combine(args.end + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=6)
    start = as_of - timedelta(hours=6) - timedelta(days=args.days)
    server = resolve_warehouse()
    database = args.database or f"bench_api_{os.getpid()}"
    warehouse = create_database(server, database)
    print(f"warehouse: {warehouse.display_url}", flush=True)
    api = None
    try:
        if not args.database:
            began = time.perf_counter()
            build_seed(warehouse, args.end, as_of)
            seeded = time.perf_counter()
            generate_events(warehouse, args.events, start, args.days)
            generated = time.perf_counter()
            rebuild_aggregates(warehouse, as_of)
            print(f"generated {args.events:,} events over {args.days} days: seed build {seeded - began:.0f} s, "
                  f"events {generated - seeded:.0f} s, aggregates {time.perf_counter() - generated:.0f} s", flush=True)
        (events, daily), = _execute(warehouse, "select (select count(*) from marts.fct_usage_events), "
                                               "(select count(*) from marts.fct_daily_usage)")
        print(f"marts.fct_usage_events: {events:,} rows; marts.fct_daily_usage: {daily:,} rows", flush=True)
        connection = warehouse.connect()
        ensure_tables(connection)
        token = create_token(connection, None, "bench-api")[1]
        connection.close()
        (cycle_id, client_id, cycle_start, cycle_end), = _execute(warehouse, """
            select cycle_id, client_id, cycle_start, cycle_end from marts.dim_billing_cycles
            where client_id = 'client_001' and cycle_end <= %s order by cycle_start desc limit 1""", (as_of,))
        month_start = date(args.end.year, args.end.month, 1) - timedelta(days=1)
        month_start = month_start.replace(day=1)
        month_end = (month_start + timedelta(days=32)).replace(day=1)
        day90 = (args.end - timedelta(days=89)).isoformat()
        scenarios = {
            "statement": f"/v1/clients/{client_id}/cycles/{cycle_id}/statement",
            "usage_90_days": f"/v1/usage?from={day90}&to={args.end + timedelta(days=1)}&window_size=day"
                             "&group_by=client&limit=1000",
            "csv_month": f"/v1/usage?from={month_start}&to={month_end}&window_size=day"
                         "&group_by=client,agent,provider,metric&format=csv",
            "usage_90_days_new_york": f"/v1/usage?from={day90}&to={args.end + timedelta(days=1)}&window_size=day"
                                      "&window_time_zone=America/New_York&group_by=client&limit=1000",
        }
        queries = {
            "usage_90_days": UsageQuery(datetime.fromisoformat(day90).replace(tzinfo=UTC),
                                        datetime.combine(args.end + timedelta(days=1), datetime.min.time(), UTC),
                                        "day", ZoneInfo("UTC"), ("client",), None, limit=1001),
            "csv_month": UsageQuery(datetime.combine(month_start, datetime.min.time(), UTC),
                                    datetime.combine(month_end, datetime.min.time(), UTC), "day", ZoneInfo("UTC"),
                                    ("client", "agent", "provider", "metric"), None),
            "usage_90_days_new_york": UsageQuery(
                datetime.combine(date.fromisoformat(day90), datetime.min.time(), ZoneInfo("America/New_York")),
                datetime.combine(args.end + timedelta(days=1), datetime.min.time(), ZoneInfo("America/New_York")),
                "day", ZoneInfo("America/New_York"), ("client",), None, limit=1001),
        }
        with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as log:
            api, base = _serve(warehouse, as_of, log.name)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        cores, load = os.cpu_count(), os.getloadavg()[0]
        print(f"{cores} cores, load average {load:.1f} before measuring (other work on the machine slows every "
              "figure)", flush=True)
        results = {}
        for name, url in scenarios.items():
            runs = args.runs if name != "csv_month" else max(5, args.runs // 3)
            timings, size, rows = _timed(session, base + url, runs)
            results[name] = (timings, size, rows)
            p50, p95 = statistics.median(timings), _percentile(timings, 0.95)
            target = TARGETS.get(name)
            verdict = "" if target is None else f"  target p95 <= {target * 1000:.0f} ms: " \
                                                f"{'met' if p95 <= target else 'MISSED'}"
            print(f"{name:<24} p50 {p50 * 1000:8.1f} ms  p95 {p95 * 1000:8.1f} ms  ({len(timings)} runs, "
                  f"{rows:,} rows, {size / 1024:,.0f} KiB){verdict}", flush=True)
            print(f"    GET {url}", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f} after measuring", flush=True)
        slowest = max((name for name in results if name in queries),
                      key=lambda name: _percentile(results[name][0], 0.95))
        connection = warehouse.connect(options=f"-c work_mem={WORK_MEM}")  # as the API's sessions
        with connection.cursor() as cursor:
            built = usage_sql(queries[slowest], usage_windows(cursor, queries[slowest]))
            if built.sort_groups:
                cursor.execute("set local enable_hashagg = off")
            cursor.execute("explain (analyze, buffers, costs off) " + built.sql, built.parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        connection.close()
        print(f"\nEXPLAIN ANALYZE of the slowest query ({slowest}):\n{plan}")
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        if args.keep or args.database:
            print(f"kept database {database}")
        else:
            drop_database(server, database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
