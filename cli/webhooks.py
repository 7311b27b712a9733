"""`make webhooks`: the receiver on the embedded default, signing with the sandbox's keys."""

from __future__ import annotations

import sys

from billing_usage.settings import SettingsError, get_settings
from cli.local_env import ensure_provider_config
from webhooks.__main__ import serve


def main() -> int:
    try:
        ensure_provider_config()
        settings = get_settings()
    except SettingsError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
