"""Retell list-calls paging."""

from __future__ import annotations

from collections.abc import Iterator

from dlt_sources.http_client import ProviderClient
from dlt_sources.retell.settings import LIST_CALLS_PATH, PAGE_SIZE


def iter_call_pages(client: ProviderClient, start_ms: int, end_ms: int | None = None,
                    page_size: int = PAGE_SIZE) -> Iterator[list[dict]]:
    """Pages of calls that started at or after `start_ms` (and before `end_ms`), oldest first."""
    started = ({"op": "ge", "type": "number", "value": start_ms} if end_ms is None
               else {"op": "bt", "type": "range", "value": [start_ms, end_ms - 1]})
    body: dict = {
        "filter_criteria": {"start_timestamp": started},
        "sort_order": "ascending",
        "limit": page_size,
    }
    while True:
        page = client.post(LIST_CALLS_PATH, json=body)
        items = page.get("items") or []
        if items:
            yield items
        if not page.get("has_more") or not page.get("pagination_key"):
            return
        body["pagination_key"] = page["pagination_key"]
