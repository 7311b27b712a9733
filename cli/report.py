"""`make report`: the usage report as static HTML, one page for the agency and one per client, read from
the marts of the configured warehouse (the embedded default unless BILLING_USAGE_DATABASE_URL is set).

    python -m cli.report [--out DIR] [--as-of 2026-03-16T00:00:00Z] [--days 30] [--client ID ...]

The pages go to DIR/<last day of the window>/ (DIR: --out, else BILLING_USAGE_REPORT_DIR, else
.local/reports); the paths are printed. Nothing in them loads anything from the network.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from billing_usage.settings import SettingsError, utc_now
from billing_usage.warehouse import resolve_warehouse
from usage_report import default_report_dir, write_reports
from usage_report.data import DEFAULT_WINDOW_DAYS, ReportError


def _instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {value!r}") from exc
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number of days: {value!r}") from exc
    if not 1 <= days <= 366:
        raise argparse.ArgumentTypeError(f"--days must be between 1 and 366, got {days}")
    return days


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="report folder (default: BILLING_USAGE_REPORT_DIR or "
                                                 ".local/reports)")
    parser.add_argument("--as-of", type=_instant, help="the report's instant, UTC unless a zone is given "
                                                       "(default: now, or BILLING_USAGE_NOW)")
    parser.add_argument("--days", type=_days, default=DEFAULT_WINDOW_DAYS, help="UTC days in the window (30)")
    parser.add_argument("--client", action="append", dest="clients", metavar="ID",
                        help="write only this client's page (repeatable); default: every client")
    args = parser.parse_args(argv)
    try:
        warehouse = resolve_warehouse()
        files = write_reports(warehouse, args.out or default_report_dir(), args.as_of or utc_now(), args.days,
                              args.clients)
    except (SettingsError, ReportError) as exc:
        print(f"Cannot write the report: {exc}", file=sys.stderr)
        return 2
    print(f"Usage report for UTC days {files.window_start} to {files.window_end} (as of {files.as_of:%Y-%m-%d %H:%M} "
          f"UTC)")
    print(f"agency  {files.agency}")
    for client_id, path in sorted(files.clients.items()):
        print(f"client  {path}  ({client_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
