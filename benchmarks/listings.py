"""The list requests a collection makes, paged with plain `requests`: the workload the collection benchmark times.

The same requests as the collectors (dlt_sources) send for their windows at a given business time: Retell
list-calls from the workspace's window start, oldest first; Twilio's accounts, then each (sub)account's Calls,
Messages and daily Usage Records for its day window, ten requests at most at once; OpenRouter keys and each key's
activity. A `Reader` decides what a page costs the client: count its records and find the next page by a cheap
scan of the raw body (the server's own limit), or parse it (the bare limit).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import orjson
import requests

from dlt_sources.openrouter.settings import KEYS_PAGE_SIZE
from dlt_sources.retell.settings import DEFAULT_INITIAL_DAYS as RETELL_INITIAL_DAYS
from dlt_sources.retell.settings import DEFAULT_LOOKBACK_HOURS, LIST_CALLS_PATH
from dlt_sources.retell.settings import PAGE_SIZE as RETELL_PAGE_SIZE
from dlt_sources.twilio.helpers import pages_in_parallel
from dlt_sources.twilio.settings import API_VERSION, MAX_CONCURRENCY
from dlt_sources.twilio.settings import DEFAULT_INITIAL_DAYS as TWILIO_INITIAL_DAYS
from dlt_sources.twilio.settings import PAGE_SIZE as TWILIO_PAGE_SIZE
from sandbox.config import SandboxConfig

TIMEOUT = 300
# One marker per record in each listing's raw body (present in damaged records too), for counting without parsing.
MARKERS = {"items": b'"data_storage_setting":', "calls": b'"queue_time":', "messages": b'"num_media":',
           "usage_records": b'"count_unit":', "data": b'"model_permaslug":'}
NEXT = {"items": re.compile(rb'"pagination_key":(null|"[^"]*")'),
        "default": re.compile(rb'"next_page_uri":(null|"[^"]*")')}

# (body, items key) -> (what the consumer keeps of the page, number of records, the next page's reference or None)
Reader = Callable[[bytes, str], tuple[object, int, str | None]]


def scan(body: bytes, items_key: str) -> tuple[None, int, str | None]:
    """The server's own limit: count the records and find the next page without parsing the body."""
    found = NEXT.get(items_key, NEXT["default"]).findall(body[-8192:])
    reference = found[-1] if found else b"null"
    return None, body.count(MARKERS[items_key]), None if reference == b"null" else reference[1:-1].decode()


def parse(body: bytes, items_key: str) -> tuple[list[dict], int, str | None]:
    """The bare limit: parse the page (orjson) and take its items."""
    page = orjson.loads(body)
    items = page[items_key]
    reference = page.get("pagination_key") if items_key == "items" else page.get("next_page_uri")
    return items, len(items), reference


@dataclass(frozen=True)
class Collection:
    """The sandbox to collect from, and the business time of the run (BILLING_USAGE_NOW)."""

    base_url: str
    config: SandboxConfig
    now: datetime

    @property
    def today(self) -> date:
        return self.now.date()

    def retell_start_ms(self) -> int:
        """A first run's window: initial_days back from the run's start, minus the look-back (dlt_sources.retell)."""
        run_started_ms = int(self.now.timestamp() * 1000)
        return run_started_ms - RETELL_INITIAL_DAYS * 86_400_000 - DEFAULT_LOOKBACK_HOURS * 3_600_000

    def twilio_days(self) -> tuple[date, date]:
        return self.today - timedelta(days=TWILIO_INITIAL_DAYS), self.today + timedelta(days=1)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=MAX_CONCURRENCY))
        return session


def retell_pages(collection: Collection, read: Reader, workspace: int = 0) -> Iterator[tuple[str, object, int]]:
    """("retell_calls", kept, records) per page of list-calls, as dlt_sources.retell.helpers.call_pages asks."""
    session = collection.session()
    headers = {"Authorization": f"Bearer {collection.config.retell_api_key(workspace)}"}
    body: dict = {"filter_criteria": {"start_timestamp": {"op": "ge", "type": "number",
                                                          "value": collection.retell_start_ms()}},
                  "sort_order": "ascending", "limit": RETELL_PAGE_SIZE}
    url = f"{collection.base_url}/retell{LIST_CALLS_PATH}"
    while True:
        response = session.post(url, data=orjson.dumps(body), headers={**headers, "Content-Type": "application/json"},
                                timeout=TIMEOUT)
        response.raise_for_status()
        kept, count, key = read(response.content, "items")
        yield "retell_calls", kept, count
        if not key:
            return
        body["pagination_key"] = key


