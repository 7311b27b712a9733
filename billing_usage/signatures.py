"""Webhook signatures exactly as the official Retell and Twilio SDKs compute and verify them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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


def grouped_params(params: Params) -> dict[str, list[str]]:
    items = params.items() if isinstance(params, Mapping) else params
    grouped: dict[str, list[str]] = {}
    for name, value in items:
        grouped.setdefault(name, []).append(value)
    return grouped


# Twilio signs with the account's Auth Token (HMAC-SHA1) or, when the request carries
# `X-Twilio-Webhooks-Signature-Settings: key=<SharedKey id>,algorithm=<algorithm>`, with that SharedKey's
# secret; the signature itself is in `X-Twilio-Signature` either way.
TWILIO_SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
HMAC_SHA1, HMAC_SHA256 = "HMAC_SHA1", "HMAC_SHA256"
_TWILIO_HASHES = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}


@dataclass(frozen=True)
class TwilioSharedKey:
    """A Twilio webhooks SharedKey: its id (the `key=` of the settings header) and its signing secret."""
    id: str
    secret: str = field(repr=False)


def twilio_signature_settings(header: str | None) -> tuple[str | None, str]:
    """(SharedKey id, algorithm) from the settings header; without `algorithm=` it is HMAC_SHA1, as in the SDK."""
    named: dict[str, str] = {}
    for part in (header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and value.strip():
            named.setdefault(name.strip(), value.strip())
    return named.get("key"), named.get("algorithm", HMAC_SHA1)


def twilio_signature_settings_header(key_id: str, algorithm: str = HMAC_SHA256) -> str:
    return f"key={key_id},algorithm={algorithm}"


def twilio_signature(url: str, params: Params, secret: str, algorithm: str = HMAC_SHA1) -> str:
    """`X-Twilio-Signature`: HMAC over the URL plus each sorted name and its sorted unique values."""
    signed = url
    for name, values in sorted(grouped_params(params).items()):
        for value in sorted(set(values)):
            signed += name + value
    mac = hmac.new(secret.encode(), signed.encode(), _TWILIO_HASHES[algorithm.upper()])
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


def verify_twilio(url: str, params: Params | str, signature: str, secret: str, algorithm: str = HMAC_SHA1) -> bool:
    """Form callbacks pass their parameters; JSON callbacks pass the raw body string.
    An algorithm other than HMAC_SHA1 or HMAC_SHA256 never verifies."""
    if algorithm.upper() not in _TWILIO_HASHES:
        return False
    body_ok = True
    if isinstance(params, str):
        expected_hash = parse_qs(urlparse(url).query).get("bodySHA256", [None])[0]
        body_ok = expected_hash is not None and hmac.compare_digest(twilio_body_hash(params), expected_hash)
        params = {}
    candidates = (twilio_signature(_without_port(url), params, secret, algorithm),
                  twilio_signature(_with_port(url), params, secret, algorithm))
    signature_ok = any(hmac.compare_digest(candidate, signature or "") for candidate in candidates)
    return body_ok and signature_ok
