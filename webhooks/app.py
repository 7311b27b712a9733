"""The webhook receiver: POST /webhooks/retell and POST /webhooks/twilio.

    oversized body              413, nothing stored
    bad or missing signature    401 (Retell) / 403 (Twilio), nothing stored
    malformed body              400, nothing stored
    signed but unstorable       422, kept verbatim in raw_webhooks.dead_letters: PostgreSQL cannot hold it
                                (NaN, Infinity, \\u0000, an unpaired surrogate, NUL) or refused its row
    valid delivery              200 once committed to raw_webhooks; a replay is 200 and stored once
    storage unavailable         503, the provider retries

Every response, whatever produced it, is counted by route and status at GET /healthz.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import traceback
from collections import Counter
from collections.abc import Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from billing_usage.signatures import (
    TWILIO_SIGNATURE_SETTINGS_HEADER,
    grouped_params,
    twilio_signature_settings,
    verify_retell,
    verify_twilio,
)
from webhooks.landing import LandingWriter, RefusedByDatabase, StorageUnavailable
from webhooks.settings import WebhookSettings

logger = logging.getLogger(__name__)

UNSTORABLE = 422
ROUTE_NAMES = {"/webhooks/retell": "retell", "/webhooks/twilio": "twilio", "/healthz": "healthz"}
TWILIO_IDENTITY = ("MessageSid", "CallSid", "AccountSid")
# PostgreSQL's numeric holds 131,072 digits before the point and 16,383 after: a literal of at most
# 1,000 characters with an exponent of at most ±1,000 always fits.
MAX_NUMBER_CHARACTERS = MAX_EXPONENT = 1000
# The only way JSON text decoded from UTF-8 yields NUL or a surrogate is a \u escape.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


class Rejected(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:
        raise Rejected(413, "body too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(413, "body too large")
    return bytes(body)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(400, "body is not UTF-8") from exc


def _refuse_constant(name: str):
    raise Rejected(UNSTORABLE, f"{name} cannot be stored in PostgreSQL jsonb")


def _storable_float(literal: str) -> float:
    _, _, exponent = literal.lower().partition("e")
    if len(literal) > MAX_NUMBER_CHARACTERS or (exponent and abs(int(exponent)) > MAX_EXPONENT):
        raise Rejected(UNSTORABLE, "a number beyond PostgreSQL's numeric range")
    return float(literal)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_storable_float)


def _has_unstorable_character(value) -> bool:
    """Any key or string holding NUL or an unpaired surrogate, walked without recursion."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE_CHARACTER.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _json(text: str):
    """The parsed body; 422 for what PostgreSQL's jsonb refuses and Python's json accepts."""
    try:
        value = _DECODER.decode(text)
    except RecursionError as exc:
        raise Rejected(400, "JSON nested too deeply") from exc
    except ValueError as exc:
        raise Rejected(400, "body is not JSON") from exc
    if _SUSPECT_ESCAPE.search(text) and _has_unstorable_character(value):
        raise Rejected(UNSTORABLE, "\\u0000 or an unpaired surrogate cannot be stored in PostgreSQL")
    return value


def retell_row(body: bytes, headers: Mapping[str, str], settings: WebhookSettings) -> tuple:
    text = _text(body)
    signature = headers.get("x-retell-signature", "")
    if not any(verify_retell(text, key, signature) for key in settings.retell_api_keys):
        raise Rejected(401, "bad or missing x-retell-signature")
    payload = _json(text)
    call = payload.get("call") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str) or not isinstance(call, dict) \
            or not isinstance(call.get("call_id"), str) or not call["call_id"]:
        raise Rejected(400, "expected {\"event\": ..., \"call\": {\"call_id\": ...}}")
    return (hashlib.sha256(body).hexdigest(), payload["event"], call["call_id"], text)


def _twilio_secrets(headers: Mapping[str, str], settings: WebhookSettings) -> tuple[tuple[str, ...], str]:
    """The secrets that may have signed this request, and the algorithm: a SharedKey named in the
    signature settings header, else the auth tokens."""
    key_id, algorithm = twilio_signature_settings(headers.get(TWILIO_SIGNATURE_SETTINGS_HEADER))
    secrets = settings.twilio_shared_key_secrets(key_id) if key_id else settings.twilio_auth_tokens
    return secrets, algorithm


