"""Retell list-calls paging, and get-call for one call."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

from dlt_sources.http_client import ProviderClient, json_path
from dlt_sources.retell.settings import GET_CALL_PATH, LIST_CALLS_PATH, PAGE_SIZE


def call_pages(client: ProviderClient, start_ms: int, end_ms: int | None = None,
               page_size: int = PAGE_SIZE) -> Iterator[list[dict]]:
    """Pages of calls that started at or after `start_ms` (and before `end_ms`), oldest first."""
    started = ({"op": "ge", "type": "number", "value": start_ms} if end_ms is None
               else {"op": "bt", "type": "range", "value": [start_ms, end_ms - 1]})
    body = {"filter_criteria": {"start_timestamp": started}, "sort_order": "ascending", "limit": page_size}
    # The next page's pagination_key goes back in the POST body until has_more is false.
    paginator = JSONResponseCursorPaginator(cursor_path=json_path("pagination_key"),
                                            cursor_body_path="pagination_key", has_more_path=json_path("has_more"))
    return client.paginate(LIST_CALLS_PATH, paginator, "items", method="POST", json=body)


def get_call_path(call_id: str) -> str:
    return GET_CALL_PATH.format(call_id=quote(call_id, safe=""))


def has_final_cost(call: dict) -> bool:
    """Retell's cost is final once call_cost.combined_cost is there (after call_analyzed)."""
    cost = call.get("call_cost")
    return isinstance(cost, dict) and cost.get("combined_cost") is not None
