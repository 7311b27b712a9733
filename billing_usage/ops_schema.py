"""The ops schema's tables written from Python: collector state and runs, and the PII salt.

dbt reads the salt from ops.pii_salt, so it never appears in compiled SQL, dbt logs or run arguments.
"""

from __future__ import annotations

DDL = """
create schema if not exists ops;
create table if not exists ops.collector_state (
    source text not null,
    resource text not null,
    account text not null,
    cursor_position text,
    last_success_at timestamptz,
    last_attempt_at timestamptz not null,
    rows_last_run bigint,
    requests_last_run bigint,
    retries_last_run bigint,
    warning text,
    last_error text,
    last_error_at timestamptz,
    consecutive_failures integer not null default 0,
    primary key (source, resource, account)
);
create table if not exists ops.collector_runs (
    run_id text not null,
    source text not null,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    succeeded boolean not null,
    rows_loaded bigint,
    error text
);
create table if not exists ops.pii_salt (
    only_row boolean primary key default true check (only_row),
    salt text not null
);
"""


def ensure_ops_tables(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute(DDL)
    connection.commit()


def store_pii_salt(connection, salt: str) -> None:
    """The salt phone numbers are hashed with; changing it changes every hash (rebuild with --full-refresh)."""
    ensure_ops_tables(connection)
    with connection.cursor() as cursor:
        cursor.execute("insert into ops.pii_salt (salt) values (%s) on conflict (only_row) do update "
                       "set salt = excluded.salt where ops.pii_salt.salt is distinct from excluded.salt", (salt,))
    connection.commit()