def _twilio_auth(config: SandboxConfig) -> str:
    token = base64.b64encode(f"{config.twilio_account_sid}:{config.twilio_auth_token}".encode()).decode()
    return f"Basic {token}"


def _twilio_list(session: requests.Session, collection: Collection, path: str, items_key: str, params: dict,
                 read: Reader) -> Iterator[tuple[object, int]]:
    headers = {"Authorization": _twilio_auth(collection.config)}
    url, query = f"{collection.base_url}/twilio{path}", {**params, "PageSize": TWILIO_PAGE_SIZE}
    while url:
        response = session.get(url, params=query, headers=headers, timeout=TIMEOUT)
        response.raise_for_status()
        kept, count, next_uri = read(response.content, items_key)
        yield kept, count
        url, query = (f"{collection.base_url}/twilio{next_uri}", None) if next_uri else (None, None)


def twilio_jobs(collection: Collection, read: Reader) -> dict[str, Callable[[], Iterator[tuple[object, int]]]]:
    """One job per (sub)account and listing, as dlt_sources.twilio collects them (the master's own listings
    included); the account list is read here."""
    session = collection.session()
    master = collection.config.twilio_account_sid
    sids = [master]
    for page, _ in _twilio_list(session, collection, f"/{API_VERSION}/Accounts.json", "accounts", {}, parse):
        sids += [a["sid"] for a in page if a["sid"] != master and a.get("owner_account_sid") == master]
    start, end = (day.isoformat() for day in collection.twilio_days())
    last = (collection.twilio_days()[1] - timedelta(days=1)).isoformat()
    listings = {
        "twilio_calls": ("Calls", "calls", {"StartTime>": start, "StartTime<": end}),
        "twilio_messages": ("Messages", "messages", {"DateSent>": start, "DateSent<": end}),
        "twilio_usage_records": ("Usage/Records/Daily", "usage_records",
                                 {"StartDate": start, "EndDate": last, "IncludeSubaccounts": "false"}),
    }
    jobs = {}
    for sid in sids:
        for kind, (resource, items_key, params) in listings.items():
            path = f"/{API_VERSION}/Accounts/{sid}/{resource}.json"
            jobs[f"{kind}:{sid}"] = (lambda p=path, k=items_key, q=params:
                                     _twilio_list(session, collection, p, k, q, read))
    return jobs


def twilio_pages(collection: Collection, read: Reader,
                 workers: int = MAX_CONCURRENCY) -> Iterator[tuple[str, object, int]]:
    """(kind, kept, records) per page of every Twilio job, `workers` jobs at once, as pages arrive."""
    for name, page in pages_in_parallel(twilio_jobs(collection, read), workers):
        if page is not None:
            kept, count = page
            yield name.split(":", 1)[0], kept, count


def openrouter_pages(collection: Collection, read: Reader) -> Iterator[tuple[str, object, int]]:
    """The keys, then each key's /activity (one page each)."""
    session = collection.session()
    headers = {"Authorization": f"Bearer {collection.config.openrouter_management_key}"}
    base = f"{collection.base_url}/openrouter/api/v1"
    offset, hashes = 0, []
    while True:
        response = session.get(f"{base}/keys", params={"include_disabled": "true", "offset": offset},
                               headers=headers, timeout=TIMEOUT)
        response.raise_for_status()
        keys = orjson.loads(response.content)["data"]
        hashes += [key["hash"] for key in keys]
        if len(keys) < KEYS_PAGE_SIZE:
            break
        offset += KEYS_PAGE_SIZE
    for key_hash in hashes:
        response = session.get(f"{base}/activity", params={"api_key_hash": key_hash}, headers=headers,
                               timeout=TIMEOUT)
        response.raise_for_status()
        kept, count, _ = read(response.content, "data")
        yield "openrouter_activity", kept, count
