"""`make retention [DRY_RUN=1]`: purge the detailed events of closed, reconciled cycles past retention,
as named by ops.retention_cycles at the last model build (`var('retention_months')` in dbt_project.yml).

    python -m cli.retention [--dry-run]
"""

from __future__ import annotations

import argparse
import sys

from billing_usage.retention import run_retention
from billing_usage.settings import SettingsError
from billing_usage.warehouse import resolve_warehouse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print what would be purged, change nothing")
    args = parser.parse_args()
    try:
        warehouse = resolve_warehouse()
    except SettingsError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    report = run_retention(warehouse, args.dry_run)
    print("\n".join(report.lines()))
    return 1 if report.refused else 0


if __name__ == "__main__":
    sys.exit(main())
