"""Pages of listed records as Arrow tables: dlt writes them to CSV with pyarrow and loads them with COPY, instead of
normalizing and escaping every value in Python and loading INSERT statements (docs/collection-performance.md).

The raw tables keep the shape the row-by-row path gives them: a scalar keeps its JSON type (bigint, double,
boolean, text), nested values are JSON columns, columns hinted `text` or `json` are that. A record whose field
has another type than its column's goes to `<table>_quarantine` with the reason, as does one without its key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from itertools import chain

import dlt
import orjson
import pyarrow as pa
from dlt.extract.exceptions import CurrentSourceSchemaNotAvailable

from dlt_sources.quarantine import quarantined

ARROW_TYPES = {"bool": pa.bool_(), "bigint": pa.int64(), "double": pa.float64(), "text": pa.string(),
               "json": pa.string()}

PYTHON_TYPES = {bool: "bool", int: "bigint", float: "double", str: "text", dict: "json", list: "json"}

# The load id and row id rows get from dlt's row normalizer: staging reads `_dlt_load_id`. Set here rather than in
# .dlt/config.toml, which dlt finds only from the project root.
for _column in ("ADD_DLT_LOAD_ID", "ADD_DLT_ID"):
    os.environ.setdefault(f"NORMALIZE__PARQUET_NORMALIZER__{_column}", "true")


class _JsonHintsKept(logging.Filter):
    """dlt warns, once per table and page, that a JSON column's hint overrides the Arrow table's string type:
    that is what the hint is for."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


logging.getLogger("dlt").addFilter(_JsonHintsKept())


def column_hints(types: Mapping[str, str]) -> dict:
    """A resource's column hints from column -> dlt data type: hinted columns exist even while null, and
    strings stay strings."""
    return {name: {"data_type": data_type} for name, data_type in types.items()}


def _data_type(page: list[dict], name: str, hint: str | None) -> str | None:
    """A column's type: its hint, else json if its first non-null value is nested; None: inferred from the values
    (`_arrays`, `_inferred`)."""
    if hint:
        return hint
    first = next((record[name] for record in page if record.get(name) is not None), None)
    return "json" if isinstance(first, dict | list) else None


def _inferred(page: list[dict], name: str) -> str | None:
    """What Arrow would infer where it can: the first non-null value's type, integers and floats making doubles."""
    kinds = [PYTHON_TYPES.get(type(record[name]), "text") for record in page if record.get(name) is not None]
    if not kinds:
        return None
    return "double" if kinds[0] in ("bigint", "double") and "double" in kinds else kinds[0]


def _fits(value, data_type: str | None) -> bool:
    if value is None or data_type in ("json", "text"):
        return True  # text columns take numbers as their JSON text, as dlt coerces them
    kind = PYTHON_TYPES.get(type(value))
    return kind == data_type or (kind, data_type) == ("bigint", "double")


def _cell(value, data_type: str):
    if value is None or (data_type == "text" and isinstance(value, str)):
        return value
    return orjson.dumps(value).decode() if data_type in ("json", "text") else value


def _arrays(records: list[dict], types: Mapping[str, str | None]) -> dict[str, pa.Array] | None:
    """Each column as an Arrow array: of its type, JSON text for json, as Arrow infers it where the type is None
    (integers and floats together make doubles); None if a value does not convert as it is (a number in a text
    column, a string among numbers)."""
    arrays = {}
    for name, data_type in types.items():
        values = [record.get(name) for record in records]
        if data_type == "json":
            values = [None if value is None else orjson.dumps(value).decode() for value in values]
        try:
            array = pa.array(values)  # inferred, so that nothing is truncated or coerced on the way
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return None
        target = ARROW_TYPES[data_type] if data_type else array.type
        if pa.types.is_null(array.type) and not data_type:
            continue  # no value yet: the column is not created, as with rows
        widened = (array.type, target) == (pa.int64(), pa.float64())  # whole numbers in a double column
        if array.type != target and not widened and not pa.types.is_null(array.type):
            return None
        arrays[name] = array.cast(target)
    return arrays


def _stored_types(table: str) -> dict[str, str]:
    """The types the table's columns already have in the pipeline's schema (restored from the warehouse):
    a value of another type cannot be copied into them."""
    try:
        columns = dlt.current.source_schema().tables.get(table, {}).get("columns", {})
    except CurrentSourceSchemaNotAvailable:
        return {}
    return {name: column["data_type"] for name, column in columns.items() if column.get("data_type") in ARROW_TYPES}


def arrow_page(page: list[dict], table: str, key: str, account: str, hints: Mapping[str, str]) -> Iterator:
    """The page's records as one Arrow table for `table`, JSON columns hinted as such; then those without
    `key` or with a mistyped field, marked for `<table>_quarantine`. `hints`: column -> dlt data type, over
    the types the table's columns already have."""
    hints = {**_stored_types(table), **hints}
    rejected = [(record, f"missing_{key}") for record in page if not record.get(key)]
    kept = [record for record in page if record.get(key)]
    types = {name: _data_type(kept, name, hints.get(name)) for name in dict.fromkeys(chain.from_iterable(kept))}
    arrays = _arrays(kept, types)
    if arrays is None:  # the slow way: record by record, value by value
        types = {name: data_type or _inferred(kept, name) for name, data_type in types.items()}
        checked, kept = kept, []
        for record in checked:
            wrong = next((name for name, value in record.items() if not _fits(value, types.get(name))), None)
            if wrong is None:
                kept.append(record)
            else:
                rejected.append((record, f"mistyped:{wrong}"))
        arrays = {name: pa.array([_cell(record.get(name), data_type) for record in kept], ARROW_TYPES[data_type])
                  for name, data_type in types.items() if data_type}
    if kept:
        table_data = pa.table(arrays)
        new_json = {name: "json" for name, data_type in types.items() if data_type == "json" and name not in hints}
        yield dlt.mark.with_hints(table_data, dlt.mark.make_hints(columns=column_hints(new_json))) if new_json \
            else table_data
    yield from quarantined(rejected, key, table, account)
