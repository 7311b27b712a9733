"""`make demo`: materialize every asset once against the sandbox, then compare with what it generated
(cli/demo_summary.py)."""

from __future__ import annotations

import os
import sys

from billing_usage.registry import raw_tables
from billing_usage.settings import SettingsError
from billing_usage.warehouse import Warehouse, resolve_warehouse
from cli.demo_summary import collect_figures, print_summary
from cli.local_env import ensure_dagster_home, ensure_provider_config
from cli.run_log import new_log_path, output_to
from cli.runs import PipelineRun, fail_abandoned_runs, run_usage_pipeline


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


def raw_row_counts(warehouse: Warehouse) -> dict[str, int | str]:
    counts: dict[str, int | str] = {}
    with warehouse.connect() as connection, connection.cursor() as cursor:
        for table in (table.relation for table in raw_tables() if table.role != "quarantine"):
            cursor.execute("select to_regclass(%s) is not null", (table,))
            if cursor.fetchone()[0]:
                cursor.execute(f"select count(*) from {table}")
                counts[table] = cursor.fetchone()[0]
            else:
                counts[table] = "not loaded yet"
    return counts


def print_raw_counts(counts: dict[str, int | str]) -> None:
    print("\nCollected raw rows")
    for table, count in counts.items():
        print(f"  {table:<36} {count:>8}")


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
    print_raw_counts(raw_row_counts(warehouse))
    matched = print_summary(config, *collect_figures(warehouse, config)) if config else True
    print_problems(run)
    port = os.environ.get("DAGSTER_PORT", "3000")
    print(f"\nOpen the Dagster UI on this setup: make dev  ->  http://127.0.0.1:{port}")
    return 0 if matched and not run.failed_steps() and not run.skipped() else 1


if __name__ == "__main__":
    sys.exit(main())
