"""Objects that can still change (a price or cost not settled), fetched again by id.

A regular run lists only what started since its cursor, less a short overlap; objects listed earlier
change only while their price is open. So each run fetches again, one by one and into the same resource
(same table, same primary key), the ids that its listing did not return and that are still open:
- those it saw itself without a final price (kept in the account's state, see OpenObjects), so a price
  settles with the next run whether or not a model build ran in between;
- those the warehouse still holds as pending (given by the Dagster asset from `fct_usage_events`).
By-id fetches never move a cursor; a backfill makes none.

    resource_state["accounts"][<account>] also holds, for resources that take pending ids:
        "open": {id: the day it was first seen unsettled}, "open_dropped_last_run": ids dropped from it
        after OPEN_MAX_AGE_DAYS, "refetched_last_run": objects fetched by id, "settled_last_run": how many
        of them are now settled, "not_found_last_run": how many ids the provider answered 404 for
        (deleted, or not visible to us), "not_found_ids_last_run": those ids,
    and resource_state["pending_skipped_last_run"] lists ids whose account this run does not collect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import dlt

from dlt_sources.http_client import ProviderClient, ProviderError

logger = logging.getLogger(__name__)

BATCH_SIZE = 100  # objects fetched by id per yielded page
NOT_FOUND = 404
OPEN_MAX_AGE_DAYS = 35  # the models' var pending_max_age_days: older, an unpriced object is expired


class OpenObjects:
    """The ids of one account last seen unsettled, each with the day it was first seen so. They live in
    the account's state, which commits with the load that saw them."""

    def __init__(self, account_state: dict, today: date, key: str, is_settled: Callable[[dict], bool]):
        self.ids: dict[str, str] = account_state.setdefault("open", {})
        self.state, self.today, self.key, self.is_settled = account_state, today.isoformat(), key, is_settled

    def to_fetch(self, pending: Iterable[str] = ()) -> list[str]:
        """The open ids, less those first seen more than OPEN_MAX_AGE_DAYS ago (dropped, and counted), then
        the `pending` ids the warehouse gave, each once."""
        oldest = (date.fromisoformat(self.today) - timedelta(days=OPEN_MAX_AGE_DAYS)).isoformat()
        dropped = [object_id for object_id, seen in self.ids.items() if seen < oldest]
        for object_id in dropped:
            del self.ids[object_id]
        self.state["open_dropped_last_run"] = len(dropped)
        return list(dict.fromkeys([*self.ids, *pending]))

    def saw(self, page: list[dict]) -> list[dict]:
        for record in page:
            object_id = record.get(self.key)
            if not isinstance(object_id, str):
                continue
            if self.is_settled(record):
                self.ids.pop(object_id, None)
            else:
                self.ids.setdefault(object_id, self.today)
        return page

    def forget(self, not_found: Iterable[str]) -> None:
        for object_id in not_found:
            self.ids.pop(object_id, None)


@dataclass
class Refetched:
    """One account's by-id fetches in one run."""

    fetched: int = 0
    settled: int = 0
    not_found: list[str] = field(default_factory=list)

    def state(self) -> dict:
        return {"refetched_last_run": self.fetched, "settled_last_run": self.settled,
                "not_found_last_run": len(self.not_found), "not_found_ids_last_run": self.not_found}


def fetched_by_id(client: ProviderClient, paths: Mapping[str, str], is_settled: Callable[[dict], bool],
                  tally: Refetched, batch_size: int = BATCH_SIZE) -> Iterator[list[dict]]:
    """Pages of the objects at `paths` (id -> path), fetched one by one. A 404 is counted in `tally`,
    not raised: the object is gone or hidden, and a run must not fail on it forever."""
    batch: list[dict] = []
    for object_id, path in paths.items():
        try:
            found = client.get(path)
        except ProviderError as error:
            if error.status != NOT_FOUND:
                raise
            tally.not_found.append(object_id)
            continue
        tally.fetched += 1
        tally.settled += is_settled(found)
        batch.append(found)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
    if tally.not_found:
        logger.warning("%s account %s: %d pending object(s) not found (deleted or not visible): %s%s",
                       client.provider, client.account, len(tally.not_found), ", ".join(tally.not_found[:10]),
                       " ..." if len(tally.not_found) > 10 else "")


def record_skipped(provider: str, skipped: list[str]) -> None:
    """Pending ids of accounts this run does not collect: logged, and kept in the resource's state."""
    dlt.current.resource_state()["pending_skipped_last_run"] = skipped
    if skipped:
        logger.warning("%s: %d pending object(s) of accounts not collected were skipped: %s%s", provider,
                       len(skipped), ", ".join(skipped[:10]), " ..." if len(skipped) > 10 else "")
