"""`make bi-role`: create or update the read-only login BI tools use, on the configured warehouse.

    BILLING_USAGE_BI_PASSWORD=... python -m cli.bi_role [--drop]

The role (BILLING_USAGE_BI_ROLE, default billing_bi) gets SELECT on the marts and reporting schemas,
including the tables dbt recreates later, and nothing else. Run it with the same
BILLING_USAGE_DATABASE_URL the pipeline uses: default privileges follow the user that runs dbt.
Running it again sets the password again and restores exactly those privileges.
"""

from __future__ import annotations

import argparse
import os
import sys

import psycopg2

from billing_usage.bi_role import BI_ROLE_ENV, DEFAULT_BI_ROLE, BiRoleConfig, drop_bi_role, ensure_bi_role
from billing_usage.settings import SettingsError
from billing_usage.warehouse import resolve_warehouse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drop", action="store_true", help="remove the role and its privileges instead")
    args = parser.parse_args()
    try:
        config = None if args.drop else BiRoleConfig.from_env()
        warehouse = resolve_warehouse()
    except SettingsError as exc:
        print(f"Cannot start: {exc}", file=sys.stderr)
        return 2
    connection = warehouse.connect()
    try:
        if args.drop:
            role = os.environ.get(BI_ROLE_ENV) or DEFAULT_BI_ROLE
            print(f"Role {role} {'dropped' if drop_bi_role(connection, role) else 'did not exist'}.")
            return 0
        report = ensure_bi_role(connection, config)
    except SettingsError as exc:
        print(f"Refused: {exc}", file=sys.stderr)
        return 2
    except psycopg2.Error as exc:  # the statements carry no password, only its verifier; print the reason alone
        print(f"Failed: {(exc.pgerror or type(exc).__name__).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    print("\n".join(report.lines()))
    print(f"Connect BI tools with: postgresql://{report.role}:<password>@{warehouse.host}:{warehouse.port}/"
          f"{report.database}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
