"""OpenRouter key listing."""

from __future__ import annotations

from collections.abc import Iterator

from dlt_sources.http_client import ProviderClient
from dlt_sources.openrouter.settings import KEYS_PAGE_SIZE


def iter_keys(client: ProviderClient) -> Iterator[dict]:
    """All API keys, disabled ones included, following offset paging."""
    offset = 0
    while True:
        page = client.get("/keys", params={"include_disabled": "true", "offset": offset})["data"]
        yield from page
        if len(page) < KEYS_PAGE_SIZE:
            return
        offset += len(page)
