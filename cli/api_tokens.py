"""Reporting API tokens, from the command line (against the same warehouse as `make demo`):

    python -m cli.api_tokens create --agency [--label NAME]            # sees every client
    python -m cli.api_tokens create --client CLIENT_ID [--label NAME]  # sees only that client
    python -m cli.api_tokens revoke TOKEN_ID
    python -m cli.api_tokens list

`create` prints the token once; only its SHA-256 hash is stored (ops.api_tokens). `list` shows ids,
scopes and dates, never a token or a hash.
"""

from __future__ import annotations

import argparse
import sys

from billing_usage.settings import SettingsError
from billing_usage.tables import ensure_tables
from billing_usage.warehouse import resolve_warehouse
from reporting_api.tokens import create_token, list_tokens, revoke_token


def _client_exists(connection, client_id: str) -> bool | None:
    """None while dim_clients has not been built."""
    with connection.cursor() as cursor:
        cursor.execute("select to_regclass('marts.dim_clients') is not null")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("select exists (select 1 from marts.dim_clients where client_id = %s)", (client_id,))
        return cursor.fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.api_tokens", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a token and print it once")
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--agency", action="store_true", help="a token that sees every client")
    scope.add_argument("--client", metavar="CLIENT_ID", help="a token that sees only this client")
    create.add_argument("--label", help="what the token is for (shown by list)")
    revoke = commands.add_parser("revoke", help="revoke a token: refused from the next request on")
    revoke.add_argument("token_id", help="the id shown at creation and by list (not the token)")
    commands.add_parser("list", help="token ids, scopes and dates")
    arguments = parser.parse_args(argv)
    try:
        warehouse = resolve_warehouse()
    except SettingsError as exc:
        print(f"Cannot reach the warehouse: {exc}", file=sys.stderr)
        return 2
    connection = warehouse.connect()
    try:
        ensure_tables(connection)
        if arguments.command == "create":
            if arguments.client and _client_exists(connection, arguments.client) is False:
                print(f"No client {arguments.client!r} in marts.dim_clients.", file=sys.stderr)
                return 2
            token_id, token = create_token(connection, arguments.client, arguments.label)
            print(f"token id: {token_id} ({'agency' if arguments.agency else 'client ' + arguments.client})")
            print(f"token:    {token}")
            print("Shown once: only its hash is stored. Send it as 'Authorization: Bearer <token>'.")
        elif arguments.command == "revoke":
            if not revoke_token(connection, arguments.token_id):
                print(f"No live token {arguments.token_id!r}.", file=sys.stderr)
                return 1
            print(f"revoked {arguments.token_id}")
        else:
            for token_id, client_id, label, created_at, revoked_at in list_tokens(connection):
                state = f"revoked {revoked_at:%Y-%m-%d %H:%M}" if revoked_at else "live"
                print(f"{token_id}  {client_id or '(agency)':<20} {state:<24} created {created_at:%Y-%m-%d %H:%M}"
                      f"  {label or ''}")
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
