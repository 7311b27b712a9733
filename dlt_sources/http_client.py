"""HTTP for every provider: dlt's RESTClient on a session that retries with jittered backoff and
Retry-After, counts each account's requests, and fails with the provider's own error."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import NoReturn

from dlt.common import json as dlt_json
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.common.jsonpath import JSONPath, compile_path
from dlt.sources.helpers.requests.retry import DEFAULT_RETRY_EXCEPTIONS
from dlt.sources.helpers.requests.session import Session
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests import PreparedRequest, Response
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter
from requests.auth import AuthBase
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from dlt_sources.memory import arrow_on_system_allocator, limit_malloc_arenas

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


# dlt parses a JSON path given as a string again on every page (about 2 ms each): parse each path once.
json_path: Callable[[str], JSONPath] = cache(compile_path)


def http_options(timeout: float, max_attempts: int, backoff_seconds: float) -> dict:
    """ProviderClient keyword arguments from a source's configuration."""
    return {"timeout": timeout, "max_attempts": max_attempts, "backoff_base": backoff_seconds}


class ProviderError(RuntimeError):
    """A provider answered with an error we will not retry (or retried until we gave up)."""

    def __init__(self, provider: str, account: str, method: str, url: str, status: int | None, message: str,
                 code: object = None, response: Response | None = None):
        self.provider, self.account, self.status, self.code = provider, account, status, code
        self.provider_message = message
        self.response = response  # its headers say how long to wait before a retry
        where = f"{method} {url.split('?')[0]}"
        detail = f"HTTP {status}" + (f" code {code}" if code is not None else "") if status else "no response"
        super().__init__(f"{provider} account {account}: {where} failed ({detail}): {message}")


def provider_message(response: Response) -> tuple[str, object]:
    """The message and code from Retell, Twilio or OpenRouter error bodies."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason, None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message")), body["error"].get("code")
    if isinstance(body, dict):
        return str(body.get("message", body)), body.get("code")
    return str(body)[:300], None


def retry_after_seconds(response: Response | None) -> float:
    """What the provider asked us to wait: retry-after-ms (Retell's and OpenRouter's SDKs) or Retry-After."""
    if response is None:
        return 0.0
    if "retry-after-ms" in response.headers:
        return float(response.headers["retry-after-ms"]) / 1000
    if response.headers.get("retry-after", "").replace(".", "", 1).isdigit():
        return float(response.headers["retry-after"])
    return 0.0


class wait_jittered_or_retry_after(wait_random_exponential):  # noqa: N801 - named like tenacity's waits
    """Full-jitter exponential backoff, or longer when the provider says so."""

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception()
        return max(super().__call__(retry_state), retry_after_seconds(getattr(error, "response", None)))


def _parse_json(response: Response) -> object:
    """With dlt's JSON (orjson); what it refuses (NaN, integers beyond 64 bits) with the standard library's."""
    try:
        return dlt_json.loadb(response.content)
    except ValueError:
        return response.json()


def _retryable(error: BaseException) -> bool:
    return isinstance(error, DEFAULT_RETRY_EXCEPTIONS) or (
        isinstance(error, ProviderError) and error.status in RETRY_STATUSES)


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0

    def since(self, earlier: RequestStats) -> RequestStats:
        return RequestStats(self.requests - earlier.requests, self.retries - earlier.retries)

    def snapshot(self) -> RequestStats:
        return RequestStats(self.requests, self.retries)


@dataclass(frozen=True)
class _Shared:
    """What an account's client and its for_account() clients share."""

    adapter: HTTPAdapter  # the connection pool
    slots: threading.BoundedSemaphore | None  # the concurrency cap, held while a request is in flight
    dlt_config: RuntimeConfiguration  # resolved once


