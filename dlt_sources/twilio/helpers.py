"""Twilio paging and account discovery."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator
from dlt.sources.helpers.rest_client.utils import join_url
from requests import Response

from dlt_sources.http_client import ProviderClient, json_path
from dlt_sources.twilio.settings import API_VERSION, PAGE_SIZE


class NextPageUriPaginator(JSONLinkPaginator):
    """Follows `next_page_uri` until it is null. The URI is a path from the API host: dlt would urljoin it
    to the request URL and lose the base URL's own path (the sandbox's /twilio), so it joins the base URL."""

    def __init__(self, base_url: str):
        super().__init__(next_url_path=json_path("next_page_uri"))
        self.base_url = base_url

    def update_state(self, response: Response, data: list | None = None) -> None:
        super().update_state(response, data)
        if self._next_reference and not urlparse(self._next_reference).scheme:
            self._next_reference = join_url(self.base_url, self._next_reference)


def pages(client: ProviderClient, path: str, items_key: str, params: dict) -> Iterator[list[dict]]:
    return client.paginate(path, NextPageUriPaginator(client.rest.base_url), items_key,
                           params={**params, "PageSize": PAGE_SIZE})


def account_sids(client: ProviderClient, include_subaccounts: bool) -> list[str]:
    """The client's account itself and, if asked, every subaccount it owns."""
    master = client.account
    sids = [master]
    if include_subaccounts:
        for page in pages(client, f"/{API_VERSION}/Accounts.json", "accounts", {}):
            sids += [a["sid"] for a in page if a["sid"] != master and a.get("owner_account_sid") == master]
    return sids
