"""Signed webhook deliveries for generated usage, as Retell and Twilio send them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

import requests

from billing_usage.signatures import (
    HMAC_SHA256,
    TWILIO_SIGNATURE_SETTINGS_HEADER,
    Params,
    TwilioSharedKey,
    retell_signature,
    twilio_signature,
    twilio_signature_settings_header,
)
from sandbox.agency import clients
from sandbox.config import SandboxConfig
from sandbox.usage import API_VERSION, client_day


@dataclass(frozen=True)
class Delivery:
    provider: str
    body: bytes
    headers: dict[str, str]


def retell_deliveries(config: SandboxConfig, day: date) -> Iterator[Delivery]:
    """call_started (connected calls only), call_ended and call_analyzed for each call of the day."""
    for client in clients(config):
        api_key = config.retell_api_key(client.retell_workspace)
        for call in client_day(config, client.index, day).retell_calls:
            started = {k: call[k] for k in ("call_id", "agent_id", "agent_version", "call_type", "call_status",
                                            "start_timestamp") if k in call} | {"call_status": "ongoing"}
            ended = {k: v for k, v in call.items() if k != "call_analysis"}
            events = [("call_ended", ended), ("call_analyzed", call)]
            if call["call_status"] == "ended":
                events.insert(0, ("call_started", started))
            for event, payload in events:
                body = json.dumps({"event": event, "call": payload}, separators=(",", ":"))
                yield Delivery("retell", body.encode(), {
                    "Content-Type": "application/json",
                    "x-retell-signature": retell_signature(body, api_key),
                })


def _twilio_callbacks(config: SandboxConfig, day: date) -> Iterator[dict[str, str]]:
    for client in clients(config):
        usage = client_day(config, client.index, day)
        for leg in (leg for leg in usage.twilio_calls if leg.get("sid")):
            yield {
                "CallSid": leg["sid"], "AccountSid": leg["account_sid"], "From": leg["from"], "To": leg["to"],
                "CallStatus": leg["status"], "ApiVersion": API_VERSION, "Direction": leg["direction"],
                "CallDuration": leg["duration"], "Timestamp": leg["end_time"] or leg["date_updated"],
                "CallbackSource": "call-progress-events", "SequenceNumber": "3",
            }
        for message in (m for m in usage.twilio_messages if m.get("sid")):
            status = message["status"]
            yield {
                "MessageSid": message["sid"], "SmsSid": message["sid"], "MessageStatus": status,
                "SmsStatus": status, "AccountSid": message["account_sid"], "From": message["from"],
                "To": message["to"], "ApiVersion": API_VERSION,
                "MessagingServiceSid": message["messaging_service_sid"],
            }


def twilio_headers(url: str, params: Params, config: SandboxConfig, shared_key: TwilioSharedKey | None = None,
                   content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    """Headers of a callback signed for `url`: with the auth token (HMAC-SHA1), or with `shared_key`
    (HMAC-SHA256, named in X-Twilio-Webhooks-Signature-Settings)."""
    if shared_key is None:
        return {"Content-Type": content_type,
                "X-Twilio-Signature": twilio_signature(url, params, config.twilio_auth_token)}
    return {"Content-Type": content_type,
            "X-Twilio-Signature": twilio_signature(url, params, shared_key.secret, HMAC_SHA256),
            TWILIO_SIGNATURE_SETTINGS_HEADER: twilio_signature_settings_header(shared_key.id, HMAC_SHA256)}


def twilio_deliveries(config: SandboxConfig, day: date, url: str,
                      shared_key: TwilioSharedKey | None = None) -> Iterator[Delivery]:
    """Form-encoded call and message status callbacks, signed for `url` (the public callback URL)."""
    for params in _twilio_callbacks(config, day):
        yield Delivery("twilio", urlencode(params).encode(), twilio_headers(url, params, config, shared_key))


def send_webhooks(config: SandboxConfig, day: date, retell_url: str | None = None,
                  twilio_url: str | None = None, session: requests.Session | None = None,
                  twilio_shared_key: TwilioSharedKey | None = None) -> dict[int, int]:
    """POST every delivery of `day`; returns how many got each HTTP status."""
    session = session or requests.Session()
    statuses: dict[int, int] = {}
    deliveries = []
    if retell_url:
        deliveries.append((retell_url, retell_deliveries(config, day)))
    if twilio_url:
        deliveries.append((twilio_url, twilio_deliveries(config, day, twilio_url, twilio_shared_key)))
    for url, stream in deliveries:
        for delivery in stream:
            response = session.post(url, data=delivery.body, headers=delivery.headers, timeout=10)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    return statuses
