"""The committed OpenAPI document (reporting_api/openapi.json) and how it is regenerated:

    .venv/bin/python -m reporting_api.openapi        # rewrite reporting_api/openapi.json from the code
    .venv/bin/python -m reporting_api.openapi --check  # exit 1 if the served schema drifted from the file

tests/test_api.py fails while the two differ.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DOCUMENT = Path(__file__).with_name("openapi.json")


def served_schema() -> dict:
    """The document the app serves at /openapi.json (no database needed to build it)."""
    from reporting_api.app import create_app

    return create_app(lambda **_: None).openapi()


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render(served_schema())
    if argv[1:] == ["--check"]:
        if not DOCUMENT.exists() or DOCUMENT.read_text() != text:
            print(f"{DOCUMENT} differs from the served schema: run python -m reporting_api.openapi", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
