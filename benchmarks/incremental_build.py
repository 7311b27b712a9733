"""Incremental build cost: full build against incremental builds with nothing or a little new.

    python -m benchmarks.incremental_build [--clients 20] [--days 14] [--calls 20]

Collects the sandbox into a fresh database, then times `dbt run --select fct_usage_events`:
a full refresh, an incremental run with nothing new, and one after N objects were re-loaded.
Then the same N objects again for every model (`dbt run`), with the five slowest models and the
sequential scans that run made of fct_usage_events and the raw tables (pg_stat_user_tables).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time

from benchmarks.incremental_scale import EVERY_MODEL
from benchmarks.sandbox_load import collect_sandbox
from billing_usage.warehouse import create_database, drop_database, resolve_warehouse
from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread


def _dbt(warehouse, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([DBT_EXECUTABLE, *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
                    str(DBT_PROJECT_DIR), "--quiet"], check=True, env={**os.environ, **warehouse.dbt_env()})
    return round(time.perf_counter() - started, 2)


def _touch(warehouse, objects: int, load_id: str) -> None:
    """Re-stamp N Retell calls as if a new load had brought them again."""
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("update raw_retell.calls set _dlt_load_id = %s where call_id in "
                       "(select call_id from raw_retell.calls order by call_id limit %s)", (load_id, objects))


def _whole_project_incremental(warehouse, objects: int, scratch: str) -> dict:
    """Every model and snapshot of the model build once in full, then incrementally after N objects changed:
    time, slowest models, scans."""
    full = _dbt(warehouse, *EVERY_MODEL)
    _touch(warehouse, objects, "9999999999.1")
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select pg_stat_reset()")
    incremental = _dbt(warehouse, *EVERY_MODEL, "--target-path", scratch)
    time.sleep(1)  # statistics reach the shared counters when the dbt connections close
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("""select schemaname || '.' || relname, seq_scan, seq_tup_read from pg_stat_user_tables
                          where (schemaname like 'raw\\_%' or (schemaname, relname) = ('marts', 'fct_usage_events'))
                            and seq_scan > 0 order by seq_tup_read desc""")
        scans = {name: {"seq_scans": count, "rows_read": rows} for name, count, rows in cursor.fetchall()}
    with open(os.path.join(scratch, "run_results.json")) as handle:
        results = json.load(handle)["results"]
    slowest = sorted(results, key=lambda result: result["execution_time"], reverse=True)[:5]
    return {"all_models_full_seconds": full, f"all_models_{objects}_objects_seconds": incremental,
            "slowest_models": {r["unique_id"].split(".")[-1]: round(r["execution_time"], 2) for r in slowest},
            "sequential_scans": scans}


def _model_seconds() -> float:
    """fct_usage_events' own time in the last run (its SQL and hooks, without dbt's start-up)."""
    with open(DBT_PROJECT_DIR / "target" / "run_results.json") as handle:
        results = json.load(handle)["results"]
    return round(next(r for r in results if r["unique_id"].endswith(".fct_usage_events"))["execution_time"], 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--touched", type=int, default=100, help="objects re-loaded before the last run")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = parser.parse_args()
    config = SandboxConfig(clients=args.clients, agents_per_client=5, days=args.days,
                           calls_per_agent_per_day=args.calls)
    sandbox = start_in_thread(config)
    server = resolve_warehouse()
    database = f"bench_incremental_{os.getpid()}"
    warehouse = create_database(server, database)
    try:
        collect_sandbox(warehouse, sandbox.base_url, config)
        with warehouse.connect() as connection, connection.cursor() as cursor:
            cursor.execute("select count(*) from raw_retell.calls")
            calls = cursor.fetchone()[0]
        _dbt(warehouse, "build", "--select", "+fct_usage_events", "--exclude", "fct_usage_events",
             "--resource-type", "model", "--resource-type", "snapshot")
        full = _dbt(warehouse, "run", "--select", "fct_usage_events", "--full-refresh")
        model = {"full_refresh": _model_seconds()}
        idle = _dbt(warehouse, "run", "--select", "fct_usage_events")
        model["nothing_new"] = _model_seconds()
        _touch(warehouse, args.touched, "9999999999.0")
        with warehouse.connect() as connection, connection.cursor() as cursor:
            cursor.execute("select count(*) from marts.fct_usage_events")
            events = cursor.fetchone()[0]
        touched = _dbt(warehouse, "run", "--select", "fct_usage_events")
        model[f"{args.touched}_objects"] = _model_seconds()
        with tempfile.TemporaryDirectory() as scratch:
            whole = _whole_project_incremental(warehouse, args.touched, scratch)
    finally:
        sandbox.shutdown()
        if not args.keep:
            drop_database(server, database)
    print(json.dumps({"database": database, "retell_calls": calls, "usage_events": events, "full_refresh_seconds": full,
                      "incremental_nothing_new_seconds": idle,
                      f"incremental_{args.touched}_objects_seconds": touched,
                      "fct_usage_events_model_seconds": model, **whole}))


if __name__ == "__main__":
    main()
