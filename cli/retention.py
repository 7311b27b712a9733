"""`make retention [DRY_RUN=1]`: the retention job, in this process, as its schedule runs it: the retention
models decide which closed, reconciled cycles past `var('retention_months')` may go, then their detailed
events are purged (or only listed, with --dry-run).

    python -m cli.retention [--dry-run]
"""

from __future__ import annotations

import argparse
import sys

from dagster import DagsterInstance

from billing_usage.settings import SettingsError
from cli.local_env import ensure_dagster_home
from cli.run_log import new_log_path, output_to
from cli.runs import fail_abandoned_runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print what would be purged, change nothing")
    args = parser.parse_args()
    try:
        ensure_dagster_home()
    except SettingsError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    log_path = new_log_path("retention")
    print(f"Full log: {log_path}", flush=True)
    with output_to(log_path), DagsterInstance.get() as instance:
        from dagster_project.definitions import defs  # its import warnings go to the log

        fail_abandoned_runs(instance)
        result = defs.resolve_job_def("retention").execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"ops": {"usage_retention": {"config": {"dry_run": args.dry_run}}}})
    reports = [event.materialization.metadata["report"].value for event in result.get_asset_materialization_events()
               if "report" in event.materialization.metadata]
    if not result.success or not reports:
        failures = [event.step_key for event in result.get_step_failure_events()]
        print(f"Retention did not run to the end (failed: {', '.join(failures) or 'unknown'}); see the log.")
        return 2
    print(reports[0])
    reconciled = all(check.passed for check in result.get_asset_check_evaluations()
                     if check.check_name == "every_expired_cycle_reconciles")
    return 0 if reconciled else 1


if __name__ == "__main__":
    sys.exit(main())
