"""Incremental builds as history grows, and the build after a day of a million events: `make bench-scale`.

    python -m benchmarks.incremental_scale [--copies 99] [--changed 10000] [--day-copies 10] [--rounds 3]

1. A sandbox agency (20 clients x 5 agents x 14 days x 23 calls, about 100k events) is collected by the
   project's collectors into database A and built whole by the real dbt project (models and snapshots).
2. Database B starts as a copy of A. Its history then grows `--copies` times: every Retell call, Twilio call,
   message and daily Usage Record, and every row of the event-level and day-level marts, once more per copy,
   each copy 14 days further back with its ids suffixed `~h<copy>`. The raw copies keep every column, type
   and load id the collectors wrote, so B is what A would be after years of collection (about 10M events).
3. Rounds, the order of A and B alternating: the newest `--changed` Retell calls of a database get a new
   load id, as if a collection had read them again, and the whole project builds incrementally. Printed per
   build: seconds, the slowest models, and the sequential scans of raw tables and fct_usage_events
   (pg_stat_user_tables).
4. Once more in B, `--changed` calls change and the project builds with auto_explain on (not timed): every
   statement's plan goes to --explain-file, and those that read a raw table or fct_usage_events sequentially
   are named.
5. In B, the base's calls and messages arrive `--day-copies` times more on the day after the last (ids
   suffixed `~d<copy>`, one new load): a day of about a million events, and the incremental build after it,
   stopped after --day-timeout seconds.

Prints one JSON object. The business clock is fixed: the sandbox ends on 2026-03-15.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path

import psutil

from benchmarks.sandbox_load import collect_sandbox
from billing_usage.settings import NOW_ENV, PROJECT_ROOT
from billing_usage.warehouse import Warehouse, create_database, drop_database, resolve_warehouse
from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR, RETENTION_MODELS
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread

END = date(2026, 3, 15)
BASE = SandboxConfig(clients=20, agents_per_client=5, days=14, calls_per_agent_per_day=23, end_date=END)
DAY_ROLLUPS = ("fct_daily_usage", "fct_daily_client_usage", "fct_hourly_usage")
# Every model and snapshot the model build makes (the retention job builds the retention models).
EVERY_MODEL = ("build", "--resource-type", "model", "--resource-type", "snapshot", "--exclude", RETENTION_MODELS)
RFC_2822 = "Dy, DD Mon YYYY HH24:MI:SS"

# How a copy of each table differs from its original: ids get a suffix; times move by the copy's shift.
# kinds: id (text), ms (epoch milliseconds), rfc (Twilio's RFC 2822 text), iso_day (YYYY-MM-DD text),
# ts (timestamptz), day (date)
CLONED = {
    "raw_retell.calls": {"call_id": "id", "start_timestamp": "ms", "end_timestamp": "ms",
                         "telephony_identifier": "twilio_sid_json"},
    "raw_twilio.calls": {"sid": "id", "parent_call_sid": "id", "start_time": "rfc", "end_time": "rfc",
                         "date_created": "rfc", "date_updated": "rfc"},
    "raw_twilio.messages": {"sid": "id", "date_sent": "rfc", "date_created": "rfc", "date_updated": "rfc"},
}
HISTORY_ONLY = {  # what history holds besides the objects: Twilio's daily totals, and the marts
    "raw_twilio.usage_records": {"start_date": "iso_day", "end_date": "iso_day"},
    "marts.fct_usage_events": {"usage_event_id": "id", "idempotency_key": "id", "external_id": "id",
                               "linked_external_id": "id", "occurred_at": "ts", "usage_date": "day",
                               "first_seen_at": "ts", "last_changed_at": "ts", "last_observed_at": "ts"},
    "marts.fct_calls": {"conversation_id": "id", "call_id": "id", "twilio_call_sid": "id", "started_at": "ts"},
    "marts.fct_daily_usage": {"usage_date": "day", "observed_through": "ts"},
    "marts.fct_daily_client_usage": {"usage_date": "day", "observed_through": "ts"},
    "marts.fct_hourly_usage": {"usage_hour": "ts", "usage_date": "day", "observed_through": "ts"},
    "marts.anomaly_objects_daily": {"usage_date": "day", "observed_through": "ts"},
    "marts.coverage_twilio_daily": {"usage_date": "day", "observed_through": "ts"},
    "marts.coverage_retell_daily": {"usage_date": "day", "observed_through": "ts"},
}

# The tables B holds 100 times over; the others (directory, OpenRouter, webhooks) stay as the sandbox made them.
GROWN = {*CLONED, "raw_twilio.usage_records", "marts.fct_usage_events"}


def _as_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), day_time(6, 0), tzinfo=UTC)


def _execute(warehouse: Warehouse, sql: str, params=None) -> list[tuple]:
    """One statement on its own connection, outside a transaction (CREATE DATABASE, VACUUM)."""
    connection = warehouse.connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def _dbt(warehouse: Warehouse, as_of: datetime, target: str, *args: str,
         timeout: float | None = None) -> tuple[float | None, float]:
    """Seconds and peak RSS (MB, sampled: a forked child's ru_maxrss starts at its parent's) of one dbt
    command; seconds None if it was stopped after `timeout`."""
    started = time.perf_counter()
    process = subprocess.Popen([DBT_EXECUTABLE, *args, "--vars", json.dumps({"as_of": as_of.isoformat()}),
                                "--target-path", target, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
                                str(DBT_PROJECT_DIR), "--quiet"], env={**os.environ, **warehouse.dbt_env()})
    peak, watched = 0, psutil.Process(process.pid)
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, watched.memory_info().rss)
        if timeout is not None and time.perf_counter() - started > timeout:
            process.kill()
            process.wait()
            _execute(warehouse, "select pg_terminate_backend(pid) from pg_stat_activity "
                                "where datname = current_database() and pid <> pg_backend_pid()")
            return None, round(peak / 2**20)
        time.sleep(0.2)
    if process.returncode:
        raise RuntimeError(f"dbt {' '.join(args)} failed")
    return round(time.perf_counter() - started, 2), round(peak / 2**20)


def _copied(column: str, kind: str, shift_days: str, suffix: str) -> str:
    """The SQL of one column of a copy; shift_days and suffix are SQL expressions."""
    quoted = f'"{column}"'
    return {
        "id": f"{quoted} || {suffix}",
        "ms": f"{quoted} - ({shift_days}) * 86400000::bigint",
        "ts": f"{quoted} - ({shift_days}) * interval '1 day'",
        "day": f"{quoted} - ({shift_days})",
        "iso_day": f"to_char({quoted}::date - ({shift_days}), 'YYYY-MM-DD')",
        "rfc": f"""to_char(to_timestamp({quoted}, '{RFC_2822}') at time zone 'UTC' - ({shift_days}) * interval '1 day',
                           '{RFC_2822} "+0000"')""",
        "twilio_sid_json": f"""case when {quoted} ? 'twilio_call_sid' then jsonb_set({quoted}, '{{twilio_call_sid}}',
                                    to_jsonb(({quoted} ->> 'twilio_call_sid') || {suffix})) else {quoted} end""",
    }[kind]


def clone(warehouse: Warehouse, table: str, rules: dict[str, str], copies: int, shift_days: str, suffix: str,
          load_id: str | None = None, where: str = "true") -> int:
    """Insert `copies` copies of the rows of `table` (k = 1..copies in the expressions), indexes dropped during
    the insert and created again from their own definitions; the table's rows after. A new load id stamps the
    copies if given."""
    schema, name = table.split(".")
    columns = [row[0] for row in _execute(warehouse, """
        select column_name from information_schema.columns where table_schema = %s and table_name = %s
        order by ordinal_position""", (schema, name))]
    select = []
    for column in columns:
        if column == "_dlt_id":
            select.append(f"substr(md5(_dlt_id || {suffix}), 1, 14)")
        elif column == "_dlt_load_id" and load_id:
            select.append(f"'{load_id}'")
        elif column in rules:
            select.append(_copied(column, rules[column], shift_days, suffix))
        else:
            select.append(f'"{column}"')
    indexes = _execute(warehouse, "select indexname, indexdef from pg_indexes where schemaname = %s and tablename = %s "
                                  "and indexname not in (select conname from pg_constraint)", (schema, name))
    for index, _ in indexes:
        _execute(warehouse, f'drop index {schema}."{index}"')
    _execute(warehouse, f"""insert into {table} ({", ".join(f'"{c}"' for c in columns)})
                            select {", ".join(select)} from {table} cross join generate_series(1, {copies}) as k
                            where {where}""")
    for _, definition in indexes:
        _execute(warehouse, f"set maintenance_work_mem = '1GB'; {definition}")  # sorts in memory, not on disk
    return _execute(warehouse, f"select count(*) from {table}")[0][0]


def grow_history(warehouse: Warehouse, copies: int) -> dict:
    started = time.perf_counter()
    # Usage Records of the days before the sandbox's first (all zero) give way to the copies' records.
    in_sandbox = f"start_date between '{BASE.start_date}' and '{END}'"
    _execute(warehouse, f"delete from raw_twilio.usage_records where not ({in_sandbox})")
    inserted = {table: clone(warehouse, table, rules, copies, f"k * {BASE.days}", "'~h' || k",
                             where=in_sandbox if table == "raw_twilio.usage_records" else "true")
                for table, rules in {**CLONED, **HISTORY_ONLY}.items()}
    _execute(warehouse, "vacuum analyze")
    return {"rows_after": inserted, "seconds": round(time.perf_counter() - started, 1)}


def add_big_day(warehouse: Warehouse, copies: int, load_id: str) -> dict:
    """Every base call and message `copies` more times, each base day moved onto the day after END."""
    started = time.perf_counter()
    base_only = {"raw_retell.calls": "call_id not like '%~%'", "raw_twilio.calls": "sid not like '%~%'",
                 "raw_twilio.messages": "sid not like '%~%'"}
    day_of = {"raw_retell.calls": "(to_timestamp(start_timestamp / 1000.0) at time zone 'UTC')::date",
              "raw_twilio.calls": f"(to_timestamp(start_time, '{RFC_2822}') at time zone 'UTC')::date",
              "raw_twilio.messages": f"(to_timestamp(date_sent, '{RFC_2822}') at time zone 'UTC')::date"}
    new_day = END + timedelta(days=1)
    inserted = {table: clone(warehouse, table, rules, copies, f"{day_of[table]} - date '{new_day}'", "'~d' || k",
                             load_id, f"{base_only[table]} and {day_of[table]} between date '{BASE.start_date}' "
                                      f"and date '{END}'")
                for table, rules in CLONED.items()}
    _execute(warehouse, "analyze raw_retell.calls; analyze raw_twilio.calls; analyze raw_twilio.messages")
    return {"rows_after": inserted, "seconds": round(time.perf_counter() - started, 1)}


def change(warehouse: Warehouse, objects: int, load_id: str) -> None:
    """The newest N Retell calls stamped with a new load, as a collection that read them again."""
    _execute(warehouse, "update raw_retell.calls set _dlt_load_id = %s where call_id in (select call_id "
                        "from raw_retell.calls order by start_timestamp desc limit %s)", (load_id, objects))


def incremental_build(warehouse: Warehouse, as_of: datetime, target: str, timeout: float | None = None) -> dict:
    _execute(warehouse, "select pg_stat_reset()")
    seconds, peak_rss_mb = _dbt(warehouse, as_of, target, *EVERY_MODEL, timeout=timeout)
    if seconds is None:
        return {"seconds": None, "stopped_after_seconds": timeout, "dbt_peak_rss_mb": peak_rss_mb}
    time.sleep(1)  # statistics reach the shared counters when the dbt connections close
    scans = {name: {"seq_scans": count, "rows_read": rows} for name, count, rows in _execute(warehouse, """
        select schemaname || '.' || relname, seq_scan, seq_tup_read from pg_stat_user_tables
        where (schemaname like 'raw\\_%' or (schemaname, relname) = ('marts', 'fct_usage_events'))
          and seq_scan > 0 and seq_tup_read > 0 order by seq_tup_read desc""")}
    results = {r["unique_id"].split(".")[-1]: round(r["execution_time"], 2)
               for r in json.loads((Path(target) / "run_results.json").read_text())["results"]}
    slowest = sorted(results, key=results.get, reverse=True)[:6]
    return {"seconds": seconds, "dbt_peak_rss_mb": peak_rss_mb,
            "slowest_models": {name: results[name] for name in slowest},
            "day_rollups_seconds": round(sum(results.get(name, 0) for name in DAY_ROLLUPS), 2),
            "sequential_scans": scans}


AUTO_EXPLAIN = ("-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0 "
                "-c auto_explain.log_nested_statements=on -c auto_explain.log_verbose=on")
SEQUENTIAL_READ = re.compile(r"Seq Scan on (raw_\w+\.\w+|marts\.fct_usage_events)\b")
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", re.MULTILINE)
NODE_ID = re.compile(r'"node_id": "[a-z_]+\.billing_usage\.(\w+)"')
COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def _server_log(warehouse: Warehouse) -> Path | None:
    """The server's log file: the embedded server's `log` in its data folder, or Debian's."""
    data_directory = Path(_execute(warehouse, "show data_directory")[0][0])
    candidates = [data_directory / "log", *sorted(Path("/var/log/postgresql").glob("postgresql-*-main.log"))]
    return next((path for path in candidates if path.is_file() and os.access(path, os.R_OK)), None)


