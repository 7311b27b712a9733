"""Twilio Calls, Messages and daily Usage Records, for each account and its subaccounts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta

import dlt
from dlt.sources import DltResource

from dlt_sources.http_client import ProviderClient
from dlt_sources.twilio.helpers import account_sids, iter_pages
from dlt_sources.twilio.settings import (
    API_VERSION,
    DEFAULT_INITIAL_DAYS,
    DEFAULT_LOOKBACK_DAYS,
    MAX_CONCURRENCY,
    TWILIO_API_BASE,
)


def _hints(*text_columns: str, **other_types: str) -> dict:
    """Type hints, so columns that are null in a first load still exist and strings stay strings."""
    return {**{name: {"data_type": "text"} for name in text_columns},
            **{name: {"data_type": data_type} for name, data_type in other_types.items()}}


@dlt.source(name="twilio", max_table_nesting=0)
def twilio_source(
    accounts: Sequence[dict] = dlt.secrets.value,
    base_url: str = TWILIO_API_BASE,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    initial_days: int = DEFAULT_INITIAL_DAYS,
) -> Sequence[DltResource]:
    """`accounts`: [{"account_sid": "AC...", "auth_token": "...", "include_subaccounts": true}, ...]."""
    windows = _Windows(lookback_days, initial_days)
    return [
        calls(accounts, base_url, windows),
        messages(accounts, base_url, windows),
        usage_records(accounts, base_url, windows),
    ]


class _Windows:
    """Per-account day cursors: the UTC day each resource last completed a run on."""

    def __init__(self, lookback_days: int, initial_days: int):
        self.lookback_days = lookback_days
        self.initial_days = initial_days
        self.today = datetime.now(UTC).date()

    def start(self, cursors: dict, account_sid: str) -> date:
        previous = cursors.get(account_sid)
        if previous is None:
            return self.today - timedelta(days=self.initial_days)
        return date.fromisoformat(previous) - timedelta(days=self.lookback_days)


def _accounts(accounts: Sequence[dict], base_url: str) -> Iterator[tuple[ProviderClient, str]]:
    for account in accounts:
        client = ProviderClient("twilio", base_url, auth=(account["account_sid"], account["auth_token"]),
                                max_concurrency=MAX_CONCURRENCY)
        for sid in account_sids(client, account["account_sid"], account.get("include_subaccounts", True)):
            yield client, sid


def _collect(accounts, base_url, windows: _Windows, collection: str, items_key: str, date_param: str):
    cursors: dict = dlt.current.resource_state().setdefault("cursor_day", {})
    for client, sid in _accounts(accounts, base_url):
        start = windows.start(cursors, sid)
        path = f"/{API_VERSION}/Accounts/{sid}/{collection}.json"
        yield from iter_pages(client, path, items_key, {f"{date_param}>": start.isoformat()})
        cursors[sid] = windows.today.isoformat()


@dlt.resource(write_disposition="merge", primary_key="sid",
              columns=_hints("price", "duration", "queue_time", "parent_call_sid", "start_time", "end_time"))
def calls(accounts: Sequence[dict], base_url: str, windows: _Windows) -> Iterator[list[dict]]:
    yield from _collect(accounts, base_url, windows, "Calls", "calls", "StartTime")


@dlt.resource(write_disposition="merge", primary_key="sid",
              columns=_hints("price", "num_segments", "num_media", "messaging_service_sid", "date_sent",
                             "error_message", error_code="bigint"))
def messages(accounts: Sequence[dict], base_url: str, windows: _Windows) -> Iterator[list[dict]]:
    yield from _collect(accounts, base_url, windows, "Messages", "messages", "DateSent")


@dlt.resource(
    write_disposition="merge",
    primary_key=("account_sid", "category", "start_date", "end_date"),
    columns=_hints("price", "count", "usage"),
)
def usage_records(accounts: Sequence[dict], base_url: str, windows: _Windows) -> Iterator[list[dict]]:
    """Daily records per account (subaccounts excluded, they are listed on their own)."""
    cursors: dict = dlt.current.resource_state().setdefault("cursor_day", {})
    for client, sid in _accounts(accounts, base_url):
        params = {
            "StartDate": windows.start(cursors, sid).isoformat(),
            "EndDate": windows.today.isoformat(),
            "IncludeSubaccounts": "false",
        }
        yield from iter_pages(client, f"/{API_VERSION}/Accounts/{sid}/Usage/Records/Daily.json",
                              "usage_records", params)
        cursors[sid] = windows.today.isoformat()
