"""Collector cost: a first run over the whole window, then a second run with nothing new.

    python -m benchmarks.collection [--clients 20] [--days 14] [--calls 20]

Runs the three dlt sources against the sandbox (in-process server) into a fresh database on the
embedded PostgreSQL (or BILLING_USAGE_DATABASE_URL) and prints seconds, rows and requests per run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import dlt

from billing_usage.warehouse import create_database, drop_database, resolve_warehouse
from cli.local_env import sandbox_source_config
from dlt_sources.openrouter import openrouter_source
from dlt_sources.retell import retell_source
from dlt_sources.twilio import twilio_source
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread

SOURCES = {"retell": retell_source, "twilio": twilio_source, "openrouter": openrouter_source}


def _run(pipeline: dlt.Pipeline, source_name: str) -> dict:
    started = time.perf_counter()
    pipeline.run(SOURCES[source_name]())
    seconds = time.perf_counter() - started
    accounts = [state for resource in pipeline.state["sources"][source_name]["resources"].values()
                for state in resource.get("accounts", {}).values()]
    return {"seconds": round(seconds, 2), "rows": sum(a["rows_last_run"] for a in accounts),
            "requests": sum(a["requests_last_run"] for a in accounts)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--calls", type=int, default=20, help="calls per agent per day")
    args = parser.parse_args()
    config = SandboxConfig(clients=args.clients, agents_per_client=5, days=args.days,
                           calls_per_agent_per_day=args.calls)
    sandbox = start_in_thread(config)
    server = resolve_warehouse()
    database = f"bench_collection_{os.getpid()}"
    warehouse = create_database(server, database)
    os.environ.update(sandbox_source_config(sandbox.base_url, config, "unused"))
    results = {}
    try:
        with tempfile.TemporaryDirectory() as pipelines_dir:
            for name in SOURCES:
                pipeline = dlt.pipeline(pipeline_name=name, dataset_name=f"raw_{name}", pipelines_dir=pipelines_dir,
                                        destination=dlt.destinations.postgres(credentials=warehouse.url))
                results[name] = {"first_run": _run(pipeline, name), "second_run": _run(pipeline, name)}
    finally:
        sandbox.shutdown()
        drop_database(server, database)
    print(json.dumps({"scale": config.to_json(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
