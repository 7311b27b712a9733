"""The agency directory: clients, agents and effective-dated resource assignments, from YAML."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import dlt
import yaml
from dlt.sources import DltResource

from dlt_sources.directory.settings import DEFAULT_DIRECTORY_PATH

SECTIONS = ("clients", "agents", "resource_assignments")


@dlt.source(name="directory", max_table_nesting=0)
def directory_source(path: str = DEFAULT_DIRECTORY_PATH) -> Sequence[DltResource]:
    """Each section replaces its table, so a removed assignment disappears on the next load."""
    return [
        dlt.resource(_section(path, section), name=section, write_disposition="replace",
                     columns={"valid_to": {"data_type": "timestamp", "nullable": True}}
                     if section == "resource_assignments" else None)
        for section in SECTIONS
    ]


def _section(path: str, section: str) -> Iterator[list[dict]]:
    document = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(document.get(section), list):
        raise ValueError(f"directory file {path}: section {section!r} is missing or not a list")
    yield document[section]
