"""The webhook receiver on a real uvicorn server and PostgreSQL: signatures, limits, replays, durability."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from urllib.parse import urlencode

import pytest
import requests
import uvicorn

from billing_usage.settings import Settings
from billing_usage.signatures import (
    HMAC_SHA256,
    TWILIO_SIGNATURE_SETTINGS_HEADER,
    TwilioSharedKey,
    retell_signature,
    twilio_body_hash,
    twilio_signature,
    twilio_signature_settings_header,
)
from sandbox.usage import client_day
from sandbox.webhook_sender import retell_deliveries, send_webhooks, twilio_deliveries
from tests.conftest import SMALL
from webhooks.app import create_app
from webhooks.settings import WebhookSettings

pytestmark = pytest.mark.integration
SHARED_KEY = TwilioSharedKey("webhooks_sharedkey_0001", "shared-key-secret-0001")
SETTINGS = WebhookSettings(retell_api_keys=(SMALL.retell_api_key(0),), twilio_auth_tokens=(SMALL.twilio_auth_token,),
                           max_body_bytes=64 * 1024, twilio_shared_keys=(SHARED_KEY,))


def _serve(settings: WebhookSettings, warehouse):
    return serve_app(create_app(settings, warehouse.connect))


def serve_app(app):
    """`app` on a real uvicorn server on a free port, in a thread: (server, thread, base URL)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def receiver(database_factory):
    warehouse = database_factory("webhooks")
    server, thread, base = _serve(SETTINGS, warehouse)
    yield base, warehouse
    server.should_exit = True
    thread.join(5)


def _count(warehouse, table: str) -> int:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"select count(*) from raw_webhooks.{table}")
        return cursor.fetchone()[0]


def _retell_post(base: str, body: str, signature: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["x-retell-signature"] = signature
    return requests.post(f"{base}/webhooks/retell", data=body.encode(), headers=headers, timeout=10)


def test_every_valid_delivery_is_stored_once_and_replays_are_acknowledged(receiver):
    base, warehouse = receiver
    day = SMALL.end_date
    retell_url, twilio_url = f"{base}/webhooks/retell", f"{base}/webhooks/twilio"
    expected_retell = sum(1 for _ in retell_deliveries(SMALL, day))
    expected_twilio = sum(1 for _ in twilio_deliveries(SMALL, day, twilio_url))
    before = (_count(warehouse, "retell_events"), _count(warehouse, "twilio_callbacks"))
    assert send_webhooks(SMALL, day, retell_url, twilio_url) == {200: expected_retell + expected_twilio}
    stored = (_count(warehouse, "retell_events") - before[0], _count(warehouse, "twilio_callbacks") - before[1])
    assert stored == (expected_retell, expected_twilio)
    # Retell and Twilio retry deliveries: the same bodies again are 200 and stored nothing new.
    assert send_webhooks(SMALL, day, retell_url, twilio_url) == {200: expected_retell + expected_twilio}
    assert (_count(warehouse, "retell_events") - before[0], _count(warehouse, "twilio_callbacks") - before[1]) \
        == stored
    health = requests.get(f"{base}/healthz", timeout=5).json()["outcomes"]
    assert health["retell:duplicate"] >= expected_retell and health["twilio:duplicate"] >= expected_twilio


def test_landed_rows_keep_the_payload(receiver):
    base, warehouse = receiver
    call = client_day(SMALL, 0, SMALL.start_date).retell_calls[0]
    body = json.dumps({"event": "call_analyzed", "call": call})
    assert _retell_post(base, body, retell_signature(body, SMALL.retell_api_key(0))).json() == {"status": "stored"}
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select event, call_id, payload from raw_webhooks.retell_events where delivery_id = %s",
                       (hashlib.sha256(body.encode()).hexdigest(),))
        assert cursor.fetchone() == ("call_analyzed", call["call_id"], {"event": "call_analyzed", "call": call})


@pytest.mark.parametrize("signature", [
    None, "", "v=1,d=" + "0" * 64, "garbage",
    retell_signature('{"event":"call_ended","call":{"call_id":"x"}}', "key_wrong"),
    retell_signature('{"event":"call_ended","call":{"call_id":"x"}}', SMALL.retell_api_key(0),
                     timestamp_ms=int(time.time() * 1000) - 301_000),
])
def test_retell_bad_signatures_are_401_and_store_nothing(receiver, signature):
    base, warehouse = receiver
    before = _count(warehouse, "retell_events")
    response = _retell_post(base, '{"event":"call_ended","call":{"call_id":"x"}}', signature)
    assert response.status_code == 401
    assert _count(warehouse, "retell_events") == before


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"event": "call_ended"}', '{"call": {"call_id": "x"}}',
                                  '{"event": "call_ended", "call": {"call_id": ""}}'])
