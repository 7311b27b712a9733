"""Objects the warehouse still holds as pending (a price or cost not settled), fetched again by id.

The look-back windows only re-read recent objects; a price that settles later than that would stay
null forever. So each regular run is also given the ids still pending, and fetches those its window
did not already return, one by one, into the same resource (same table, same primary key). By-id
fetches never move a cursor; a backfill ignores them.

    resource_state["accounts"][<account>] also holds, for resources that take pending ids:
        "refetched_last_run": objects fetched by id, "settled_last_run": how many of them are now settled,
        "not_found_last_run": how many ids the provider answered 404 for (deleted, or not visible to us),
        "not_found_ids_last_run": those ids,
    and resource_state["pending_skipped_last_run"] lists ids whose account this run does not collect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import dlt

from dlt_sources.http_client import ProviderClient, ProviderError

logger = logging.getLogger(__name__)

BATCH_SIZE = 100  # objects fetched by id per yielded page
NOT_FOUND = 404


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
