"""`make backfill START=YYYY-MM-DD END=YYYY-MM-DD`: collect the UTC days START..END (inclusive) again
and recompute what they touch, in one run each, exactly as a backfill from the Dagster UI does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date

from dagster import DagsterInstance

from billing_usage.settings import SettingsError
from cli.local_env import ensure_dagster_home, ensure_provider_config
from cli.run_log import new_log_path, output_to
from cli.runs import PipelineRun, fail_abandoned_runs, run_usage_pipeline


def backfill(start: date, end: date, instance: DagsterInstance | None = None,
             say: Callable[[str], None] = lambda line: None) -> PipelineRun:
    """Collection and the model build over the partition range [start, end]."""
    if end < start:
        raise ValueError(f"backfill end {end} is before its start {start}")
    return run_usage_pipeline(instance or DagsterInstance.get(), partition_range=(start.isoformat(), end.isoformat()),
                              say=say)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", required=True, type=date.fromisoformat)
    parser.add_argument("--end", required=True, type=date.fromisoformat)
    args = parser.parse_args()
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    try:
        ensure_dagster_home()
        ensure_provider_config()
    except SettingsError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    log_path = new_log_path("backfill")
    print(f"Full log: {log_path}", flush=True)
    with output_to(log_path) as say, DagsterInstance.get() as instance:
        fail_abandoned_runs(instance)
        run = backfill(args.start, args.end, instance, say)
    lines = run.summary_lines()
    print(f"Backfill {args.start} .. {args.end}: " + ("done, every step succeeded and every check passed."
                                                      if not lines else "finished with problems:"))
    for line in lines:
        print(f"  {line}")
    return 1 if run.failed_steps() or run.skipped() else 0


if __name__ == "__main__":
    sys.exit(main())
