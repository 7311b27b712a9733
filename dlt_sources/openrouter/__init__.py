"""OpenRouter keys, per-key daily activity and credit snapshots (management key required)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import date, timedelta

import dlt
from dlt.sources import DltResource
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth

from billing_usage.settings import utc_now
from dlt_sources.account_state import account_state, record_success
from dlt_sources.backfill import Backfill
from dlt_sources.http_client import DEFAULT_BACKOFF_SECONDS, DEFAULT_MAX_ATTEMPTS, ProviderClient, http_options
from dlt_sources.openrouter.helpers import key_pages
from dlt_sources.openrouter.settings import (
    ACTIVITY_DAYS_AVAILABLE,
    DEFAULT_LOOKBACK_DAYS,
    OPENROUTER_API_BASE,
    REQUEST_TIMEOUT_SECONDS,
)

logger = logging.getLogger(__name__)


@dlt.source(name="openrouter", max_table_nesting=0)
def openrouter_source(
    accounts: Sequence[dict] = dlt.secrets.value,
    base_url: str = OPENROUTER_API_BASE,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    backfill_start: str | None = None,
    backfill_end: str | None = None,
) -> Sequence[DltResource]:
    """`accounts`: [{"name": "agency", "management_key": "sk-or-v1-..."}, ...]; `backfill_*`: UTC days
    [start, end) to collect again (only the last 30 days exist)."""
    http = http_options(request_timeout, max_attempts, backoff_seconds)
    clients = [ProviderClient("openrouter", base_url, account=a["name"],
                              auth=BearerTokenAuth(token=a["management_key"]), **http)
               for a in accounts]
    # one reading time (the business clock) for the keys' usage and the credits of this run: the readings
    # coverage compares our activity with (docs/checks-and-anomalies.md#coverage)
    fetched_at = utc_now().isoformat()
    return [keys(clients, fetched_at), activity(clients, lookback_days, Backfill.of(backfill_start, backfill_end)),
            credits(clients, fetched_at)]


@dlt.resource(write_disposition="merge", primary_key="hash",
              columns={"external_user": {"data_type": "text"}, "last_used_at": {"data_type": "text"}})
def keys(clients: list[ProviderClient], fetched_at: str) -> Iterator[list[dict]]:
    for client in clients:
        for page in key_pages(client):
            yield [{**key, "account": client.account, "fetched_at": fetched_at} for key in page]


def missed_days(last_day: date | None, oldest_available: date) -> int:
    """Completed days after `last_day` that /activity can no longer return."""
    return max(0, (oldest_available - last_day).days - 1) if last_day else 0


@dlt.resource(write_disposition="merge", primary_key=("date", "api_key_hash", "model_permaslug", "endpoint_id"))
def activity(clients: list[ProviderClient], lookback_days: int, backfill: Backfill | None) -> Iterator[list[dict]]:
    """Each key's completed days since its last loaded day, minus the look-back window (or the
    backfill's days, leaving the cursor alone).

    /activity reaches 30 completed days back only. Days lost beyond that cannot be recovered:
    they are logged as an error and kept as a warning in the key's collector state.
    """
    today = utc_now().date()
    yesterday, oldest_available = today - timedelta(days=1), today - timedelta(days=ACTIVITY_DAYS_AVAILABLE)
    # Not dlt.sources.incremental: one cursor per key, and days lost beyond /activity's 30 must be told apart.
    for client in clients:
        for key in (key for page in key_pages(client) for key in page):
            account = f"{client.account}/{key['hash'][:12]}"
            cursor = account_state(account).get("cursor")
            last_day = date.fromisoformat(cursor) if cursor else None
            start = max(oldest_available, last_day - timedelta(days=lookback_days)) if last_day else oldest_available
            end = today
            lost = missed_days(last_day, oldest_available)
            warning = None
            if backfill:
                start, end, lost = backfill.start, backfill.end, 0
                if backfill.start < oldest_available:
                    warning = f"/activity has no data before {oldest_available}: {backfill.start} .. was not collected"
                    logger.error("openrouter key %s (%s): %s", key.get("name"), account, warning)
            if lost:
                warning = (f"{lost} day(s) of activity after {last_day} are older than 30 days and were not "
                           f"collected: {last_day + timedelta(days=1)} .. {oldest_available - timedelta(days=1)}")
                logger.error("openrouter key %s (%s): %s", key.get("name"), account, warning)
            before = client.stats.snapshot()
            rows = client.get("/activity", params={"api_key_hash": key["hash"]})["data"]
            page = [{**row, "api_key_hash": key["hash"], "account": client.account}
                    for row in rows if start <= date.fromisoformat(row["date"]) < end]
            yield page
            record_success(account, cursor if backfill else yesterday.isoformat(), len(page),
                           client.stats.since(before), warning=warning)


@dlt.resource(write_disposition="append")
def credits(clients: list[ProviderClient], fetched_at: str) -> Iterator[dict]:
    for client in clients:
        yield {**client.get("/credits")["data"], "account": client.account, "fetched_at": fetched_at}
