"""OpenRouter key listing."""

from __future__ import annotations

from collections.abc import Iterator

from dlt.sources.helpers.rest_client.paginators import RangePaginator
from requests import Response

from dlt_sources.http_client import ProviderClient
from dlt_sources.openrouter.settings import KEYS_PAGE_SIZE


class ShortPageOffsetPaginator(RangePaginator):
    """`offset` in steps of the API's fixed page size; a short page is the last. (dlt's OffsetPaginator
    would send a `limit` /keys does not take, and stop only after an empty page: one request more.)"""

    def __init__(self, page_size: int):
        super().__init__(param_name="offset", initial_value=0, value_step=page_size)

    def update_state(self, response: Response, data: list | None = None) -> None:
        super().update_state(response, data)
        if len(data or ()) < self.value_step:
            self._has_next_page = False


def key_pages(client: ProviderClient) -> Iterator[list[dict]]:
    """All API keys, disabled ones included."""
    return client.paginate("/keys", ShortPageOffsetPaginator(KEYS_PAGE_SIZE), "data",
                           params={"include_disabled": "true"})