def test_retell_malformed_bodies_are_400(receiver, body):
    base, warehouse = receiver
    before = _count(warehouse, "retell_events")
    response = _retell_post(base, body, retell_signature(body, SMALL.retell_api_key(0)))
    assert response.status_code == 400 and response.json()["error"]
    assert _count(warehouse, "retell_events") == before


def test_oversized_and_non_utf8_bodies(receiver):
    base, warehouse = receiver
    before = _count(warehouse, "retell_events")
    big = json.dumps({"event": "call_ended", "call": {"call_id": "x", "transcript": "a" * 70_000}})
    assert _retell_post(base, big, retell_signature(big, SMALL.retell_api_key(0))).status_code == 413
    raw = b'{"event": "call_ended", "call": {"call_id": "\xff"}}'
    response = requests.post(f"{base}/webhooks/retell", data=raw, timeout=5,
                             headers={"x-retell-signature": "v=1,d=" + "0" * 64})
    assert response.status_code == 400
    assert _count(warehouse, "retell_events") == before


def _twilio_post(base: str, params: dict, signature: str) -> requests.Response:
    return requests.post(f"{base}/webhooks/twilio", data=urlencode(params), timeout=5, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})


def test_twilio_signature_malformed_and_json_callbacks(receiver):
    base, warehouse = receiver
    url = f"{base}/webhooks/twilio"
    params = {"CallSid": "CA" + "1" * 32, "AccountSid": "AC" + "2" * 32, "CallStatus": "completed"}
    before = _count(warehouse, "twilio_callbacks")
    assert _twilio_post(base, params, twilio_signature(url, params, "wrong")).status_code == 403
    assert _twilio_post(base, params, "").status_code == 403
    no_sid = {"AccountSid": "AC" + "2" * 32}
    assert _twilio_post(base, no_sid, twilio_signature(url, no_sid, SMALL.twilio_auth_token)).status_code == 400
    assert _count(warehouse, "twilio_callbacks") == before
    assert _twilio_post(base, params, twilio_signature(url, params, SMALL.twilio_auth_token)).status_code == 200
    body = json.dumps({"MessageSid": "SM" + "3" * 32, "AccountSid": "AC" + "2" * 32, "MessageStatus": "delivered"})
    signed_url = f"{url}?bodySHA256={twilio_body_hash(body)}"
    headers = {"Content-Type": "application/json",
               "X-Twilio-Signature": twilio_signature(signed_url, {}, SMALL.twilio_auth_token)}
    response = requests.post(signed_url, data=body, timeout=5, headers=headers)
    assert response.status_code == 200
    tampered = requests.post(signed_url, data=body.replace("delivered", "failed"), timeout=5, headers=headers)
    assert tampered.status_code == 403
    assert _count(warehouse, "twilio_callbacks") == before + 2


def test_twilio_behind_a_proxy_verifies_the_public_url(database_factory):
    public = "https://billing.example.com"
    settings = WebhookSettings(retell_api_keys=(), twilio_auth_tokens=(SMALL.twilio_auth_token,), public_url=public)
    server, thread, base = _serve(settings, database_factory("proxy"))
    try:
        params = {"CallSid": "CA" + "4" * 32, "AccountSid": "AC" + "2" * 32, "CallStatus": "ringing"}
        signed_public = twilio_signature(f"{public}/webhooks/twilio", params, SMALL.twilio_auth_token)
        signed_local = twilio_signature(f"{base}/webhooks/twilio", params, SMALL.twilio_auth_token)
        assert _twilio_post(base, params, signed_public).status_code == 200
        assert _twilio_post(base, params, signed_local).status_code == 403
    finally:
        server.should_exit = True
        thread.join(5)


def test_settings_never_print_secrets():
    assert SMALL.twilio_auth_token not in repr(SETTINGS) and SMALL.retell_api_key(0) not in repr(SETTINGS)
    assert SHARED_KEY.secret not in repr(SETTINGS) and SHARED_KEY.secret not in repr(SETTINGS.twilio_shared_keys)


def test_shared_keys_come_from_configuration(monkeypatch):
    monkeypatch.setenv("SOURCES__TWILIO__WEBHOOK_SHARED_KEYS", json.dumps([{"id": SHARED_KEY.id,
                                                                             "secret": SHARED_KEY.secret}]))
    settings = WebhookSettings.from_config(Settings.from_env({}))
    assert settings.twilio_shared_keys == (SHARED_KEY,)
    assert settings.twilio_shared_key_secrets(SHARED_KEY.id) == (SHARED_KEY.secret,)
    assert settings.twilio_shared_key_secrets("webhooks_sharedkey_other") == ()
    assert SHARED_KEY.secret not in repr(settings)


