"""Twilio paging and account discovery."""

from __future__ import annotations

from collections.abc import Iterator

from dlt_sources.http_client import ProviderClient
from dlt_sources.twilio.settings import API_VERSION, PAGE_SIZE


def iter_pages(client: ProviderClient, path: str, items_key: str, params: dict) -> Iterator[list[dict]]:
    """Follow `next_page_uri` from the first page until it is null."""
    page = client.get(path, params={**params, "PageSize": PAGE_SIZE})
    while True:
        items = page.get(items_key) or []
        if items:
            yield items
        next_uri = page.get("next_page_uri")
        if not next_uri:
            return
        page = client.get(next_uri)


def account_sids(client: ProviderClient, account_sid: str, include_subaccounts: bool) -> list[str]:
    """The account itself and, if asked, every subaccount it owns."""
    if not include_subaccounts:
        return [account_sid]
    sids = [account_sid]
    for page in iter_pages(client, f"/{API_VERSION}/Accounts.json", "accounts", {}):
        sids += [a["sid"] for a in page if a["sid"] != account_sid and a.get("owner_account_sid") == account_sid]
    return sids
