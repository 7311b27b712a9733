"""SQL of the clients, cycles and freshness, each scoped to what the token may see.

Scoping is part of the query itself (`client_id = scope or scope is null`), so a client that exists but
belongs to someone else takes exactly the path of a client that does not exist.
"""

from __future__ import annotations

from datetime import datetime

from reporting_api.tokens import Principal

UNATTRIBUTED = "unattributed"  # events no client could be found for: the agency sees them in /v1/usage

CLIENT_COLUMNS = ("client_id", "client_name", "billing_timezone", "billing_anchor_day", "currency")


def data_refreshed_at(cursor) -> datetime | None:
    """How fresh the data is: each provider's oldest last successful collection among its accounts
    (ops.collector_state), the oldest of the providers, as reporting.rpt_cycle_statements defines it per
    provider. A warehouse never collected into (a generated one) falls back to its latest build's as_of."""
    cursor.execute("""
        select coalesce(
            (select min(oldest) from (select min(last_success_at) as oldest from ops.collector_state
                                      group by source) as providers),
            (select max(computed_at) from marts.fct_cycle_usage))""")
    return cursor.fetchone()[0]


def data_version(cursor) -> str:
    """Changes whenever a row of the marts (or the reporting schema) is inserted, updated or deleted, or a
    table is rebuilt: PostgreSQL's per-table counters. Weak ETags of streamed CSV derive from it."""
    cursor.execute("""
        select coalesce(md5(string_agg(concat_ws(':', relid, n_tup_ins, n_tup_upd, n_tup_del), ',' order by relid)), '')
        from pg_stat_user_tables where schemaname in ('marts', 'reporting')""")
    return cursor.fetchone()[0]


def client_visible(cursor, principal: Principal, client_id: str) -> bool:
    cursor.execute("""
        select exists (
            select 1 from marts.dim_clients
            where client_id = %(client_id)s and is_current and (%(scope)s::text is null or client_id = %(scope)s)
        ) or (%(client_id)s = %(unattributed)s and %(scope)s::text is null)""",
                   {"client_id": client_id, "scope": principal.client_id, "unattributed": UNATTRIBUTED})
    return cursor.fetchone()[0]


def clients(cursor, principal: Principal, after: str | None, limit: int) -> list[tuple]:
    cursor.execute(f"""
        select {', '.join(CLIENT_COLUMNS)} from marts.dim_clients
        where is_current and (%(scope)s::text is null or client_id = %(scope)s)
          and (%(after)s::text is null or client_id > %(after)s)
        order by client_id
        limit %(limit)s""", {"scope": principal.client_id, "after": after, "limit": limit})
    return cursor.fetchall()


def client(cursor, principal: Principal, client_id: str) -> dict | None:
    cursor.execute(f"""
        select {', '.join(CLIENT_COLUMNS)} from marts.dim_clients
        where client_id = %(client_id)s and is_current and (%(scope)s::text is null or client_id = %(scope)s)""",
                   {"client_id": client_id, "scope": principal.client_id})
    row = cursor.fetchone()
    return dict(zip(CLIENT_COLUMNS, row, strict=True)) if row else None
