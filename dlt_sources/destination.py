"""The raw tables' dlt destination: PostgreSQL, loading INSERT files in small statements and CSV files with a
COPY that keeps empty strings.

- dlt loads a table's INSERT file in statements of up to 16 MB, read, joined and encoded whole, one per table at
  once: 2 MB statements take as long to load and hold a tenth of that (docs/collection-performance.md).
- The listed records arrive as Arrow tables (dlt_sources.columnar), which dlt writes to CSV with pyarrow: a null
  is an empty field, an empty string a quoted one. dlt's own CSV job copies with FORCE_NULL on every nullable
  column, so "" would land as NULL; this one copies with NULL '' alone.
"""

from __future__ import annotations

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.client import HasFollowupJobs, LoadJob, RunnableLoadJob
from dlt.common.storages.file_storage import FileStorage
from dlt.common.storages.load_package import ParsedLoadJobFileName
from dlt.destinations.impl.postgres.postgres import PostgresClient

MAX_STATEMENT_BYTES = 4 * 1024 * 1024  # dlt reads half of this per INSERT statement


class CsvCopyJob(RunnableLoadJob, HasFollowupJobs):
    """COPY of a CSV file with a header line, an unquoted empty field being NULL."""

    def run(self) -> None:
        sql_client = self._job_client.sql_client
        with FileStorage.open_zipsafe_ro(self._file_path, "rb") as csv_file:
            header = csv_file.readline().decode().strip()
            columns = ",".join(sql_client.escape_column_name(name.strip('"')) for name in header.split(","))
            table = sql_client.make_qualified_table_name(self.load_table_name)
            with sql_client.begin_transaction(), sql_client.native_connection.cursor() as cursor:
                cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT CSV, NULL '')", csv_file)


class WarehouseClient(PostgresClient):
    def create_load_job(self, table, file_path: str, load_id: str, restore: bool = False) -> LoadJob:
        if ParsedLoadJobFileName.parse(file_path).file_format == "csv":
            return CsvCopyJob(file_path)
        return super().create_load_job(table, file_path, load_id, restore)


class warehouse_postgres(dlt.destinations.postgres):  # noqa: N801 - dlt names destinations in lower case
    @property
    def client_class(self) -> type[PostgresClient]:
        return WarehouseClient


def warehouse_destination(url: str, max_statement_bytes: int = MAX_STATEMENT_BYTES) -> Destination:
    """PostgreSQL for the raw tables: INSERT files in statements of about half `max_statement_bytes` (2 MB),
    CSV files by CsvCopyJob."""
    return warehouse_postgres(credentials=url, max_query_length=max_statement_bytes, destination_name="postgres")
