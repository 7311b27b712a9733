"""Reading the directory from a YAML file, a folder of CSV files, or the platform's SQL database."""

from __future__ import annotations

import csv
from pathlib import Path

import sqlalchemy as sa
import yaml


def read_yaml(path: Path, section: str) -> list[dict]:
    document = yaml.safe_load(path.read_text()) or {}
    rows = document.get(section)
    if not isinstance(rows, list):
        raise ValueError(f"directory file {path}: section {section!r} is missing or not a list")
    return rows


def read_csv(folder: Path, section: str) -> list[dict]:
    """<folder>/<section>.csv with a header row; empty cells are nulls."""
    path = folder / f"{section}.csv"
    if not path.exists():
        raise ValueError(f"directory folder {folder} has no {section}.csv")
    with path.open(newline="") as handle:
        return [{key: (value if value != "" else None) for key, value in row.items()} for row in csv.DictReader(handle)]


def read_sql(url: str, schema: str | None, section: str) -> list[dict]:
    """SELECT * from the platform's <schema>.<section> table or view."""
    engine = sa.create_engine(url)
    try:
        table = sa.Table(section, sa.MetaData(), schema=schema, autoload_with=engine)
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sa.select(table))]
    finally:
        engine.dispose()