def _twilio_shared_key_post(base: str, params: dict, secret: str, settings_header: str | None) -> requests.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio_signature(f"{base}/webhooks/twilio", params, secret, HMAC_SHA256)}
    if settings_header is not None:
        headers[TWILIO_SIGNATURE_SETTINGS_HEADER] = settings_header
    return requests.post(f"{base}/webhooks/twilio", data=urlencode(params), headers=headers, timeout=5)


def test_twilio_shared_key_signatures(receiver):
    base, warehouse = receiver
    day = SMALL.start_date
    twilio_url = f"{base}/webhooks/twilio"
    expected = sum(1 for _ in twilio_deliveries(SMALL, day, twilio_url))
    before = _count(warehouse, "twilio_callbacks")
    assert send_webhooks(SMALL, day, twilio_url=twilio_url, twilio_shared_key=SHARED_KEY) == {200: expected}
    assert _count(warehouse, "twilio_callbacks") == before + expected
    params = {"CallSid": "CA" + "5" * 32, "AccountSid": "AC" + "2" * 32, "CallStatus": "completed"}
    settings_header = twilio_signature_settings_header(SHARED_KEY.id)
    refused = [
        _twilio_shared_key_post(base, params, "wrong-secret", settings_header),
        _twilio_shared_key_post(base, params, SHARED_KEY.secret, twilio_signature_settings_header("unknown_key")),
        _twilio_shared_key_post(base, params, SHARED_KEY.secret, f"key={SHARED_KEY.id},algorithm=HMAC_SHA1"),
        _twilio_shared_key_post(base, params, SHARED_KEY.secret, f"key={SHARED_KEY.id},algorithm=HMAC_MD5"),
        _twilio_shared_key_post(base, params, SHARED_KEY.secret, None),  # taken for an auth token signature
        _twilio_shared_key_post(base, params, SMALL.twilio_auth_token, settings_header),  # not the SharedKey
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert _count(warehouse, "twilio_callbacks") == before + expected
    assert _twilio_shared_key_post(base, params, SHARED_KEY.secret, settings_header).status_code == 200
    body = json.dumps({"MessageSid": "SM" + "6" * 32, "AccountSid": "AC" + "2" * 32, "MessageStatus": "sent"})
    signed_url = f"{twilio_url}?bodySHA256={twilio_body_hash(body)}"
    headers = {"Content-Type": "application/json", TWILIO_SIGNATURE_SETTINGS_HEADER: settings_header,
               "X-Twilio-Signature": twilio_signature(signed_url, {}, SHARED_KEY.secret, HMAC_SHA256)}
    assert requests.post(signed_url, data=body, headers=headers, timeout=5).status_code == 200
    assert _count(warehouse, "twilio_callbacks") == before + expected + 2


def _twilio_pairs_post(base: str, pairs: list[tuple[str, str]]) -> requests.Response:
    signature = twilio_signature(f"{base}/webhooks/twilio", pairs, SMALL.twilio_auth_token)
    return requests.post(f"{base}/webhooks/twilio", data=urlencode(pairs), timeout=5, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})


def test_repeated_form_parameters_keep_every_value(receiver):
    base, warehouse = receiver
    call_sid, account_sid = "CA" + "7" * 32, "AC" + "2" * 32
    pairs = [("CallSid", call_sid), ("AccountSid", account_sid), ("CallStatus", "ringing"),
             ("StatusCallbackEvent", "initiated"), ("StatusCallbackEvent", "ringing"), ("CallStatus", "completed"),
             ("CallSid", call_sid), ("StatusCallbackEvent", "answered")]
    response = _twilio_pairs_post(base, pairs)
    assert response.status_code == 200
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select sid, account_sid, status, params from raw_webhooks.twilio_callbacks "
                       "where delivery_id = %s", (hashlib.sha256(urlencode(pairs).encode()).hexdigest(),))
        assert cursor.fetchone() == (call_sid, account_sid, "completed", {
            "CallSid": [call_sid, call_sid], "AccountSid": account_sid, "CallStatus": ["ringing", "completed"],
            "StatusCallbackEvent": ["initiated", "ringing", "answered"]})
    before = _count(warehouse, "twilio_callbacks")
    for name, other in [("CallSid", "CA" + "8" * 32), ("AccountSid", "AC" + "9" * 32)]:
        ambiguous = _twilio_pairs_post(base, [("CallSid", call_sid), ("AccountSid", account_sid), (name, other)])
        assert ambiguous.status_code == 400 and name in ambiguous.json()["error"]
    message = _twilio_pairs_post(base, [("MessageSid", "SM1"), ("AccountSid", account_sid), ("MessageSid", "SM2")])
    assert message.status_code == 400 and "MessageSid" in message.json()["error"]
    assert _count(warehouse, "twilio_callbacks") == before
