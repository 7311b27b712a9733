"""`make export CYCLE=2026-03` (or CYCLE=<cycle id>): each client's statement of that cycle as CSV and JSON,
and the cycle's FOCUS 1.2 cost-and-usage file, from the configured warehouse (the embedded default unless
BILLING_USAGE_DATABASE_URL is set).

    python -m cli.export --cycle YYYY-MM|CYCLE_ID [--out DIR] [--no-focus]

YYYY-MM selects every client's cycle that starts in that month (in the client's time zone). Files go to
DIR (--out, else BILLING_USAGE_EXPORTS_DIR, else .local/exports); see docs/reporting.md. A statement
with a coverage ERROR is not written: the command names it, leaves a BLOCKED note and exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from billing_usage.exports import ExportError, default_exports_dir, export_cycles, read_cycles, selector
from billing_usage.settings import SettingsError, get_settings, utc_now
from billing_usage.warehouse import resolve_warehouse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycle", required=True, metavar="YYYY-MM|CYCLE_ID",
                        help="a month (every client's cycle starting in it) or one cycle id")
    parser.add_argument("--out", type=Path, help="export folder (default: BILLING_USAGE_EXPORTS_DIR or .local/exports)")
    parser.add_argument("--no-focus", action="store_true", help="write the statements only")
    args = parser.parse_args(argv)
    now = utc_now()
    try:
        select = selector(args.cycle, now)
        settings = get_settings()
        warehouse = resolve_warehouse(settings)
        cycles = read_cycles(warehouse, select, f"cli.export pid {os.getpid()}", settings.lock_wait_seconds)
        report = export_cycles(cycles, args.out or default_exports_dir(), now, focus_files=not args.no_focus)
    except (ExportError, SettingsError) as exc:
        print(f"Export failed: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 1 if report.blocked else 0


if __name__ == "__main__":
    sys.exit(main())
