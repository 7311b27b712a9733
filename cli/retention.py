"""`make retention [DRY_RUN=1]`: purge the detailed events of closed, reconciled cycles past retention.

    python -m cli.retention [--dry-run] [--months 13]
"""

from __future__ import annotations

import argparse
import sys

from billing_usage.retention import DEFAULT_MONTHS, default_cutoff, run_retention
from billing_usage.warehouse import resolve_warehouse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print what would be purged, change nothing")
    parser.add_argument("--months", type=int, default=DEFAULT_MONTHS)
    args = parser.parse_args()
    report = run_retention(resolve_warehouse(), default_cutoff(args.months), args.dry_run)
    print("\n".join(report.lines()))
    return 1 if report.refused else 0


if __name__ == "__main__":
    sys.exit(main())
