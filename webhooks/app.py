"""The webhook receiver: POST /webhooks/retell and POST /webhooks/twilio.

    oversized body              413, nothing stored
    bad or missing signature    401 (Retell) / 403 (Twilio), nothing stored
    malformed body              400, nothing stored
    valid delivery              200 once committed to raw_webhooks; a replay is 200 and stored once
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from webhooks.landing import LandingWriter
from webhooks.settings import WebhookSettings
from webhooks.signatures import verify_retell, verify_twilio

logger = logging.getLogger(__name__)


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


def retell_row(body: bytes, signature: str, settings: WebhookSettings) -> tuple:
    text = _text(body)
    if not any(verify_retell(text, key, signature) for key in settings.retell_api_keys):
        raise Rejected(401, "bad or missing x-retell-signature")
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise Rejected(400, "body is not JSON") from exc
    call = payload.get("call") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str) or not isinstance(call, dict) \
            or not isinstance(call.get("call_id"), str) or not call["call_id"]:
        raise Rejected(400, "expected {\"event\": ..., \"call\": {\"call_id\": ...}}")
    return (hashlib.sha256(body).hexdigest(), payload["event"], call["call_id"], text)


def twilio_row(body: bytes, signature: str, url: str, content_type: str, settings: WebhookSettings) -> tuple:
    text = _text(body)
    is_json = content_type.startswith("application/json")
    params = parse_qsl(text, keep_blank_values=True) if not is_json else text
    if not any(verify_twilio(url, params, signature, token) for token in settings.twilio_auth_tokens):
        raise Rejected(403, "bad or missing X-Twilio-Signature")
    try:
        fields = json.loads(text) if is_json else dict(params)
    except ValueError as exc:
        raise Rejected(400, "body is not JSON") from exc
    if not isinstance(fields, dict):
        raise Rejected(400, "expected an object of callback parameters")
    if fields.get("MessageSid"):
        resource, sid, status = "message", fields["MessageSid"], fields.get("MessageStatus")
    elif fields.get("CallSid"):
        resource, sid, status = "call", fields["CallSid"], fields.get("CallStatus")
    else:
        raise Rejected(400, "neither CallSid nor MessageSid")
    if not fields.get("AccountSid"):
        raise Rejected(400, "AccountSid missing")
    return (hashlib.sha256(body).hexdigest(), resource, sid, fields["AccountSid"], status, json.dumps(fields))


def _public_url(request: Request, settings: WebhookSettings) -> str:
    """The exact URL the provider signed: the configured public base, or what this server saw."""
    if settings.public_url:
        query = f"?{request.url.query}" if request.url.query else ""
        return settings.public_url.rstrip("/") + request.url.path + query
    return str(request.url)


def create_app(settings: WebhookSettings, connect) -> Starlette:
    """`connect` opens a psycopg2 connection to the warehouse."""
    writer = LandingWriter(connect)
    outcomes: Counter[str] = Counter()

    async def receive(request: Request, provider: str) -> JSONResponse:
        try:
            body = await _body(request, settings.max_body_bytes)
            if provider == "retell":
                row = retell_row(body, request.headers.get("x-retell-signature", ""), settings)
            else:
                row = twilio_row(body, request.headers.get("x-twilio-signature", ""),
                                 _public_url(request, settings), request.headers.get("content-type", ""), settings)
        except Rejected as rejected:
            outcomes[f"{provider}:rejected:{rejected.status}"] += 1
            logger.warning("webhook %s rejected (%d): %s", provider, rejected.status, rejected.reason)
            return JSONResponse({"error": rejected.reason}, status_code=rejected.status)
        try:
            new = await writer.write(provider, row)
        except Exception:  # noqa: BLE001 - the provider retries non-2xx deliveries
            outcomes[f"{provider}:unavailable"] += 1
            return JSONResponse({"error": "storage unavailable, retry later"}, status_code=503)
        outcomes[f"{provider}:{'stored' if new else 'duplicate'}"] += 1
        return JSONResponse({"status": "stored" if new else "duplicate"})

    async def retell(request: Request) -> JSONResponse:
        return await receive(request, "retell")

    async def twilio(request: Request) -> JSONResponse:
        return await receive(request, "twilio")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "outcomes": dict(outcomes), "batches": writer.batches})

    @asynccontextmanager
    async def lifespan(app):
        await writer.start()
        yield
        await writer.stop()

    return Starlette(routes=[
        Route("/webhooks/retell", retell, methods=["POST"]),
        Route("/webhooks/twilio", twilio, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
    ], lifespan=lifespan)
