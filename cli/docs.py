"""`make docs`: the dbt documentation (every model, column, contract, test and the lineage graph), generated
from the configured warehouse (the embedded default unless BILLING_USAGE_DATABASE_URL is set), offline.

    python -m cli.docs [--serve] [--port 8080]

Writes dbt_project/target/docs/. static_index.html there is one self-contained file: open it in a browser
straight from disk, no server and no network needed. --serve (make docs SERVE=1) also runs
`dbt docs serve` on 127.0.0.1. dbt's anonymous usage tracking is switched off, so the page calls nobody.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from billing_usage.settings import PROJECT_ROOT, SettingsError
from billing_usage.warehouse import resolve_warehouse

DBT = os.path.join(os.path.dirname(sys.executable), "dbt")
PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DOCS_DIR = PROJECT_DIR / "target" / "docs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help="serve the docs on 127.0.0.1 after generating them")
    parser.add_argument("--port", type=int, default=8080, help="port for --serve (8080)")
    parser.add_argument("--out", type=Path, default=DOCS_DIR, help="where to write them (dbt_project/target/docs)")
    args = parser.parse_args(argv)
    try:
        warehouse = resolve_warehouse()
    except SettingsError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    # column types in the docs come from the warehouse's catalog; a warehouse not built yet gives an empty one
    env = {**os.environ, **warehouse.dbt_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    project = ["--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR), "--target-path", str(args.out)]
    generated = subprocess.run([DBT, "docs", "generate", "--static", "--quiet", *project], env=env)
    if generated.returncode != 0:
        print("dbt docs generate failed (its output is above)", file=sys.stderr)
        return generated.returncode
    index = args.out / "static_index.html"
    print(f"dbt docs written to {args.out}/.\n"
          f"Open {index} in a browser ({index.resolve().as_uri()}): one self-contained page, "
          "no server, no network.\nOr serve them: make docs SERVE=1 (dbt docs serve on "
          f"http://127.0.0.1:{args.port}).")
    if not args.serve:
        return 0
    return subprocess.run([DBT, "docs", "serve", "--host", "127.0.0.1", "--port", str(args.port), "--no-browser",
                           *project], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
