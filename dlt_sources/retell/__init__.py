"""Retell AI calls, from POST /v3/list-calls, for one or more workspaces; calls still pending, by id."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import dlt
from dlt.sources import DltResource
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth

from billing_usage.settings import utc_now
from dlt_sources.account_state import account_state, counted, record_success
from dlt_sources.backfill import Backfill
from dlt_sources.columnar import arrow_page, column_hints
from dlt_sources.http_client import DEFAULT_BACKOFF_SECONDS, DEFAULT_MAX_ATTEMPTS, ProviderClient, http_options
from dlt_sources.pending import OpenObjects, Refetched, fetched_by_id, record_skipped
from dlt_sources.retell.helpers import call_pages, get_call_path, has_final_cost
from dlt_sources.retell.settings import (
    CALL_TYPES,
    DEFAULT_INITIAL_DAYS,
    DEFAULT_LOOKBACK_HOURS,
    REQUEST_TIMEOUT_SECONDS,
    RETELL_API_BASE,
)


@dlt.source(name="retell", max_table_nesting=0)
def retell_source(
    workspaces: Sequence[dict] = dlt.secrets.value,
    base_url: str = RETELL_API_BASE,
    lookback_hours: int = DEFAULT_LOOKBACK_HOURS,
    initial_days: int = DEFAULT_INITIAL_DAYS,
    request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    backfill_start: str | None = None,
    backfill_end: str | None = None,
    pending_calls: Sequence[dict] = (),
) -> Sequence[DltResource]:
    """`workspaces`: [{"name": "main", "api_key": "key_..."}, ...]; `backfill_*`: days to re-collect;
    `pending_calls`: [{"workspace": "main", "call_id": "call_..."}, ...], calls the warehouse still holds
    without a final cost, fetched again by id (see dlt_sources.pending). A backfill ignores them."""
    http = http_options(request_timeout, max_attempts, backoff_seconds)
    clients = [ProviderClient("retell", base_url, account=w["name"], auth=BearerTokenAuth(token=w["api_key"]), **http)
               for w in workspaces]
    backfill = Backfill.of(backfill_start, backfill_end)
    pending = {} if backfill else _by_workspace(pending_calls)
    return [calls(clients, lookback_hours, initial_days, backfill, pending)]


def _by_workspace(pending_calls: Iterable[dict]) -> dict[str, list[str]]:
    """workspace -> its pending call ids, each once, in the order given."""
    grouped: dict[str, dict[str, None]] = {}
    for call in pending_calls:
        grouped.setdefault(call["workspace"], {})[call["call_id"]] = None
    return {workspace: list(ids) for workspace, ids in grouped.items()}


@dlt.resource(
    write_disposition="merge",
    primary_key="call_id",
    columns=column_hints(CALL_TYPES),
)
def calls(clients: list[ProviderClient], lookback_hours: int, initial_days: int, backfill: Backfill | None,
          pending: Mapping[str, list[str]]) -> Iterator:
    """Every call of each workspace that started since its cursor minus the look-back, or in the
    backfill window; then, by id, the calls that listing did not return and that can still change: those
    the workspace's last runs saw without a final cost, and its `pending` calls (see dlt_sources.pending).

    The cursor is the newest start_timestamp listed so far (never past the run's start: a clock ahead of
    ours cannot hide later calls); it is saved with the load, so a failed or killed run leaves it where
    it was. A backfill does not move it, nor do by-id fetches.
    """
    # Not dlt.sources.incremental: one cursor per workspace, and by-id fetches must not move it.
    names = {client.account for client in clients}
    record_skipped("retell", [call_id for workspace, ids in pending.items() if workspace not in names
                              for call_id in ids])
    for client in clients:
        name = client.account
        run_started_ms = int(utc_now().timestamp() * 1000)
        previous = account_state(name).get("cursor")
        if backfill:
            start_ms, end_ms = backfill.start_ms, backfill.end_ms
        else:
            start_ms = (previous or run_started_ms - initial_days * 86_400_000) - lookback_hours * 3_600_000
            end_ms = None
        before, rows, seen, refetched = client.stats.snapshot(), [0], set(), Refetched()
        open_calls = OpenObjects(account_state(name), utc_now().date(), "call_id", has_final_cost)
        newest = previous
        for page in counted(call_pages(client, start_ms, end_ms), rows):
            seen.update(call.get("call_id") for call in page)
            starts = [call["start_timestamp"] for call in page if isinstance(call.get("start_timestamp"), int)]
            newest = max([newest or 0, *(min(start, run_started_ms) for start in starts)]) or None
            yield from _of_workspace(open_calls.saw(page), name)
        cursor = previous if backfill else newest
        if not backfill:
            by_id = {call_id: get_call_path(call_id) for call_id in open_calls.to_fetch(pending.get(name, ()))
                     if call_id not in seen}
            for page in counted(fetched_by_id(client, by_id, has_final_cost, refetched), rows):
                yield from _of_workspace(open_calls.saw(page), name)
            open_calls.forget(refetched.not_found)
        record_success(name, cursor, rows[0], client.stats.since(before), **refetched.state())


def _of_workspace(page: list[dict], name: str) -> Iterator:
    for call in page:
        call["workspace"] = name
    return arrow_page(page, "calls", "call_id", name, CALL_TYPES)
