"""The agency directory: clients, agents and effective-dated resource assignments.

From a YAML file (default), a folder of CSV files (clients.csv, agents.csv,
resource_assignments.csv), or, with `sql_url`, the platform's own database.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import dlt
from dlt.sources import DltResource

from dlt_sources.directory.helpers import read_csv, read_sql, read_yaml
from dlt_sources.directory.settings import COLUMN_HINTS, DEFAULT_DIRECTORY_PATH, SECTIONS


@dlt.source(name="directory", max_table_nesting=0)
def directory_source(
    path: str = DEFAULT_DIRECTORY_PATH,
    sql_url: str | None = dlt.secrets.value,
    sql_schema: str | None = None,
) -> Sequence[DltResource]:
    """Each section replaces its table, so a removed assignment disappears on the next load."""
    return [
        dlt.resource(_section(path, sql_url, sql_schema, section), name=section, write_disposition="replace",
                     columns=COLUMN_HINTS.get(section))
        for section in SECTIONS
    ]


def _section(path: str, sql_url: str | None, sql_schema: str | None, section: str) -> Iterator[list[dict]]:
    if sql_url:
        yield read_sql(sql_url, sql_schema, section)
    elif Path(path).is_dir():
        yield read_csv(Path(path), section)
    else:
        yield read_yaml(Path(path), section)
