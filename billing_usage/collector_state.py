"""ops.collector_state: per source, resource and account, where collection stands.

One row per (source, resource, account): last success, cursor, rows/requests/retries of the last
run, the last error and how many runs in a row failed. ops.collector_runs keeps every run.
Freshness checks and dashboards read these tables.
"""

from __future__ import annotations

from datetime import datetime

import dlt
from psycopg2.extras import execute_values

from billing_usage.tables import ensure_tables
from billing_usage.warehouse import Warehouse


def accounts_in_state(pipeline: dlt.Pipeline, source: str) -> list[tuple[str, str, dict]]:
    """(resource, account, state) from the pipeline's committed state."""
    resources = pipeline.state.get("sources", {}).get(source, {}).get("resources", {})
    return [(resource, account, state)
            for resource, resource_state in resources.items()
            for account, state in resource_state.get("accounts", {}).items()]


def record_success(warehouse: Warehouse, source: str, pipeline: dlt.Pipeline, run_id: str,
                   started_at: datetime, finished_at: datetime) -> int:
    """Upsert the state of every account this run collected (its load packages wrote their state);
    clear failure placeholders of those accounts; returns the rows it loaded."""
    trace = pipeline.last_trace
    load_ids = set(trace.last_extract_info.loads_ids) if trace and trace.last_extract_info else set()
    rows = [
        (source, resource, account, str(state.get("cursor")), state["last_success_at"], finished_at,
         state.get("rows_last_run"), state.get("requests_last_run"), state.get("retries_last_run"),
         state.get("warning"))
        for resource, account, state in accounts_in_state(pipeline, source)
        if state.get("load_id") in load_ids
    ]
    loaded = sum(row[6] or 0 for row in rows)
    with warehouse.connect() as connection:
        ensure_tables(connection)
        with connection.cursor() as cursor:
            cursor.execute("""
                delete from ops.collector_state
                where source = %(source)s and resource = '*'
                  and (account = '*' or account = any(%(accounts)s::text[])
                       or exists (select 1 from unnest(%(accounts)s::text[]) as collected
                                  where collected like replace(account, '%%', '') || '/%%'))
            """, {"source": source, "accounts": sorted({row[2] for row in rows})})
            if rows:
                execute_values(cursor, """
                    insert into ops.collector_state as s (source, resource, account, cursor_position,
                        last_success_at, last_attempt_at, rows_last_run, requests_last_run, retries_last_run,
                        warning)
                    values %s
                    on conflict (source, resource, account) do update set
                        cursor_position = excluded.cursor_position, last_success_at = excluded.last_success_at,
                        last_attempt_at = excluded.last_attempt_at, rows_last_run = excluded.rows_last_run,
                        requests_last_run = excluded.requests_last_run,
                        retries_last_run = excluded.retries_last_run, warning = excluded.warning,
                        consecutive_failures = 0
                """, rows)
            cursor.execute("insert into ops.collector_runs values (%s, %s, %s, %s, true, %s, null)",
                           (run_id, source, started_at, finished_at, loaded))
    return loaded


def record_failure(warehouse: Warehouse, source: str, account: str | None, error: str, run_id: str,
                   started_at: datetime, finished_at: datetime) -> None:
    """Mark the failing account (its rows, or those of its keys `<account>/<key>`; every account of the
    source when unknown) as failed, keeping its cursor. An account never collected yet gets a
    placeholder row (resource '*') that its next success removes."""
    with warehouse.connect() as connection:
        ensure_tables(connection)
        with connection.cursor() as cursor:
            cursor.execute("""
                update ops.collector_state set last_attempt_at = %(at)s, last_error = %(error)s,
                    last_error_at = %(at)s, consecutive_failures = consecutive_failures + 1
                where source = %(source)s and (%(account)s::text is null or account = %(account)s
                                               or account like replace(%(account)s, '%%', '') || '/%%')
            """, {"at": finished_at, "error": error, "source": source, "account": account})
            if cursor.rowcount == 0:
                cursor.execute("""
                    insert into ops.collector_state (source, resource, account, last_attempt_at, last_error,
                        last_error_at, consecutive_failures)
                    values (%s, '*', %s, %s, %s, %s, 1)
                    on conflict (source, resource, account) do update set
                        last_attempt_at = excluded.last_attempt_at, last_error = excluded.last_error,
                        last_error_at = excluded.last_error_at,
                        consecutive_failures = ops.collector_state.consecutive_failures + 1
                """, (source, account or "*", finished_at, error, finished_at))
            cursor.execute("insert into ops.collector_runs values (%s, %s, %s, %s, false, null, %s)",
                           (run_id, source, started_at, finished_at, error))
