"""The one list of raw tables: `meta.registry` on the dbt sources, read here from the dbt manifest
(dbt macros read the same entries through `graph.sources`). Adding a raw table is a change in one place.

    registry:
      owner: retell            # who writes it: a dlt pipeline's name, or "receiver"
      role: objects            # objects (billable objects) | quarantine (records a collector could not key)
                               # | reference (provider totals, keys, the directory)
      object_kind: retell:call # provider:object_type of its objects; "twilio:*" takes the type from `resource`
      key: [call_id]           # the columns that identify an object (several: hashed into one key)
      progress: load           # how new rows are found: load (_dlt_load_id), received (received_at), content
      collection_check: true   # carries its owner's collection_fresh check (one table per dlt pipeline)
      quarantine_of: calls     # quarantine tables: the table whose records they hold
      indexes: [[start_date]]  # more indexed columns the models filter on
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from billing_usage.settings import PROJECT_ROOT

MANIFEST = PROJECT_ROOT / "dbt_project" / "target" / "manifest.json"
RECEIVER = "receiver"


@dataclass(frozen=True)
class RawTable:
    schema: str
    name: str
    asset_key: tuple[str, ...]
    owner: str
    role: str
    object_kind: str | None = None
    key: tuple[str, ...] = ()
    progress: str | None = None
    collection_check: bool = False
    quarantine_of: str | None = None
    indexes: tuple[tuple[str, ...], ...] = ()
    description: str = ""

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"


@cache
def raw_tables(manifest: Path = MANIFEST) -> tuple[RawTable, ...]:
    """Every registered raw table, in manifest order. Fails loudly on a raw source without an entry;
    sources outside the raw schemas (the ops tables dbt reads) are not raw tables."""
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest} is missing: run `make manifest` (dbt parse) first")
    sources = json.loads(manifest.read_text())["sources"].values()
    tables = []
    for source in sources:
        entry = source.get("meta", {}).get("registry")
        if entry is None and not source["schema"].startswith("raw_"):
            continue
        if entry is None:
            raise ValueError(f"dbt source {source['unique_id']} has no meta.registry entry")
        tables.append(RawTable(
            schema=source["schema"], name=source["name"],
            asset_key=tuple(source["meta"]["dagster"]["asset_key"]),
            owner=entry["owner"], role=entry["role"], object_kind=entry.get("object_kind"),
            key=tuple(entry.get("key", ())), progress=entry.get("progress"),
            collection_check=entry.get("collection_check", False), quarantine_of=entry.get("quarantine_of"),
            indexes=tuple(tuple(columns) for columns in entry.get("indexes", ())),
            description=(source.get("description") or source.get("source_description") or "").strip(),
        ))
    return tuple(tables)


def by_asset_key(asset_key: tuple[str, ...]) -> RawTable | None:
    return next((table for table in raw_tables() if table.asset_key == asset_key), None)


def owned_by(owner: str) -> tuple[RawTable, ...]:
    return tuple(table for table in raw_tables() if table.owner == owner)


def collector_owners() -> tuple[str, ...]:
    """The dlt pipelines that write raw tables, in registry order."""
    return tuple(dict.fromkeys(table.owner for table in raw_tables() if table.owner != RECEIVER))
