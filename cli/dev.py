"""`make dev`: the Dagster UI on the embedded default (warehouse, sandbox, local DAGSTER_HOME)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from billing_usage.settings import DATABASE_URL_ENV, PROJECT_ROOT, SettingsError
from billing_usage.warehouse import resolve_warehouse
from cli.local_env import ensure_dagster_home, ensure_provider_config


def main() -> int:
    try:
        ensure_dagster_home()
        ensure_provider_config()
        warehouse = resolve_warehouse()
    except SettingsError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    from dagster import DagsterInstance

    from cli.runs import fail_abandoned_runs

    with DagsterInstance.get() as instance:
        for run_id in fail_abandoned_runs(instance):
            print(f"Marked run {run_id} failed: its process was gone.")
    # Child processes (code server, runs) reuse this warehouse rather than resolving it again.
    os.environ.setdefault(DATABASE_URL_ENV, warehouse.url)
    host, port = os.environ.get("DAGSTER_HOST", "127.0.0.1"), os.environ.get("DAGSTER_PORT", "3000")
    print(f"Warehouse {warehouse.display_url}; Dagster UI on http://{host}:{port}", flush=True)
    bin_dir = Path(sys.executable).parent
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"  # dbt, for prepare_if_dev
    dagster = str(bin_dir / "dagster")
    os.chdir(PROJECT_ROOT)
    os.execv(dagster, [dagster, "dev", "-w", "workspace.yaml", "-h", host, "-p", port])


if __name__ == "__main__":
    sys.exit(main())