class ProviderClient:
    """One provider account: dlt's RESTClient on a retrying session. Auth never reaches messages or logs."""

    def __init__(self, provider: str, base_url: str, *, account: str, auth: AuthBase | None = None,
                 timeout: float = 60.0, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 backoff_base: float = DEFAULT_BACKOFF_SECONDS, backoff_max: float = BACKOFF_MAX_SECONDS,
                 max_concurrency: int | None = None, _shared: _Shared | None = None):
        limit_malloc_arenas()  # before this process's collector and loader threads allocate (dlt_sources.memory)
        arrow_on_system_allocator()
        self.provider = provider
        self.account = account
        self.stats = RequestStats()
        self._options = {"timeout": timeout, "max_attempts": max_attempts, "backoff_base": backoff_base,
                         "backoff_max": backoff_max}
        self._shared = _shared or _Shared(HTTPAdapter(pool_maxsize=max_concurrency or DEFAULT_POOLSIZE),
                                          threading.BoundedSemaphore(max_concurrency) if max_concurrency else None,
                                          resolve_configuration(RuntimeConfiguration()))
        session = Session(timeout=timeout, raise_for_status=False)
        session.mount("http://", self._shared.adapter)
        session.mount("https://", self._shared.adapter)
        # Not dlt's requests.Client: it neither jitters its backoff nor reads retry-after-ms nor counts per account.
        session.send = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(max_attempts),
            wait=wait_jittered_or_retry_after(multiplier=backoff_base, max=backoff_max),
            before=self._count_request,
            before_sleep=self._count_retry,
            retry_error_callback=self._give_up,
        ).wraps(self._in_slot(session.send))
        self.rest = RESTClient(base_url, auth=auth, session=session, config=self._shared.dlt_config)
        self._hooks = {"response": [self._check_response]}

    def for_account(self, account: str) -> ProviderClient:
        """A client for `account` with the same credentials, settings, connections and concurrency cap,
        counting from zero."""
        return ProviderClient(self.provider, self.rest.base_url, account=account, auth=self.rest.auth,
                              _shared=self._shared, **self._options)

    def paginate(self, path: str, paginator: BasePaginator, items_key: str, *, method: str = "GET",
                 params: dict | None = None, json: dict | None = None) -> Iterator[list[dict]]:
        """Pages of the items under `items_key`, as `paginator` follows them."""
        return self.rest.paginate(path, method=method, params=params, json=json, paginator=paginator,
                                  data_selector=json_path(items_key), hooks=self._hooks)

    def get(self, path: str, params: dict | None = None) -> dict:
        return self.rest.get(path, params=params, hooks=self._hooks).json()

    def _in_slot(self, send: Callable[..., Response]) -> Callable[..., Response]:
        slots = self._shared.slots
        if slots is None:
            return send

        def send_in_slot(request: PreparedRequest, **kwargs) -> Response:
            with slots:
                return send(request, **kwargs)

        return send_in_slot

    def _check_response(self, response: Response, *args, **kwargs) -> None:
        if not response.ok:
            message, code = provider_message(response)
            raise ProviderError(self.provider, self.account, response.request.method, response.url,
                                response.status_code, message, code, response)
        body = _parse_json(response)
        response.json = lambda **_: body  # dlt reads a page's body twice (items, then the paginator's cursor)

    def _count_request(self, retry_state: RetryCallState) -> None:
        self.stats.requests += 1

    def _count_retry(self, retry_state: RetryCallState) -> None:
        self.stats.retries += 1
        request: PreparedRequest = retry_state.args[0]
        error = retry_state.outcome.exception()
        failure = (f"HTTP {error.status}: {error.provider_message}" if isinstance(error, ProviderError)
                   else type(error).__name__)
        logger.warning("%s account %s: %s %s -> %s; retry %d in %.1fs", self.provider, self.account, request.method,
                       request.url.split("?")[0], failure, retry_state.attempt_number, retry_state.next_action.sleep)

    def _give_up(self, retry_state: RetryCallState) -> NoReturn:
        error = retry_state.outcome.exception()
        if isinstance(error, ProviderError):
            raise error
        request: PreparedRequest = retry_state.args[0]
        raise ProviderError(self.provider, self.account, request.method, request.url, None,
                            type(error).__name__) from None
