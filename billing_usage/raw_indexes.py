"""Indexes dlt does not create on PostgreSQL: the merge keys and the load id of the raw tables.

Incremental models find changed rows by _dlt_load_id and recompute objects by key; both need an
index once raw tables hold millions of rows.
"""

from __future__ import annotations

from billing_usage.warehouse import Warehouse

RAW_INDEXES = {
    "retell": [("calls", "call_id"), ("calls", "_dlt_load_id")],
    "twilio": [("calls", "sid"), ("calls", "_dlt_load_id"), ("messages", "sid"), ("messages", "_dlt_load_id")],
    "openrouter": [("activity", "_dlt_load_id")],
}


def ensure_raw_indexes(warehouse: Warehouse, source: str) -> list[str]:
    """Create the missing indexes of `source`'s raw tables that exist; returns the names created."""
    created = []
    with warehouse.connect() as connection, connection.cursor() as cursor:
        for table, column in RAW_INDEXES.get(source, []):
            cursor.execute("select to_regclass(%s)", (f"raw_{source}.{table}",))
            if cursor.fetchone()[0] is None:
                continue
            name = f"{table}_{column.strip('_')}_idx"
            cursor.execute("select to_regclass(%s)", (f"raw_{source}.{name}",))
            if cursor.fetchone()[0] is None:
                cursor.execute(f'create index "{name}" on raw_{source}."{table}" ("{column}")')
                created.append(name)
    return created
