"""Indexes dlt does not create on PostgreSQL: the object keys and the load id of the raw tables a
collector writes, and the registry's `indexes` (the Usage Records' day, which coverage reads a window of).
Incremental models find changed rows by _dlt_load_id and recompute objects by key; both need an index
once raw tables hold millions of rows."""

from __future__ import annotations

from billing_usage.registry import RawTable, owned_by
from billing_usage.warehouse import Warehouse


def wanted_indexes(table: RawTable) -> tuple[tuple[str, ...], ...]:
    """The column lists a raw table is indexed on: its key and load id when its objects are found by load,
    and the registry's `indexes`."""
    by_load = (table.key, ("_dlt_load_id",)) if table.role == "objects" and table.progress == "load" else ()
    return (*by_load, *table.indexes)


def ensure_raw_indexes(warehouse: Warehouse, owner: str) -> list[str]:
    """Create the missing indexes of `owner`'s raw tables that exist; returns the names created. A table
    that gets an index is analyzed too: on a first load it has no statistics yet, and the planner would
    guess a third of it for `_dlt_load_id > x` and scan it whole."""
    wanted = [(table, columns) for table in owned_by(owner) for columns in wanted_indexes(table)]
    created, analyze = [], set()
    with warehouse.connect() as connection, connection.cursor() as cursor:
        for table, columns in wanted:
            cursor.execute("select to_regclass(%s)", (table.relation,))
            if cursor.fetchone()[0] is None:
                continue
            name = f"{table.name}_{'_'.join(column.strip('_') for column in columns)}_idx"[:63]
            cursor.execute("select to_regclass(%s)", (f"{table.schema}.{name}",))
            if cursor.fetchone()[0] is None:
                quoted = ", ".join(f'"{column}"' for column in columns)
                cursor.execute(f'create index "{name}" on {table.schema}."{table.name}" ({quoted})')
                created.append(name)
                analyze.add(f'{table.schema}."{table.name}"')
        for relation in sorted(analyze):
            cursor.execute(f"analyze {relation}")
    return created
