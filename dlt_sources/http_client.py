"""HTTP for every provider: retries with backoff and jitter, Retry-After, a concurrency cap, clear errors."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

import requests

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_SECONDS = 0.5


def http_options(timeout: float, max_attempts: int, backoff_seconds: float, **extra) -> dict:
    """ProviderClient keyword arguments from a source's configuration."""
    return {"timeout": timeout, "max_attempts": max_attempts, "backoff_base": backoff_seconds, **extra}


class ProviderError(RuntimeError):
    """A provider answered with an error we will not retry (or retried until we gave up)."""

    def __init__(self, provider: str, account: str, method: str, url: str, status: int | None, message: str,
                 code: object = None):
        self.provider, self.account, self.status, self.code = provider, account, status, code
        self.provider_message = message
        where = f"{method} {url.split('?')[0]}"
        detail = f"HTTP {status}" + (f" code {code}" if code is not None else "") if status else "no response"
        super().__init__(f"{provider} account {account}: {where} failed ({detail}): {message}")


def provider_message(response: requests.Response) -> tuple[str, object]:
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


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0

    def since(self, earlier: RequestStats) -> RequestStats:
        return RequestStats(self.requests - earlier.requests, self.retries - earlier.retries)

    def snapshot(self) -> RequestStats:
        return RequestStats(self.requests, self.retries)


class ProviderClient:
    """A requests session for one provider account. Auth lives in the session, never in messages."""

    def __init__(self, provider: str, base_url: str, *, account: str, auth=None, headers: dict | None = None,
                 timeout: float = 60.0, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 backoff_base: float = DEFAULT_BACKOFF_SECONDS,
                 backoff_max: float = 30.0, max_concurrency: int | None = None):
        self.provider = provider
        self.account = account
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers.update(headers or {})
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._slots = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        self.stats = RequestStats()

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        computed = random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
        if response is not None:
            if "retry-after-ms" in response.headers:
                return max(computed, float(response.headers["retry-after-ms"]) / 1000)
            if response.headers.get("retry-after", "").replace(".", "", 1).isdigit():
                return max(computed, float(response.headers["retry-after"]))
        return computed

    def request(self, method: str, path: str, **kwargs) -> dict:
        url = path if path.startswith("http") else self.base_url + path
        for attempt in range(self.max_attempts):
            response = None
            self.stats.requests += 1
            try:
                if self._slots:
                    with self._slots:
                        response = self.session.request(method, url, timeout=self.timeout, **kwargs)
                else:
                    response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failure = f"{type(exc).__name__}"
                if attempt + 1 == self.max_attempts:
                    raise ProviderError(self.provider, self.account, method, url, None, failure) from None
            else:
                if response.ok:
                    return response.json()
                message, code = provider_message(response)
                if response.status_code not in RETRY_STATUSES or attempt + 1 == self.max_attempts:
                    raise ProviderError(self.provider, self.account, method, url, response.status_code, message, code)
                failure = f"HTTP {response.status_code}: {message}"
            self.stats.retries += 1
            delay = self._delay(attempt, response)
            logger.warning("%s account %s: %s %s -> %s; retry %d in %.1fs", self.provider, self.account, method,
                           url.split("?")[0], failure, attempt + 1, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def get(self, path: str, **kwargs) -> dict:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> dict:
        return self.request("POST", path, **kwargs)
