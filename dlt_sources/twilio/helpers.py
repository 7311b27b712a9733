"""Twilio paging, account discovery, records fetched by sid, and subaccounts collected side by side."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlparse

from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator
from dlt.sources.helpers.rest_client.utils import join_url
from requests import Response

from dlt_sources.http_client import ProviderClient, json_path
from dlt_sources.pending import Refetched, fetched_by_id
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


def one_path(list_path: str, sid: str) -> str:
    """Fetch Call / Fetch Message: the list's path, then the record's sid (…/Calls/CA….json)."""
    return f"{list_path.removesuffix('.json')}/{quote(sid, safe='')}.json"


def is_priced(record: dict) -> bool:
    return record.get("price") is not None


def pages_then_pending(client: ProviderClient, path: str, items_key: str, params: dict,
                       pending_sids: Iterable[str], refetched: Refetched) -> Iterator[list[dict]]:
    """The window's pages of `path`, then, fetched by sid, the pending records the window did not return."""
    seen: set[str] = set()
    for page in pages(client, path, items_key, params):
        seen.update(record.get("sid") for record in page)
        yield page
    by_id = {sid: one_path(path, sid) for sid in pending_sids if sid not in seen}
    yield from fetched_by_id(client, by_id, is_priced, refetched)


def account_sids(client: ProviderClient, include_subaccounts: bool) -> list[str]:
    """The client's account itself and, if asked, every subaccount it owns."""
    master = client.account
    sids = [master]
    if include_subaccounts:
        for page in pages(client, f"/{API_VERSION}/Accounts.json", "accounts", {}):
            sids += [a["sid"] for a in page if a["sid"] != master and a.get("owner_account_sid") == master]
    return sids


def pages_in_parallel(jobs: dict[str, Callable[[], Iterable[list[dict]]]],
                      workers: int) -> Iterator[tuple[str, list[dict] | None]]:
    """Each job's pages, fetched by a pool of `workers` threads (so at most that many requests at once):
    (job, page) as pages arrive, then (job, None) when a job is done. A job's error is raised here. A worker
    asks for its next page only when fewer than `workers` pages are fetched or in flight and not yet taken by
    the consumer, so a slow consumer holds at most that many pages (a queue alone let each waiting worker hold
    one more)."""
    arrived: queue.Queue = queue.Queue()  # bounded by `room`
    room = threading.Semaphore(workers)
    stopped = threading.Event()

    def wait_for_room() -> bool:
        while not stopped.is_set():
            if room.acquire(timeout=0.1):
                return True
        return False

    def run(name: str, job: Callable[[], Iterable[list[dict]]]) -> None:
        try:
            pages = iter(job())
            while wait_for_room():
                try:
                    page = next(pages, None)
                except Exception:
                    room.release()
                    raise
                if page is None:
                    room.release()
                    arrived.put((name, None))
                    return
                arrived.put((name, page))  # the consumer gives the room back when it takes the page
        except Exception as error:  # noqa: BLE001 - raised again in the consumer
            arrived.put((name, error))

    pool = ThreadPoolExecutor(workers, thread_name_prefix="twilio")
    try:
        for name, job in jobs.items():
            pool.submit(run, name, job)
        unfinished = len(jobs)
        while unfinished:
            name, item = arrived.get()
            if isinstance(item, Exception):
                raise item
            if item is None:
                unfinished -= 1
            else:
                room.release()  # taken: a worker may fetch another page while this one is processed
            yield name, item
    finally:
        stopped.set()  # a consumer that stops early (an error, a closed generator) releases the workers
        pool.shutdown(wait=False, cancel_futures=True)
