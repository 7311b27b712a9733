"""Twilio Calls, Messages and daily Usage Records, for each account and its subaccounts; calls and
messages still pending, by sid."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from functools import partial

import dlt
from dlt.sources import DltResource
from dlt.sources.helpers.rest_client.auth import HttpBasicAuth

from billing_usage.settings import utc_now
from dlt_sources.account_state import account_state, record_success
from dlt_sources.backfill import Backfill
from dlt_sources.columnar import arrow_page, column_hints
from dlt_sources.http_client import DEFAULT_BACKOFF_SECONDS, DEFAULT_MAX_ATTEMPTS, ProviderClient, http_options
from dlt_sources.pending import OpenObjects, Refetched, record_skipped
from dlt_sources.twilio.helpers import account_sids, is_priced, pages_in_parallel, pages_then_pending
from dlt_sources.twilio.settings import (
    API_VERSION,
    CALL_TYPES,
    DEFAULT_INITIAL_DAYS,
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_USAGE_RECORDS_LOOKBACK_DAYS,
    MAX_CONCURRENCY,
    MESSAGE_TYPES,
    PAGES_AHEAD,
    REQUEST_TIMEOUT_SECONDS,
    TWILIO_API_BASE,
    USAGE_RECORD_TYPES,
)


@dlt.source(name="twilio", max_table_nesting=0)
def twilio_source(
    accounts: Sequence[dict] = dlt.secrets.value,
    base_url: str = TWILIO_API_BASE,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    usage_records_lookback_days: int = DEFAULT_USAGE_RECORDS_LOOKBACK_DAYS,
    initial_days: int = DEFAULT_INITIAL_DAYS,
    request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    backfill_start: str | None = None,
    backfill_end: str | None = None,
    pending_records: Sequence[dict] = (),
) -> Sequence[DltResource]:
    """`accounts`: [{"account_sid": "AC...", "auth_token": "...", "include_subaccounts": true}, ...];
    `lookback_days`: days before the cursor's day that calls and messages are listed again (those still
    unpriced are fetched again by sid anyway); `usage_records_lookback_days`: the same for the daily
    Usage Records, whose totals settle after the day; `backfill_*`: UTC days [start, end) to collect
    again; `pending_records`: [{"account_sid": "AC...",
    "sid": "CA..." | "SM..." | "MM..."}, ...], calls and messages the warehouse still holds unpriced, each
    with the (sub)account that owns it, fetched again by sid (see dlt_sources.pending) with the credentials
    of the configured account that owns that subaccount. A backfill ignores them."""
    http = http_options(request_timeout, max_attempts, backoff_seconds)
    clients = [(ProviderClient("twilio", base_url, account=a["account_sid"], max_concurrency=MAX_CONCURRENCY,
                               auth=HttpBasicAuth(username=a["account_sid"], password=a["auth_token"]), **http),
                a.get("include_subaccounts", True))
               for a in accounts]
    backfill = Backfill.of(backfill_start, backfill_end)
    window = _Window(lookback_days, initial_days, backfill)
    pending = {} if window.backfill else _by_resource_and_account(pending_records)
    return [calls(clients, window, pending.get("calls", {})), messages(clients, window, pending.get("messages", {})),
            usage_records(clients, _Window(usage_records_lookback_days, initial_days, backfill))]


def _by_resource_and_account(pending_records: Iterable[dict]) -> dict[str, dict[str, list[str]]]:
    """"calls" / "messages" -> account sid -> its pending sids, each once, in the order given."""
    grouped: dict[str, dict[str, dict[str, None]]] = {}
    for record in pending_records:
        sid = record["sid"]
        resource = "calls" if sid.startswith("CA") else "messages" if sid.startswith(("SM", "MM")) else None
        if resource is None:
            raise ValueError(f"pending Twilio record {sid!r} is neither a call (CA...) nor a message (SM..., MM...)")
        grouped.setdefault(resource, {}).setdefault(record["account_sid"], {})[sid] = None
    return {resource: {account: list(sids) for account, sids in accounts.items()}
            for resource, accounts in grouped.items()}


# Not dlt.sources.incremental: one cursor per subaccount, in whole days, from the run's day rather than the data.
class _Window:
    """Day-granular windows [start, end): from the day an account's last successful run started, minus
    the look-back, until tomorrow; or exactly the backfill's days, leaving the cursor alone. Records
    fetched by sid never move a cursor."""

    def __init__(self, lookback_days: int, initial_days: int, backfill: Backfill | None):
        self.lookback_days = lookback_days
        self.initial_days = initial_days
        self.backfill = backfill
        self.today = utc_now().date()

    def days(self, account_sid: str) -> tuple[date, date]:
        if self.backfill:
            return self.backfill.start, self.backfill.end
        previous = account_state(account_sid).get("cursor")
        if previous is None:
            return self.today - timedelta(days=self.initial_days), self.today + timedelta(days=1)
        return date.fromisoformat(previous) - timedelta(days=self.lookback_days), self.today + timedelta(days=1)

    def cursor_after(self, account_sid: str) -> str | None:
        return account_state(account_sid).get("cursor") if self.backfill else self.today.isoformat()


def _collect(clients, window: _Window, path: str, items_key: str, params_for,
             pending: Mapping[str, list[str]] | None = None, types: Mapping[str, str] | None = None) -> Iterator:
    """Every page of `path` for every account and subaccount, then the records its window did not return
    and that can still change (those the account's last runs saw unpriced, and its `pending` sids),
    fetched PAGES_AHEAD at a time (an account's clients share its MAX_CONCURRENCY slots, also with the other
    resources, which dlt runs round-robin), recording each account's success once its last page is
    yielded. `pending` None: the resource has no prices to settle (usage records), and its pages are
    yielded as they are; else as Arrow tables of `types` (see dlt_sources.columnar)."""
    by_sid: dict[str, ProviderClient] = {}
    for client, include_subaccounts in clients:
        master = client.for_account(client.account)  # this run's counts; listing subaccounts counts toward it
        by_sid |= {sid: master if sid == master.account else master.for_account(sid)
                   for sid in account_sids(master, include_subaccounts)}
    if pending is not None:
        record_skipped("twilio", [sid for account, sids in pending.items() if account not in by_sid for sid in sids])
    refetched = {sid: Refetched() for sid in by_sid}  # each filled by its account's job, read once it is done
    open_records = {sid: OpenObjects(account_state(sid), window.today, "sid", is_priced) for sid in by_sid
                    } if pending is not None else {}
    fetch_again = {sid: [] if window.backfill else opened.to_fetch(pending.get(sid, ()))
                   for sid, opened in open_records.items()}
    jobs = {sid: partial(pages_then_pending, by_sid[sid], path.format(sid=sid), items_key,
                         params_for(*window.days(sid)), fetch_again.get(sid, ()), refetched[sid])
            for sid in by_sid}
    rows = dict.fromkeys(by_sid, 0)
    for sid, page in pages_in_parallel(jobs, PAGES_AHEAD):
        if page is None:
            if sid in open_records:
                open_records[sid].forget(refetched[sid].not_found)
            record_success(sid, window.cursor_after(sid), rows[sid], by_sid[sid].stats,
                           **(refetched[sid].state() if pending is not None else {}))
            continue
        rows[sid] += len(page)
        if sid in open_records:
            yield from arrow_page(open_records[sid].saw(page), items_key, "sid", sid, types)
        else:
            yield page


@dlt.resource(write_disposition="merge", primary_key="sid", columns=column_hints(CALL_TYPES))
def calls(clients, window: _Window, pending: Mapping[str, list[str]]) -> Iterator:
    yield from _collect(clients, window, f"/{API_VERSION}/Accounts/{{sid}}/Calls.json", "calls",
                        lambda start, end: {"StartTime>": start.isoformat(), "StartTime<": end.isoformat()}, pending,
                        CALL_TYPES)


@dlt.resource(write_disposition="merge", primary_key="sid", columns=column_hints(MESSAGE_TYPES))
def messages(clients, window: _Window, pending: Mapping[str, list[str]]) -> Iterator:
    yield from _collect(clients, window, f"/{API_VERSION}/Accounts/{{sid}}/Messages.json", "messages",
                        lambda start, end: {"DateSent>": start.isoformat(), "DateSent<": end.isoformat()}, pending,
                        MESSAGE_TYPES)


@dlt.resource(write_disposition="merge", primary_key=("account_sid", "category", "start_date", "end_date"),
              columns=column_hints(USAGE_RECORD_TYPES))
def usage_records(clients, window: _Window) -> Iterator[list[dict]]:
    """Daily records per account; subaccounts are excluded here because they are listed on their own."""
    yield from _collect(clients, window, f"/{API_VERSION}/Accounts/{{sid}}/Usage/Records/Daily.json",
                        "usage_records", lambda start, end: {"StartDate": start.isoformat(),
                                                             "EndDate": (end - timedelta(days=1)).isoformat(),
                                                             "IncludeSubaccounts": "false"})
