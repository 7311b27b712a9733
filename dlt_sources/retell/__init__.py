"""Retell AI calls, from POST /v3/list-calls, for one or more workspaces."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import dlt
from dlt.sources import DltResource

from dlt_sources.http_client import ProviderClient
from dlt_sources.retell.helpers import iter_call_pages
from dlt_sources.retell.settings import (
    DEFAULT_INITIAL_DAYS,
    DEFAULT_LOOKBACK_HOURS,
    JSON_COLUMNS,
    RETELL_API_BASE,
)


@dlt.source(name="retell", max_table_nesting=0)
def retell_source(
    workspaces: Sequence[dict] = dlt.secrets.value,
    base_url: str = RETELL_API_BASE,
    lookback_hours: int = DEFAULT_LOOKBACK_HOURS,
    initial_days: int = DEFAULT_INITIAL_DAYS,
) -> Sequence[DltResource]:
    """`workspaces`: [{"name": "main", "api_key": "key_..."}, ...]."""
    return [calls(workspaces, base_url, lookback_hours, initial_days)]


@dlt.resource(
    write_disposition="merge",
    primary_key="call_id",
    columns={name: {"data_type": "json"} for name in JSON_COLUMNS},
)
def calls(workspaces: Sequence[dict], base_url: str, lookback_hours: int, initial_days: int) -> Iterator[list[dict]]:
    """Every call of each workspace that started since its cursor minus the look-back window.

    The cursor is the time the previous successful run started; it is saved with the load, so a
    failed or killed run leaves it where it was.
    """
    cursors: dict = dlt.current.resource_state().setdefault("cursor_ms", {})
    for workspace in workspaces:
        name = workspace["name"]
        run_started_ms = int(time.time() * 1000)
        previous = cursors.get(name, run_started_ms - initial_days * 86_400_000)
        start_ms = previous - lookback_hours * 3_600_000
        client = ProviderClient("retell", base_url, headers={"Authorization": f"Bearer {workspace['api_key']}"})
        for page in iter_call_pages(client, start_ms):
            for call in page:
                call["workspace"] = name
            yield page
        cursors[name] = run_started_ms