def explained_build(warehouse: Warehouse, as_of: datetime, target: str, out: Path) -> dict:
    """One incremental build with every statement's plan logged by auto_explain (not timed): the plans go to
    `out`, and the statements that read a raw table or fct_usage_events sequentially are listed."""
    log = _server_log(warehouse)
    if log is None:
        return {"skipped": "the server's log file is not readable here"}
    offset = log.stat().st_size
    os.environ["PGOPTIONS"] = AUTO_EXPLAIN
    try:
        _dbt(warehouse, as_of, target, *EVERY_MODEL)
    finally:
        del os.environ["PGOPTIONS"]
    with log.open(errors="replace") as handle:
        handle.seek(offset)
        text = handle.read()
    starts = [match.start() for match in LOG_RECORD.finditer(text)] + [len(text)]
    plans = [text[a:b] for a, b in zip(starts, starts[1:], strict=False) if "plan:" in text[a:b]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(plans))
    sequential = [{"node": node[1] if (node := NODE_ID.search(plan)) else None,
                   "statement": " ".join(COMMENT.sub("", plan.split("Query Text:", 1)[-1]).split())[:160],
                   "reads": sorted(set(SEQUENTIAL_READ.findall(plan)))}
                  for plan in plans if SEQUENTIAL_READ.search(plan)]
    return {"statements_explained": len(plans), "sequential_reads": sequential, "plans": str(out)}


