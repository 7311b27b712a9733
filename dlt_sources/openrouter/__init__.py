"""OpenRouter keys, per-key daily activity and credit snapshots (management key required)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta

import dlt
from dlt.sources import DltResource

from dlt_sources.http_client import ProviderClient
from dlt_sources.openrouter.helpers import iter_keys
from dlt_sources.openrouter.settings import (
    ACTIVITY_DAYS_AVAILABLE,
    DEFAULT_LOOKBACK_DAYS,
    OPENROUTER_API_BASE,
)

logger = logging.getLogger(__name__)


@dlt.source(name="openrouter", max_table_nesting=0)
def openrouter_source(
    accounts: Sequence[dict] = dlt.secrets.value,
    base_url: str = OPENROUTER_API_BASE,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
) -> Sequence[DltResource]:
    """`accounts`: [{"name": "agency", "management_key": "sk-or-v1-..."}, ...]."""
    clients = [(a["name"], ProviderClient("openrouter", base_url,
                                          headers={"Authorization": f"Bearer {a['management_key']}"}))
               for a in accounts]
    return [keys(clients), activity(clients, lookback_days), credits(clients)]


@dlt.resource(write_disposition="merge", primary_key="hash")
def keys(clients: list[tuple[str, ProviderClient]]) -> Iterator[list[dict]]:
    for name, client in clients:
        yield [{**key, "account": name} for key in iter_keys(client)]


@dlt.resource(write_disposition="merge", primary_key=("date", "api_key_hash", "model_permaslug", "endpoint_id"))
def activity(clients: list[tuple[str, ProviderClient]], lookback_days: int) -> Iterator[list[dict]]:
    """Daily activity per key since the last completed day loaded, minus the look-back window.

    /activity only reaches 30 days back: a gap larger than that cannot be recovered and is logged
    as an error, with the days lost.
    """
    cursors: dict = dlt.current.resource_state().setdefault("last_day", {})
    today = datetime.now(UTC).date()
    oldest_available = today - timedelta(days=ACTIVITY_DAYS_AVAILABLE)
    for name, client in clients:
        for key in iter_keys(client):
            key_hash = key["hash"]
            last_day = cursors.get(key_hash)
            start = oldest_available
            if last_day is not None:
                start = max(oldest_available, date.fromisoformat(last_day) - timedelta(days=lookback_days))
                missed = (oldest_available - date.fromisoformat(last_day)).days - 1
                if missed > 0:
                    logger.error("openrouter: key %s (%s) lost %d day(s) of activity older than %s",
                                 key.get("name"), key_hash[:8], missed, oldest_available)
            rows = client.get("/activity", params={"api_key_hash": key_hash})["data"]
            yield [{**row, "api_key_hash": key_hash, "account": name}
                   for row in rows if date.fromisoformat(row["date"]) >= start]
            cursors[key_hash] = (today - timedelta(days=1)).isoformat()


@dlt.resource(write_disposition="append")
def credits(clients: list[tuple[str, ProviderClient]]) -> Iterator[dict]:
    fetched_at = datetime.now(UTC).isoformat()
    for name, client in clients:
        yield {**client.get("/credits")["data"], "account": name, "fetched_at": fetched_at}