def _twilio_form(text: str, pairs: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """The params to store (a name sent once keeps its value, a repeated one all its values in order)
    and each name's last value."""
    if "%00" in text or "\x00" in text:  # the only ways a form value or name holds NUL
        raise Rejected(UNSTORABLE, "a NUL character (%00) cannot be stored in PostgreSQL")
    last = dict(pairs)
    if len(last) == len(pairs):  # no name repeated
        return json.dumps(last), last
    grouped = grouped_params(pairs)
    for name in TWILIO_IDENTITY:
        if len(set(grouped.get(name, ()))) > 1:
            raise Rejected(400, f"{name} repeated with different values")
    return json.dumps({name: values[0] if len(values) == 1 else values for name, values in grouped.items()}), last


def _string(fields: dict, name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise Rejected(400, f"{name} must be a string")
    return value


def twilio_row(body: bytes, headers: Mapping[str, str], url: str, settings: WebhookSettings) -> tuple:
    text = _text(body)
    is_json = headers.get("content-type", "").startswith("application/json")
    pairs = parse_qsl(text, keep_blank_values=True) if not is_json else None
    secrets, algorithm = _twilio_secrets(headers, settings)
    signature = headers.get("x-twilio-signature", "")
    if not any(verify_twilio(url, text if is_json else pairs, signature, secret, algorithm) for secret in secrets):
        raise Rejected(403, "bad or missing X-Twilio-Signature")
    if is_json:
        params, fields = text, _json(text)
        if not isinstance(fields, dict):
            raise Rejected(400, "expected an object of callback parameters")
    else:
        params, fields = _twilio_form(text, pairs)
    message_sid, call_sid, account_sid = (_string(fields, name) for name in TWILIO_IDENTITY)
    if message_sid:
        resource, sid, status = "message", message_sid, _string(fields, "MessageStatus")
    elif call_sid:
        resource, sid, status = "call", call_sid, _string(fields, "CallStatus")
    else:
        raise Rejected(400, "neither CallSid nor MessageSid")
    if not account_sid:
        raise Rejected(400, "AccountSid missing")
    return (hashlib.sha256(body).hexdigest(), resource, sid, account_sid, status, params)


def _public_url(request: Request, settings: WebhookSettings) -> str:
    """The exact URL the provider signed: the configured public base, or what this server saw."""
    if settings.public_url:
        query = f"?{request.url.query}" if request.url.query else ""
        return settings.public_url.rstrip("/") + request.url.path + query
    return str(request.url)


def _where(exc: BaseException) -> str:
    """Exception class and the line that raised it: never the message, which may quote a payload."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"


class CountResponses:
    """Counts every response by route and status; an unexpected exception becomes a counted JSON 500."""

    def __init__(self, app, counts: Counter):
        self.app, self.counts = app, counts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = ROUTE_NAMES.get(scope["path"], "other")
        status = None

        async def send_counted(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.counts[f"{route}:{status}"] += 1
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except Exception as exc:  # noqa: BLE001 - the server keeps serving; the sender gets a 500
            logger.error("webhook %s: unexpected %s", route, _where(exc))
            if status is None:
                await JSONResponse({"error": "internal error"}, status_code=500)(scope, receive, send_counted)


def create_app(settings: WebhookSettings, connect) -> Starlette:
    """`connect` opens a psycopg2 connection to the warehouse."""
    writer = LandingWriter(connect)
    outcomes: Counter[str] = Counter()
    responses: Counter[str] = Counter()

    def rejected_response(provider: str, status: int, reason: str) -> JSONResponse:
        outcomes[f"{provider}:rejected:{status}"] += 1
        logger.warning("webhook %s rejected (%d): %s", provider, status, reason)
        return JSONResponse({"error": reason}, status_code=status)

    async def receive(request: Request, provider: str) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        try:
            body = await _body(request, settings.max_body_bytes)
            try:
                if provider == "retell":
                    row = retell_row(body, request.headers, settings)
                else:
                    row = twilio_row(body, request.headers, _public_url(request, settings), settings)
            except Rejected as rejected:
                if rejected.status == UNSTORABLE:  # signed, so kept
                    await writer.dead_letter(provider, rejected.reason, body, content_type)
                raise
            new = await writer.write(provider, row, body, content_type)
        except Rejected as rejected:
            return rejected_response(provider, rejected.status, rejected.reason)
        except RefusedByDatabase as refused:  # already a dead letter
            return rejected_response(provider, UNSTORABLE, refused.reason)
        except StorageUnavailable:
            outcomes[f"{provider}:unavailable"] += 1
            return JSONResponse({"error": "storage unavailable, retry later"}, status_code=503)
        outcomes[f"{provider}:{'stored' if new else 'duplicate'}"] += 1
        return JSONResponse({"status": "stored" if new else "duplicate"})

    async def retell(request: Request) -> JSONResponse:
        return await receive(request, "retell")

    async def twilio(request: Request) -> JSONResponse:
        return await receive(request, "twilio")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "outcomes": dict(outcomes), "responses": dict(responses),
                             "batches": writer.batches})

    @asynccontextmanager
    async def lifespan(app):
        await writer.start()
        yield
        await writer.stop()

    return Starlette(routes=[
        Route("/webhooks/retell", retell, methods=["POST"]),
        Route("/webhooks/twilio", twilio, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ], middleware=[Middleware(CountResponses, counts=responses)], lifespan=lifespan)