def _count(warehouse: Warehouse, sql: str) -> int:
    return _execute(warehouse, sql)[0][0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=99, help="history copies in B (B = copies + 1 times A)")
    parser.add_argument("--changed", type=int, default=10_000, help="objects changed before each measured build")
    parser.add_argument("--day-copies", type=int, default=10, help="copies of the base on the big day")
    parser.add_argument("--rounds", type=int, default=3, help="A B, B A, A B, ...")
    parser.add_argument("--day-timeout", type=float, default=900, help="stop the big day's build after it")
    parser.add_argument("--explain-file", default=str(PROJECT_ROOT / ".local" / "bench" / "incremental_plans.log"))
    parser.add_argument("--keep", action="store_true", help="keep the databases (their names are printed)")
    parser.add_argument("--json-out", help="also write the figures to this file")
    args = parser.parse_args()
    os.environ[NOW_ENV] = _as_of(END).isoformat()  # the collectors' clock: the morning after the sandbox's last day
    server = resolve_warehouse()
    names = {"A": f"bench_scale_a_{os.getpid()}", "B": f"bench_scale_b_{os.getpid()}"}
    result: dict = {"databases": names, "grown_tables": sorted(GROWN)}
    sandbox = start_in_thread(BASE)
    warehouses = {"A": create_database(server, names["A"])}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            collect_sandbox(warehouses["A"], sandbox.base_url, BASE)
            result["base_full_build_seconds"], _ = _dbt(warehouses["A"], _as_of(END), scratch, *EVERY_MODEL)
            # a template must have no other session (autovacuum's, a pooled connection's)
            _execute(server, "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
                     (names["A"],))
            _execute(server, f'create database "{names["B"]}" template "{names["A"]}"')
            warehouses["B"] = server.with_database(names["B"])
            result["grow_history"] = grow_history(warehouses["B"], args.copies)
            for key, warehouse in warehouses.items():
                result[f"events_{key}"] = _count(warehouse, "select count(*) from marts.fct_usage_events")
                result[f"bytes_{key}"] = _count(warehouse, "select pg_database_size(current_database())")
            builds: dict[str, list[dict]] = {"A": [], "B": []}
            for round_number in range(args.rounds):
                for key in ("A", "B") if round_number % 2 == 0 else ("B", "A"):
                    change(warehouses[key], args.changed, f"9999999999.{round_number + 1}")
                    builds[key].append(incremental_build(warehouses[key], _as_of(END), scratch))
            result["incremental"] = builds
            result["incremental_seconds"] = {key: [b["seconds"] for b in runs] for key, runs in builds.items()}
            result["ratio_B_to_A"] = round(statistics.median(result["incremental_seconds"]["B"])
                                           / statistics.median(result["incremental_seconds"]["A"]), 2)
            change(warehouses["B"], args.changed, "9999999999.8")
            result["explained"] = explained_build(warehouses["B"], _as_of(END), scratch, Path(args.explain_file))
            new_day = END + timedelta(days=1)
            big_day = add_big_day(warehouses["B"], args.day_copies, "9999999999.9")
            # the events its objects make: A's Retell and Twilio events, once per copy
            big_day["events_that_day"] = args.day_copies * _count(
                warehouses["A"], "select count(*) from marts.fct_usage_events where provider <> 'openrouter'")
            big_day["build"] = incremental_build(warehouses["B"], _as_of(new_day), scratch, args.day_timeout)
            if big_day["build"]["seconds"] is not None:
                big_day["events_that_day"] = _count(warehouses["B"], "select count(*) from marts.fct_usage_events "
                                                                     f"where usage_date = date '{new_day}'")
            result["big_day"] = big_day
    finally:
        sandbox.shutdown()
        if not args.keep:
            for name in names.values():
                drop_database(server, name)
    print(json.dumps(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
