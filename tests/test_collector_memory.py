"""dlt_sources.destination and dlt_sources.memory: loading in small INSERT statements lands exactly what dlt's default
statements land, and the allocator settings apply on this platform."""

from __future__ import annotations

import dlt
import pyarrow as pa
import pytest

from dlt_sources.destination import MAX_STATEMENT_BYTES, warehouse_destination
from dlt_sources.memory import arrow_on_system_allocator, limit_malloc_arenas
from dlt_sources.retell import retell_source
from dlt_sources.twilio import twilio_source
from tests.conftest import SMALL

pytestmark = pytest.mark.integration
TINY_STATEMENTS = 8 * 1024  # the sandbox's Usage Records then take dozens of statements
INSERTED_TABLES = {"twilio": "usage_records"}  # listed records load as CSV (tests/test_columnar.py)
DLT_COLUMNS = ("_dlt_load_id", "_dlt_id")


def _sources(server) -> dict:
    return {
        "retell": retell_source(workspaces=[{"name": "ws0", "api_key": SMALL.retell_api_key(0)}],
                                base_url=f"{server.base_url}/retell"),
        "twilio": twilio_source(accounts=[{"account_sid": SMALL.twilio_account_sid,
                                           "auth_token": SMALL.twilio_auth_token}],
                                base_url=f"{server.base_url}/twilio"),
    }


def _landed(warehouse, name: str) -> dict[str, list[tuple]]:
    """Every raw table of the pipeline, rows sorted, dlt's per-load columns left out."""
    tables = {}
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select table_name from information_schema.tables where table_schema = %s "
                       "and table_name not like '\\_dlt%%'", (f"raw_{name}",))
        for (table,) in cursor.fetchall():
            cursor.execute("select column_name from information_schema.columns where table_schema = %s "
                           "and table_name = %s order by column_name", (f"raw_{name}", table))
            columns = [column for (column,) in cursor.fetchall() if column not in DLT_COLUMNS]
            selected = ", ".join(f'"{column}"::text' for column in columns)
            cursor.execute(f'select {selected} from raw_{name}."{table}"')
            tables[table] = (columns, sorted(cursor.fetchall(), key=repr))
    return tables


def test_small_insert_statements_land_what_the_default_ones_land(sandbox_server, database_factory, tmp_path):
    landed = {}
    for label, destination in (("default", dlt.destinations.postgres), ("tiny", warehouse_destination)):
        warehouse = database_factory(f"statements_{label}")
        options = {"max_statement_bytes": TINY_STATEMENTS} if label == "tiny" else {}
        for name, source in _sources(sandbox_server).items():
            pipeline = dlt.pipeline(pipeline_name=name, dataset_name=f"raw_{name}",
                                    pipelines_dir=str(tmp_path / label),
                                    destination=destination(warehouse.url, **options))
            pipeline.run(source)
            landed[(label, name)] = _landed(warehouse, name)
    for name, table in INSERTED_TABLES.items():
        assert landed[("tiny", name)][table] == landed[("default", name)][table]
        _, rows = landed[("tiny", name)][table]
        assert len(rows) > 100
        assert sum(len(value or "") for row in rows for value in row) > 2 * TINY_STATEMENTS  # several statements

def test_the_warehouse_destination_uses_small_statements_and_malloc_is_limited():
    destination = warehouse_destination("postgresql://postgres:@127.0.0.1:5432/unused")
    assert destination.capabilities().max_query_length == MAX_STATEMENT_BYTES < 32 * 1024 * 1024
    assert destination.destination_name == "postgres"  # pipelines keep their state across the change of class
    assert limit_malloc_arenas() is True  # glibc here: both settings were accepted
    arrow_on_system_allocator()
    assert pa.default_memory_pool().backend_name == "system"
