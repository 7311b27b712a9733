"""Webhook signatures exactly as the official Retell and Twilio SDKs compute and verify them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlparse

RETELL_TOLERANCE_MS = 5 * 60 * 1000
_RETELL_HEADER = re.compile(r"v=(\d+),d=([0-9a-f]{64})")


def retell_signature(body: str, api_key: str, timestamp_ms: int | None = None) -> str:
    """The `x-retell-signature` header value for `body`."""
    timestamp_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    digest = hmac.new(api_key.encode(), (body + str(timestamp_ms)).encode(), hashlib.sha256).hexdigest()
    return f"v={timestamp_ms},d={digest}"


def verify_retell(body: str, api_key: str, header: str, now_ms: int | None = None,
                  tolerance_ms: int = RETELL_TOLERANCE_MS) -> bool:
    match = _RETELL_HEADER.fullmatch(header or "")
    if not match:
        return False
    posted_at, posted_digest = int(match.group(1)), match.group(2)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now_ms - posted_at) > tolerance_ms:
        return False
    expected = hmac.new(api_key.encode(), (body + str(posted_at)).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, posted_digest)


Params = Mapping[str, str] | Iterable[tuple[str, str]]


def _grouped(params: Params) -> dict[str, list[str]]:
    items = params.items() if isinstance(params, Mapping) else params
    grouped: dict[str, list[str]] = {}
    for name, value in items:
        grouped.setdefault(name, []).append(value)
    return grouped


def twilio_signature(url: str, params: Params, auth_token: str) -> str:
    """`X-Twilio-Signature`: HMAC-SHA1 over the URL plus each sorted name and its sorted unique values."""
    signed = url
    for name, values in sorted(_grouped(params).items()):
        for value in sorted(set(values)):
            signed += name + value
    mac = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode().strip()


def twilio_body_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _with_port(url: str) -> str:
    parsed = urlparse(url)
    if parsed.port:
        return url
    port = 443 if parsed.scheme == "https" else 80
    return parsed._replace(netloc=f"{parsed.netloc}:{port}").geturl()


def _without_port(url: str) -> str:
    parsed = urlparse(url)
    return parsed._replace(netloc=parsed.netloc.split(":")[0]).geturl() if parsed.port else url


def verify_twilio(url: str, params: Params | str, signature: str, auth_token: str) -> bool:
    """Form callbacks pass their parameters; JSON callbacks pass the raw body string."""
    body_ok = True
    if isinstance(params, str):
        expected_hash = parse_qs(urlparse(url).query).get("bodySHA256", [None])[0]
        body_ok = expected_hash is not None and hmac.compare_digest(twilio_body_hash(params), expected_hash)
        params = {}
    candidates = (twilio_signature(_without_port(url), params, auth_token),
                  twilio_signature(_with_port(url), params, auth_token))
    signature_ok = any(hmac.compare_digest(candidate, signature or "") for candidate in candidates)
    return body_ok and signature_ok
