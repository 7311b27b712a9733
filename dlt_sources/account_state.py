"""Per-account collector state kept in dlt resource state, so it commits with the data it describes.

    resource_state["accounts"][<account>] = {
        "cursor": ..., "last_success_at": ..., "rows_last_run": ..., "requests_last_run": ...,
        "retries_last_run": ..., "warning": ... (e.g. days that can no longer be collected),
        "load_id": the load package that wrote this, so a run can tell the accounts it collected,
        and, where pending objects are fetched again by id (dlt_sources.pending): "refetched_last_run",
        "settled_last_run", "not_found_last_run", "not_found_ids_last_run"
    }

rows_last_run counts every row the account yielded, by-id fetches included; requests and retries count
every request made for the account.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import dlt

from dlt_sources.http_client import RequestStats


def account_state(account: str) -> dict:
    return dlt.current.resource_state().setdefault("accounts", {}).setdefault(account, {})


def counted(pages: Iterable[list[dict]], counter: list[int]) -> Iterator[list[dict]]:
    """Pass pages through, adding their sizes to counter[0]."""
    for page in pages:
        counter[0] += len(page)
        yield page


def record_success(account: str, cursor: object, rows: int, requests: RequestStats, **extra: object) -> None:
    """Called after an account's pages were all yielded; the state commits only if the load does."""
    account_state(account).update(
        cursor=cursor,
        last_success_at=datetime.now(UTC).isoformat(),
        rows_last_run=rows,
        requests_last_run=requests.requests,
        retries_last_run=requests.retries,
        load_id=dlt.current.load_package_state()["load_id"],
        **extra,
    )
