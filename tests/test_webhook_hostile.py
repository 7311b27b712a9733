"""Hostile but correctly signed deliveries on a real uvicorn server and PostgreSQL: what the database cannot
store is refused or dead-lettered, never fails the valid deliveries batched with it, never reaches the logs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import chain
from urllib.parse import urlencode

import pytest
import requests
from starlette.routing import Route

from billing_usage.signatures import retell_signature, twilio_body_hash
from billing_usage.tables import ensure_tables
from sandbox.webhook_sender import Delivery, retell_deliveries, twilio_deliveries, twilio_headers
from tests.conftest import SMALL
from tests.test_webhooks import SETTINGS, serve_app
from webhooks.app import create_app
from webhooks.landing import LandingWriter, RefusedByDatabase

pytestmark = pytest.mark.integration
ACCOUNT_SID = "AC" + "2" * 32
# A phone number prefix that a database error message could quote from the failing row.
MARKER = "+1555013"


@pytest.fixture(scope="module")
def receiver(database_factory):
    warehouse = database_factory("hostile")
    server, thread, base = serve_app(create_app(SETTINGS, warehouse.connect))
    yield base, warehouse
    server.should_exit = True
    thread.join(5)


def _retell(text: str) -> Delivery:
    return Delivery("retell", text.encode(), {"Content-Type": "application/json",
                                              "x-retell-signature": retell_signature(text, SMALL.retell_api_key(0))})


def _retell_call(call: dict, event: object = "call_ended") -> Delivery:
    return _retell(json.dumps({"event": event, "call": call}))


def _twilio_form(base: str, pairs: list[tuple[str, str]]) -> Delivery:
    return Delivery("twilio", urlencode(pairs).encode(), twilio_headers(f"{base}/webhooks/twilio", pairs, SMALL))


def _twilio_json(base: str, fields: dict) -> tuple[Delivery, str]:
    """A JSON callback and the URL it was signed for (its body hash is in the query)."""
    body = json.dumps(fields)
    url = f"{base}/webhooks/twilio?bodySHA256={twilio_body_hash(body)}"
    return Delivery("twilio", body.encode(), twilio_headers(url, {}, SMALL, content_type="application/json")), url


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _hostile(base: str) -> dict[str, tuple[Delivery, str, int]]:
    """kind -> (signed delivery, URL, expected status): 422 for bodies PostgreSQL cannot store (dead-lettered),
    400 for malformed ones."""
    retell_url, twilio_url = f"{base}/webhooks/retell", f"{base}/webhooks/twilio"
    sid = "CA" + "3" * 32
    retell = {
        "NaN": (_retell_call({"call_id": "h-nan", "duration_ms": float("nan")}), 422),
        "Infinity": (_retell_call({"call_id": "h-inf", "duration_ms": float("inf")}), 422),
        "-Infinity": (_retell_call({"call_id": "h-ninf", "duration_ms": float("-inf")}), 422),
        "\\u0000 in a value": (_retell_call({"call_id": "h-nul", "transcript": "Agent: hi\x00"}), 422),
        "\\u0000 in a key": (_retell_call({"call_id": "h-nul-key", "metadata": {"a\x00": 1}}), 422),
        "\\u0000 in call_id": (_retell_call({"call_id": "h-nul\x00"}), 422),
        "lone surrogate \\ud800": (_retell_call({"call_id": "h-surrogate", "transcript": "\ud800"}), 422),
        "lone surrogate \\udc00 in a key": (_retell_call({"call_id": "h-surrogate-key", "\udc00": 1}), 422),
        "number beyond numeric": (_retell('{"event":"call_ended","call":{"call_id":"h-num","x":1e-999999}}'), 422),
        "call_id an object": (_retell_call({"call_id": {"id": "h-object"}}), 400),
        "call_id an array": (_retell_call({"call_id": ["h-array"]}), 400),
        "call_id a number": (_retell_call({"call_id": 12345}), 400),
        "event a number": (_retell_call({"call_id": "h-event"}, event=7), 400),
        "10,000 nested arrays": (_retell(_deep(10_000)), 400),
        "10,000 nested arrays in call": (_retell('{"event":"call_ended","call":{"call_id":"h-deep","x":'
                                                 + _deep(10_000) + "}}"), 400),
    }
    form = {
        "%00 in a value": ([("CallSid", sid), ("AccountSid", ACCOUNT_SID), ("From", "+1555\x00")], 422),
        "%00 in CallSid": ([("CallSid", sid + "\x00"), ("AccountSid", ACCOUNT_SID)], 422),
        "%00 in a key": ([("CallSid", sid), ("AccountSid", ACCOUNT_SID), ("Fr\x00m", "+1555")], 422),
        "CallSid repeated, two values": ([("CallSid", sid), ("AccountSid", ACCOUNT_SID), ("CallSid", "CA9")], 400),
    }
    json_callbacks = {
        "JSON CallSid an object": ({"CallSid": {"sid": sid}, "AccountSid": ACCOUNT_SID}, 400),
        "JSON MessageSid an array": ({"MessageSid": ["SM1"], "AccountSid": ACCOUNT_SID}, 400),
        "JSON AccountSid a number": ({"CallSid": sid, "AccountSid": 42}, 400),
        "JSON CallStatus an object": ({"CallSid": sid, "AccountSid": ACCOUNT_SID, "CallStatus": {}}, 400),
        "JSON NaN": ({"CallSid": sid, "AccountSid": ACCOUNT_SID, "Price": float("nan")}, 422),
        "JSON \\u0000": ({"CallSid": sid, "AccountSid": ACCOUNT_SID, "To": "\x00"}, 422),
    }
    return {
        **{kind: (delivery, retell_url, status) for kind, (delivery, status) in retell.items()},
        **{kind: (_twilio_form(base, pairs), twilio_url, status) for kind, (pairs, status) in form.items()},
        **{kind: (*_twilio_json(base, fields), status) for kind, (fields, status) in json_callbacks.items()},
    }


def _valid(base: str, count: int) -> list[tuple[Delivery, str]]:
    twilio_url = f"{base}/webhooks/twilio"
    streams = chain.from_iterable(
        chain(((d, f"{base}/webhooks/retell") for d in retell_deliveries(SMALL, day)),
              ((d, twilio_url) for d in twilio_deliveries(SMALL, day, twilio_url)))
        for day in (SMALL.start_date + timedelta(days=offset) for offset in range(SMALL.days)))
    valid = [next(streams) for _ in range(count)]
    assert len({d.body for d, _ in valid}) == count
    return valid


def _post(delivery: Delivery, url: str) -> requests.Response:
    return requests.post(url, data=delivery.body, headers=delivery.headers, timeout=30)


def _send_concurrently(deliveries: list[tuple[Delivery, str]]) -> list[requests.Response]:
    with ThreadPoolExecutor(max_workers=32) as pool:
        return list(pool.map(lambda pair: _post(*pair), deliveries))


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _landed(warehouse, bodies: list[bytes]) -> list[str]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select delivery_id from raw_webhooks.retell_events where delivery_id = any(%(ids)s) union all "
                       "select delivery_id from raw_webhooks.twilio_callbacks where delivery_id = any(%(ids)s)",
                       {"ids": [_sha(body) for body in bodies]})
        return [row[0] for row in cursor.fetchall()]


def _dead_letters(warehouse) -> dict[str, tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select delivery_id, provider, reason, body, content_type from raw_webhooks.dead_letters")
        return {row[0]: (row[1], row[2], bytes(row[3]), row[4]) for row in cursor.fetchall()}


def test_hostile_deliveries_never_fail_the_valid_ones_batched_with_them(receiver):
    base, warehouse = receiver
    hostile = _hostile(base)
    valid = _valid(base, 400)
    mixed = valid + [(delivery, url) for delivery, url, _ in hostile.values()]
    random.Random(7).shuffle(mixed)
    responses = _send_concurrently(mixed)
    statuses = {_sha(delivery.body): response for (delivery, _), response in zip(mixed, responses, strict=True)}

    assert [statuses[_sha(d.body)].status_code for d, _ in valid] == [200] * len(valid)
    assert sorted(_landed(warehouse, [d.body for d, _ in valid])) == sorted(_sha(d.body) for d, _ in valid)
    observed = {kind: statuses[_sha(delivery.body)].status_code for kind, (delivery, _, _) in hostile.items()}
    assert observed == {kind: status for kind, (_, _, status) in hostile.items()}
    assert all(statuses[_sha(delivery.body)].json()["error"] for delivery, _, _ in hostile.values())
    assert _landed(warehouse, [delivery.body for delivery, _, _ in hostile.values()]) == []
    letters = _dead_letters(warehouse)
    for kind, (delivery, _, status) in hostile.items():
        letter = letters.get(_sha(delivery.body))
        if status == 422:  # kept byte for byte, with the reason it was given
            assert letter == (delivery.provider, statuses[_sha(delivery.body)].json()["error"], delivery.body,
                              delivery.headers["Content-Type"]), kind
        else:
            assert letter is None, kind
    # A provider retrying an unstorable delivery gets the same answer; it is kept once.
    delivery, url, _ = hostile["NaN"]
    assert _post(delivery, url).status_code == 422
    assert len(_dead_letters(warehouse)) == len(letters)
    with warehouse.connect() as connection, connection.cursor() as cursor:  # no signature is kept
        cursor.execute("select column_name from information_schema.columns where table_name = 'dead_letters'")
        assert {row[0] for row in cursor.fetchall()} == {"id", "delivery_id", "provider", "reason", "body",
                                                         "content_type", "received_at"}


def test_lookalikes_of_unstorable_text_are_stored(receiver):
    """An escaped backslash before u0000, a surrogate pair, "NaN" as a string, numbers at double's edges and
    a form value with the text %00 are all storable: they are landed, not refused."""
    base, warehouse = receiver
    call = {"call_id": "lookalike", "transcript": "\\u0000 \\ud800 typed by a caller 😀", "note": "NaN Infinity",
            "big": 1.7976931348623157e308, "tiny": 5e-324, "exponent": 1e-300}
    delivery = _retell_call(call)
    assert "\\ud83d\\ude00" in delivery.body.decode()  # the emoji travels as an escaped surrogate pair
    response = _post(delivery, f"{base}/webhooks/retell")
    assert response.status_code == 200, response.text
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select c->>'transcript', c->>'note', (c->>'big')::float8, (c->>'tiny')::float8, "
                       "(c->>'exponent')::float8 from raw_webhooks.retell_events, jsonb_extract_path(payload, 'call') c"
                       " where delivery_id = %s", (_sha(delivery.body),))
        assert cursor.fetchone() == tuple(call[key] for key in ("transcript", "note", "big", "tiny", "exponent"))
    pairs = [("CallSid", "CA" + "4" * 32), ("AccountSid", ACCOUNT_SID), ("Body", "100%00 sure \\x00")]
    form = _twilio_form(base, pairs)
    assert b"%2500" in form.body
    assert _post(form, f"{base}/webhooks/twilio").status_code == 200
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select params->>'Body' from raw_webhooks.twilio_callbacks where delivery_id = %s",
                       (_sha(form.body),))
        assert cursor.fetchone() == ("100%00 sure \\x00",)


def test_every_response_is_counted_and_an_unexpected_exception_is_a_json_500(database_factory, caplog):
    caplog.set_level(logging.DEBUG)
    app = create_app(SETTINGS, database_factory("counted").connect)

    async def crash(request):
        raise RuntimeError(f"unexpected, quoting {MARKER}")

    app.router.routes.append(Route("/webhooks/crash", crash, methods=["POST"]))
    server, thread, base = serve_app(app)
    try:
        crashed = requests.post(f"{base}/webhooks/crash", data=b"{}", timeout=5)
        assert crashed.status_code == 500 and crashed.json() == {"error": "internal error"}
        assert requests.get(f"{base}/nowhere", timeout=5).status_code == 404
        assert requests.get(f"{base}/webhooks/retell", timeout=5).status_code == 405
        assert requests.post(f"{base}/healthz", timeout=5).status_code == 405
        assert _post(_retell(_deep(10_000)), f"{base}/webhooks/retell").status_code == 400
        assert _post(_retell("not json"), f"{base}/webhooks/retell").status_code == 400
        assert requests.post(f"{base}/webhooks/twilio", data="CallSid=CA1", timeout=5).status_code == 403
        assert _post(*_valid(base, 1)[0]).status_code == 200  # still serving
        responses = requests.get(f"{base}/healthz", timeout=5).json()["responses"]
    finally:
        server.should_exit = True
        thread.join(5)
    assert responses == {"other:500": 1, "other:404": 1, "retell:405": 1, "healthz:405": 1, "retell:400": 2,
                         "twilio:403": 1, "retell:200": 1}
    assert any("RuntimeError" in record.getMessage() for record in caplog.records)
    assert MARKER not in caplog.text


def _refusing_database(database_factory):
    """A receiver database whose landing tables refuse rows carrying MARKER, quoting them in the error:
    a CHECK constraint (the error's DETAIL holds the failing row) and a trigger (its message and CONTEXT)."""
    warehouse = database_factory("refusing")
    with warehouse.connect() as connection:
        ensure_tables(connection)
        with connection.cursor() as cursor:
            cursor.execute(f"""
                alter table raw_webhooks.twilio_callbacks
                    add constraint no_marker check (params->>'From' not like '{MARKER}%');
                create function raw_webhooks.refuse_marker() returns trigger language plpgsql as $$
                begin
                    if new.payload::text like '%{MARKER}%' then
                        raise exception 'refused %', new.payload using errcode = '22023';
                    end if;
                    return new;
                end $$;
                create trigger refuse_marker before insert on raw_webhooks.retell_events
                    for each row execute function raw_webhooks.refuse_marker();
            """)
        connection.commit()
    return warehouse


def test_rows_the_database_refuses_fail_alone_and_never_reach_the_logs(database_factory, caplog):
    caplog.set_level(logging.DEBUG)
    warehouse = _refusing_database(database_factory)
    server, thread, base = serve_app(create_app(SETTINGS, warehouse.connect))
    try:
        valid = _valid(base, 300)
        marked = [_twilio_form(base, [("CallSid", f"CA{n:032d}"), ("AccountSid", ACCOUNT_SID),
                                      ("From", f"{MARKER}{n:04d}")]) for n in range(10)]
        marked += [_retell_call({"call_id": f"marked-{n}", "from_number": f"{MARKER}{n:04d}"}) for n in range(10)]
        mixed = valid + [(d, f"{base}/webhooks/{d.provider}") for d in marked]
        random.Random(11).shuffle(mixed)
        responses = dict(zip((d.body for d, _ in mixed), _send_concurrently(mixed), strict=True))
        batches = requests.get(f"{base}/healthz", timeout=5).json()["batches"]
    finally:
        server.should_exit = True
        thread.join(5)
    assert [responses[d.body].status_code for d, _ in valid] == [200] * len(valid)
    assert len(_landed(warehouse, [d.body for d, _ in valid])) == len(valid)
    assert [responses[d.body].status_code for d in marked] == [422] * len(marked)
    assert {responses[d.body].json()["error"] for d in marked} == {
        "the database refused it (CheckViolation 23514)", "the database refused it (InvalidParameterValue 22023)"}
    letters = _dead_letters(warehouse)
    assert all(letters[_sha(d.body)][2] == d.body for d in marked)
    assert batches < len(mixed)  # deliveries did share batches
    assert any("one by one" in record.getMessage() for record in caplog.records)
    assert MARKER not in caplog.text
    assert all(MARKER not in record.getMessage() for record in caplog.records)
    assert all(MARKER not in response.text for response in responses.values())


def _twilio_row(n: int, sid: str | None = None, params: str | None = None) -> tuple:
    sid = sid or f"CA{n:032d}"
    return (f"delivery-{n}", "call", sid, ACCOUNT_SID, "completed", params or json.dumps({"CallSid": sid}))


def test_landing_writer_retries_a_refused_batch_row_by_row(database_factory):
    """Rows PostgreSQL refuses (NaN in jsonb) and rows psycopg2 refuses before sending (NUL, unpaired surrogate)
    in one batch with valid rows: only they fail, and they become dead letters."""
    warehouse = database_factory("writer")
    bad = {"nan": _twilio_row(1001, params='{"Price": NaN}'), "nul": _twilio_row(1002, sid="CA\x00"),
           "surrogate": _twilio_row(1003, sid="CA\ud800")}

    async def scenario():
        writer = LandingWriter(warehouse.connect)
        await writer.start()
        try:
            rows = [_twilio_row(n) for n in range(50)] + list(bad.values()) + [_twilio_row(0)]
            results = await asyncio.gather(*(writer.write("twilio", row, row[0].encode(), "application/json")
                                             for row in rows), return_exceptions=True)
            return results, writer.batches
        finally:
            await writer.stop()

    results, batches = asyncio.run(scenario())
    assert batches == 1
    assert results[:50] == [True] * 50 and results[-1] is False  # the same delivery twice: stored once
    refused = results[50:53]
    assert all(isinstance(result, RefusedByDatabase) for result in refused)
    assert [result.reason for result in refused] == ["the database refused it (InvalidTextRepresentation 22P02)",
                                                     "the database refused it (ValueError)",
                                                     "the database refused it (UnicodeEncodeError)"]
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from raw_webhooks.twilio_callbacks")
        assert cursor.fetchone()[0] == 50
    assert {bytes(letter[2]) for letter in _dead_letters(warehouse).values()} == {row[0].encode()
                                                                                 for row in bad.values()}


def test_a_lost_database_connection_is_503_then_recovers(receiver, caplog):
    base, warehouse = receiver
    with warehouse.connect() as connection, connection.cursor() as cursor:
        connection.autocommit = True
        cursor.execute("select pg_terminate_backend(pid, 5000) from pg_stat_activity "
                       "where datname = current_database() and pid <> pg_backend_pid()")
        assert cursor.rowcount >= 1
    delivery = _retell_call({"call_id": "after-terminate", "from_number": f"{MARKER}0000"})
    first = _post(delivery, f"{base}/webhooks/retell")
    assert first.status_code == 503  # the provider retries
    assert _post(delivery, f"{base}/webhooks/retell").status_code == 200
    assert any("batch of 1 deliveries failed" in record.getMessage() for record in caplog.records)
    assert MARKER not in caplog.text

