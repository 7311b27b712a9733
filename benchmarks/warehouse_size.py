"""What one usage event costs in the warehouse, and what a dbt build costs, for the sizing table of
docs/production.md.

    python -m benchmarks.warehouse_size [--clients 10] [--days 7] [--calls 40]

On the embedded PostgreSQL (or BILLING_USAGE_DATABASE_URL): collects the sandbox's days and builds the models,
then sends every call and message of those days again as signed webhooks (production sees each object by both
channels) and builds again, then builds once more with nothing new. Prints the bytes on disk (tables, indexes,
TOAST) of the raw schemas and the marts per event in marts.fct_usage_events, and each build's seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path

import requests
import uvicorn
import yaml

from benchmarks.webhook_throughput import _fire
from billing_usage.settings import DATABASE_URL_ENV, NOW_ENV, PII_SALT_ENV, PROVIDERS_ENV, SANDBOX_PII_SALT
from billing_usage.warehouse import create_database, drop_database, resolve_warehouse
from cli.local_env import sandbox_source_config
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.webhook_sender import retell_deliveries, twilio_deliveries
from webhooks.app import create_app
from webhooks.settings import WebhookSettings

END_DATE = date(2026, 3, 15)
SIZES = """select n.nspname, sum(pg_total_relation_size(c.oid))::bigint
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where c.relkind in ('r', 'p', 'm')
             and (n.nspname like 'raw\\_%' or n.nspname in ('marts', 'snapshots', 'ops'))
           group by 1 order by 1"""
COLUMNS = """select a.attname from pg_attribute a
               where a.attrelid = 'marts.fct_usage_events'::regclass and a.attnum > 0 and not a.attisdropped
               order by a.attnum"""
DEAD = """select schemaname || '.' || relname, n_live_tup, n_dead_tup from pg_stat_user_tables
          where schemaname like 'raw\\_%' or schemaname = 'marts' order by n_dead_tup desc limit 5"""
LARGEST = """select n.nspname || '.' || c.relname, pg_total_relation_size(c.oid), pg_indexes_size(c.oid)
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relkind in ('r', 'p', 'm') and (n.nspname like 'raw\\_%' or n.nspname = 'marts')
             order by 2 desc limit 8"""


def _receiver(warehouse, config: SandboxConfig):
    settings = WebhookSettings((config.retell_api_key(0),), (config.twilio_auth_token,))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, warehouse.connect), host="127.0.0.1", port=0,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, server.servers[0].sockets[0].getsockname()[1]


def _query(warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--agents", type=int, default=5, help="agents per client")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--calls", type=int, default=40, help="calls per agent per day")
    args = parser.parse_args()
    config = SandboxConfig(seed=23, clients=args.clients, agents_per_client=args.agents, days=args.days,
                           calls_per_agent_per_day=args.calls, end_date=END_DATE)
    server = resolve_warehouse()
    database = f"bench_size_{os.getpid()}"
    warehouse = create_database(server, database)
    sandbox = start_in_thread(config)
    folder = Path(tempfile.mkdtemp(prefix="bench-size-"))
    directory = folder / "directory.yaml"
    directory.write_text(yaml.safe_dump(requests.get(f"{sandbox.base_url}/_sandbox/directory", timeout=10).json()))
    os.environ.update(sandbox_source_config(sandbox.base_url, config, str(directory)) | warehouse.dbt_env() | {
        PROVIDERS_ENV: "live", DATABASE_URL_ENV: warehouse.url, PII_SALT_ENV: SANDBOX_PII_SALT,
        NOW_ENV: datetime.combine(END_DATE + timedelta(days=1), day_time(6, 0)).isoformat() + "+00:00",
        "BILLING_USAGE_LOCAL_DIR": str(folder / "local")})
    from dagster import DagsterInstance

    from cli.runs import run_usage_pipeline
    from dagster_project.definitions import defs
    from dagster_project.partitions import today_partition_key

    receiver, port = _receiver(warehouse, config)
    seconds = {}
    try:
        instance = DagsterInstance.ephemeral()
        started = time.monotonic()
        assert run_usage_pipeline(instance).success
        seconds["collect_and_first_build"] = time.monotonic() - started
        twilio_url = f"http://127.0.0.1:{port}/webhooks/twilio"
        deliveries = [(f"/webhooks/{d.provider}", d.headers, d.body) for day in config.iter_days()
                      for stream in (retell_deliveries(config, day), twilio_deliveries(config, day, twilio_url))
                      for d in stream]
        started = time.monotonic()
        statuses = asyncio.run(_fire(deliveries, port, 32))
        seconds["webhooks_sent"] = time.monotonic() - started
        for label in ("build_after_webhooks", "build_with_nothing_new"):
            started = time.monotonic()
            build = defs.resolve_job_def("build_models")
            assert build.execute_in_process(instance=instance, partition_key=today_partition_key()).success
            seconds[label] = time.monotonic() - started
        events, calls = _query(warehouse, "select count(*), count(distinct external_id) filter "
                                          "(where provider = 'retell') from marts.fct_usage_events")[0]
        sizes = dict(_query(warehouse, SIZES))
        largest = _query(warehouse, LARGEST)
        dead = _query(warehouse, DEAD)
        columns = [name for (name,) in _query(warehouse, COLUMNS)]
        widths = dict(zip(columns, _query(warehouse, "select " + ", ".join(
            f'avg(pg_column_size("{name}"))::int' for name in columns) + " from marts.fct_usage_events")[0],
            strict=True))
        connection = warehouse.connect()
        connection.autocommit = True  # VACUUM runs outside a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute("vacuum full")  # the same rows without dead tuples: the steady state autovacuum keeps
        finally:
            connection.close()
        compacted = dict(_query(warehouse, SIZES))
    finally:
        receiver.should_exit = True
        sandbox.shutdown()
        drop_database(server, database)
    def per_event(by_schema: dict[str, int]) -> dict[str, int]:
        # dlt's *_staging datasets hold the last load only: they do not grow with history
        raw = sum(size for schema, size in by_schema.items() if schema.startswith("raw_") and
                  not schema.endswith("_staging"))
        marts = by_schema.get("marts", 0)
        return {"raw": round(raw / events), "marts": round(marts / events),
                "raw_and_marts": round((raw + marts) / events)}

    result = {
        "config": {"clients": args.clients, "agents_per_client": args.agents, "days": args.days,
                   "calls_per_agent_per_day": args.calls},
        "calls": calls, "events": events, "events_per_call": round(events / calls, 2),
        "webhook_deliveries": len(deliveries), "webhook_statuses": dict(statuses),
        "bytes_by_schema": sizes,
        "bytes_per_event": per_event(sizes), "bytes_per_event_compacted": per_event(compacted),
        "bytes_by_schema_compacted": compacted,
        "fct_usage_events_average_column_bytes": widths, "most_dead_tuples": dead,
        "largest_relations": [{"relation": name, "bytes": total, "index_bytes": indexes}
                              for name, total, indexes in largest],
        "seconds": {label: round(value, 1) for label, value in seconds.items()},
        "load_average": [round(value, 2) for value in os.getloadavg()], "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
