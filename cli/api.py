"""`make api`: the reporting API on 127.0.0.1:8001 (BILLING_USAGE_API_HOST / _PORT), against the same
warehouse as `make demo` (the embedded PostgreSQL unless BILLING_USAGE_DATABASE_URL names one)."""

from __future__ import annotations

import sys

from billing_usage.settings import SettingsError, get_settings
from reporting_api.__main__ import serve


def main() -> int:
    try:
        settings = get_settings()
        serve(settings)
    except SettingsError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
