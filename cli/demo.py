"""`make demo`: materialize every asset once against the sandbox, then compare with what it generated."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from decimal import Decimal

from billing_usage.registry import raw_tables
from billing_usage.settings import SettingsError
from billing_usage.warehouse import Warehouse, resolve_warehouse
from cli.local_env import ensure_dagster_home, ensure_provider_config
from cli.run_log import new_log_path, output_to
from cli.runs import PipelineRun, fail_abandoned_runs, run_usage_pipeline
from sandbox.config import SandboxConfig
from sandbox.totals import expected_totals

SUMMARY_SQL = """
    select provider, client_id, count(distinct object_type || ':' || external_id), sum(cost_usd)
    from marts.fct_usage_events
    group by provider, client_id
"""


def run_pipeline() -> PipelineRun:
    """Both jobs on today's partition; the terminal gets progress lines, the log file everything."""
    from dagster import DagsterInstance

    log_path = new_log_path("demo")
    print(f"Full log: {log_path}", flush=True)
    with output_to(log_path) as say, DagsterInstance.get() as instance:
        for run_id in fail_abandoned_runs(instance):
            say(f"Marked run {run_id} failed: its process was gone.")
        return run_usage_pipeline(instance, say=say)


def print_problems(run: PipelineRun) -> None:
    lines = run.summary_lines()
    print("\nRun summary: " + ("every step succeeded and every check passed." if not lines else ""))
    for line in lines:
        print(f"  {line}")


def warehouse_totals(warehouse: Warehouse) -> tuple[dict[str, int], dict[tuple[str, str], tuple[int, Decimal]]]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        raw_counts = {}
        for table in (table.relation for table in raw_tables() if table.role != "quarantine"):
            cursor.execute("select to_regclass(%s) is not null", (table,))
            if cursor.fetchone()[0]:
                cursor.execute(f"select count(*) from {table}")
                raw_counts[table] = cursor.fetchone()[0]
            else:
                raw_counts[table] = "not loaded yet"
        cursor.execute(SUMMARY_SQL)
        totals = {(provider, client): (objects, cost) for provider, client, objects, cost in cursor.fetchall()}
    return raw_counts, totals


def _usd(amount: Decimal) -> str:
    return f"{amount.normalize():f}" if amount else "0"


def print_report(config: SandboxConfig, raw_counts: dict, collected: dict) -> bool:
    expected = expected_totals(config)
    print(f"\nSandbox: {config.clients} clients x {config.agents_per_client} agents, {config.days} days "
          f"({config.start_date} .. {config.end_date}), seed {config.seed}\n")
    print("Collected raw rows")
    for table, count in raw_counts.items():
        print(f"  {table:<36} {count:>8}")
    print("\nCanonical usage (marts.fct_usage_events) against what the sandbox generated")
    print(f"  {'provider':<11} {'client':<12} {'objects':>8} {'cost USD':>14}   {'generated':>9} {'cost USD':>14}")
    all_match = True
    per_provider: dict[str, list] = defaultdict(lambda: [0, Decimal(0), 0, Decimal(0)])
    for key in sorted(set(expected) | set(collected)):
        objects, cost = collected.get(key, (0, Decimal(0)))
        want = expected.get(key)
        want_objects, want_cost = (want.objects, want.cost_usd) if want else (0, Decimal(0))
        match = objects == want_objects and cost == want_cost
        all_match &= match
        totals = per_provider[key[0]]
        totals[0] += objects
        totals[1] += cost
        totals[2] += want_objects
        totals[3] += want_cost
        print(f"  {key[0]:<11} {key[1]:<12} {objects:>8} {_usd(cost):>14}   {want_objects:>9} {_usd(want_cost):>14}  "
              f"{'ok' if match else 'MISMATCH'}")
    print("\nPer provider")
    for provider, (objects, cost, want_objects, want_cost) in sorted(per_provider.items()):
        print(f"  {provider:<11} {objects:>8} objects {_usd(cost):>14} USD   "
              f"generated {want_objects:>8} {_usd(want_cost):>14}")
    print("\nTotals equal what the sandbox generated." if all_match else "\nTOTALS DIFFER from the sandbox.")
    return all_match


def main() -> int:
    try:
        ensure_dagster_home()
        config = ensure_provider_config()
        warehouse = resolve_warehouse()
    except SettingsError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    print(f"Warehouse: {warehouse.display_url}")
    run = run_pipeline()
    raw_counts, collected = warehouse_totals(warehouse)
    matched = print_report(config, raw_counts, collected) if config else True
    print_problems(run)
    port = os.environ.get("DAGSTER_PORT", "3000")
    print(f"\nOpen the Dagster UI on this setup: make dev  ->  http://127.0.0.1:{port}")
    return 0 if matched and not run.failed_steps() and not run.skipped() else 1


if __name__ == "__main__":
    sys.exit(main())
