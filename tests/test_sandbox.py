"""The provider sandbox: formats of the official examples, paging, auth, faults, consistency, webhooks."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
import requests

from billing_usage.signatures import verify_retell, verify_twilio
from sandbox.agency import clients, directory
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.totals import expected_totals, iter_day_records, iter_records
from sandbox.usage import client_day, openrouter_activity, rfc2822, twilio_price, usage_totals
from sandbox.webhook_sender import send_webhooks
from tests.conftest import SMALL, reference_json


def _retell(server, body: dict, key: str | None = None) -> requests.Response:
    key = key or SMALL.retell_api_key(0)
    return requests.post(f"{server.base_url}/retell/v3/list-calls", json=body,
                         headers={"Authorization": f"Bearer {key}"}, timeout=10)


def _twilio(server, path: str, params: dict | None = None, auth=None) -> requests.Response:
    auth = auth or (SMALL.twilio_account_sid, SMALL.twilio_auth_token)
    return requests.get(f"{server.base_url}/twilio{path}", params=params, auth=auth, timeout=10)


def _openrouter(server, path: str, key: str | None = None, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(f"{server.base_url}/openrouter/api/v1{path}", params=params, headers=headers, timeout=10)


# --- formats -------------------------------------------------------------------------------------

def test_twilio_objects_have_the_official_example_fields():
    usage = client_day(SMALL, 0, SMALL.start_date)
    official_call = reference_json("twilio", "ListCall.200.readFullPage1.json")["calls"][0]
    official_message = reference_json("twilio", "ListMessage.200.readFullPage1.json")["messages"][0]
    # twilio 9.13's CallInstance reads `stir_verstat`, which the spec examples predate.
    assert set(usage.twilio_calls[0]) == set(official_call) | {"stir_verstat"}
    assert set(usage.twilio_calls[0]["subresource_uris"]) == set(official_call["subresource_uris"])
    message = next(m for day in SMALL.iter_days() for m in client_day(SMALL, 0, day).twilio_messages)
    assert set(message) == set(official_message)
    for leg in usage.twilio_calls:
        assert isinstance(leg["price"], str) and isinstance(leg["duration"], str)
        assert Decimal(leg["price"]) <= 0
        assert leg["date_created"].endswith(" +0000")


def test_twilio_list_envelope_and_usage_record_fields(sandbox_server):
    official = reference_json("twilio", "ListUsageRecordDaily.200.readFull.json")
    page = _twilio(sandbox_server, f"/2010-04-01/Accounts/{clients(SMALL)[0].twilio_subaccount_sid}"
                                   "/Usage/Records/Daily.json", {"PageSize": 3}).json()
    assert set(page) == set(official)
    assert set(page["usage_records"][0]) == set(official["usage_records"][0])
    assert page["usage_records"][0]["price_unit"] == "usd"


def test_rfc2822_and_negative_string_prices():
    assert rfc2822(datetime(2019, 10, 18, 17, 0, tzinfo=UTC)) == "Fri, 18 Oct 2019 17:00:00 +0000"
    assert twilio_price(Decimal("0.0075")) == "-0.00750"
    assert twilio_price(Decimal(0)) == "0.00000"


def test_retell_calls_use_cents_and_epoch_milliseconds():
    official = reference_json("retell", "V2PhoneCallResponse.synthesized_from_spec_examples.json")
    phone_calls = [c for c in client_day(SMALL, 0, SMALL.start_date).retell_calls if c["call_type"] == "phone_call"]
    call = phone_calls[0]
    assert set(call) <= set(official) | {"workspace"}
    assert isinstance(call["start_timestamp"], int) and call["start_timestamp"] > 1_600_000_000_000
    cost = call["call_cost"]
    assert set(cost) == set(official["call_cost"])
    products = sum(Decimal(str(p["cost"])) for p in cost["product_costs"])
    assert Decimal(str(cost["combined_cost"])) == products
    assert cost["total_duration_seconds"] >= call["duration_ms"] / 1000
    assert call["telephony_identifier"]["twilio_call_sid"].startswith("CA")


def test_openrouter_rows_have_the_official_fields_and_current_sdk_additions(sandbox_server):
    key = SMALL.openrouter_management_key
    activity = _openrouter(sandbox_server, "/activity", key).json()["data"]
    official = reference_json("openrouter", "getUserActivity.200.json")["data"][0]
    assert set(activity[0]) == set(official) | {"cached_tokens"}
    keys = _openrouter(sandbox_server, "/keys", key).json()["data"]
    official_key = reference_json("openrouter", "listKeys.200.json")["data"][0]
    assert set(keys[0]) == set(official_key) | {"external_user", "last_used_at"}
    assert all(isinstance(k["workspace_id"], str) for k in keys)  # the openrouter SDK requires a string
    credits = _openrouter(sandbox_server, "/credits", key).json()["data"]
    assert set(credits) == {"total_credits", "total_usage"}


# --- data ----------------------------------------------------------------------------------------

def test_generation_is_deterministic_and_seeded():
    first = [r for _, _, r in iter_records(SMALL)]
    assert first == [r for _, _, r in iter_records(SMALL)]
    other = SandboxConfig(seed=8, clients=3, agents_per_client=2, days=5, calls_per_agent_per_day=6,
                          end_date=SMALL.end_date)
    assert first != [r for _, _, r in iter_records(other)]


def test_scale_parameters_drive_the_volume():
    config = SandboxConfig(seed=1, clients=2, agents_per_client=3, days=4, calls_per_agent_per_day=5,
                           end_date=SMALL.end_date)
    totals = expected_totals(config)
    assert totals[("retell", "client_001")].objects == 3 * 4 * 5
    assert {client for _, client in totals} == {"client_001", "client_002"}


def test_every_retell_phone_call_has_its_twilio_leg_in_the_clients_subaccount():
    for client in clients(SMALL):
        for day in SMALL.iter_days():
            usage = client_day(SMALL, client.index, day)
            legs = {leg["sid"]: leg for leg in usage.twilio_calls}
            phone = [c for c in usage.retell_calls if c["call_type"] == "phone_call"]
            assert len(legs) == len(phone) > 0
            for call in phone:
                leg = legs[call["telephony_identifier"]["twilio_call_sid"]]
                assert leg["account_sid"] == client.twilio_subaccount_sid
                assert {call["from_number"], call["to_number"]} == {leg["from"], leg["to"]}


def test_each_client_has_its_own_key_numbers_and_directory_entries():
    all_clients = clients(SMALL)
    assert len({c.openrouter_key_hash for c in all_clients}) == len(all_clients)
    numbers = [a.phone_number for c in all_clients for a in c.agents]
    assert len(set(numbers)) == len(numbers)
    owners = {(a["resource_type"], a["resource_id"]): a["client_id"] for a in directory(SMALL)["resource_assignments"]}
    for client in all_clients:
        assert owners[("openrouter_key", client.openrouter_key_hash)] == client.client_id
        assert owners[("twilio_subaccount", client.twilio_subaccount_sid)] == client.client_id
        for agent in client.agents:
            assert owners[("twilio_phone_number", agent.phone_number)] == client.client_id
            assert owners[("retell_agent", agent.retell_agent_id)] == client.client_id


def test_usage_record_parents_are_the_sum_of_their_children():
    totals = usage_totals(client_day(SMALL, 1, SMALL.end_date))
    for parent, children in (("calls", ("calls-inbound", "calls-outbound")), ("sms", ("sms-inbound", "sms-outbound"))):
        assert totals[parent] == tuple(sum(totals[c][i] for c in children) for i in range(3))
    assert totals["totalprice"][2] == totals["calls"][2] + totals["sms"][2] + totals["mms"][2]


# --- Retell API ----------------------------------------------------------------------------------

def test_retell_pages_cover_every_call_once(sandbox_server):
    seen, body, pages = [], {"limit": 17, "sort_order": "ascending"}, 0
    while True:
        page = _retell(sandbox_server, body).json()
        seen += [c["call_id"] for c in page["items"]]
        pages += 1
        if not page["has_more"]:
            assert page["pagination_key"] is None
            break
        body["pagination_key"] = page["pagination_key"]
    expected = [c["call_id"] for _, _, c in iter_records(SMALL) if "call_id" in c]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    assert pages == -(-len(expected) // 17)


def test_retell_start_timestamp_filter_and_descending_default(sandbox_server):
    calls = [c for _, _, c in iter_records(SMALL) if "call_id" in c]
    threshold = sorted(c["start_timestamp"] for c in calls)[len(calls) // 2]
    body = {"limit": 1000, "filter_criteria": {"start_timestamp": {"op": "ge", "type": "number", "value": threshold}}}
    items = _retell(sandbox_server, body).json()["items"]
    assert len(items) == sum(c["start_timestamp"] >= threshold for c in calls)
    starts = [c["start_timestamp"] for c in items]
    assert starts == sorted(starts, reverse=True)


@pytest.mark.parametrize("body, status", [
    ({"limit": 1001}, 400),
    ({"filter_criteria": {"no_such_filter": {}}}, 400),
    ({"pagination_key": "garbage!"}, 400),
])
def test_retell_rejects_bad_requests(sandbox_server, body, status):
    response = _retell(sandbox_server, body)
    assert response.status_code == status
    assert response.json()["status"] == "error"


def test_retell_rejects_bad_api_key(sandbox_server):
    response = _retell(sandbox_server, {}, key="key_wrong")
    assert response.status_code == 401 and response.json()["status"] == "error"


# --- Twilio API ----------------------------------------------------------------------------------

def test_twilio_next_page_uri_walks_all_calls(sandbox_server):
    client = clients(SMALL)[0]
    path = f"/2010-04-01/Accounts/{client.twilio_subaccount_sid}/Calls.json"
    page = _twilio(sandbox_server, path, {"StartTime>": SMALL.start_date.isoformat(), "PageSize": 7}).json()
    sids = []
    while True:
        sids += [c["sid"] for c in page["calls"]]
        if not page["next_page_uri"]:
            break
        assert "PageToken=PA" in page["next_page_uri"] and "StartTime%3E=" in page["next_page_uri"]
        page = _twilio(sandbox_server, page["next_page_uri"]).json()
    expected = [leg["sid"] for day in SMALL.iter_days() for leg in client_day(SMALL, 0, day).twilio_calls]
    assert sorted(sids) == sorted(expected)


def test_twilio_subaccounts_are_listed_under_the_master(sandbox_server):
    accounts = _twilio(sandbox_server, "/2010-04-01/Accounts.json").json()["accounts"]
    subaccounts = {c.twilio_subaccount_sid for c in clients(SMALL)}
    assert {a["sid"] for a in accounts} == {SMALL.twilio_account_sid} | subaccounts


def test_twilio_rejects_bad_credentials_like_twilio(sandbox_server):
    response = _twilio(sandbox_server, "/2010-04-01/Accounts.json", auth=(SMALL.twilio_account_sid, "wrong"))
    assert response.status_code == 401
    assert response.json() == {"code": 20003, "message": "Authenticate",
                               "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}


def test_twilio_unknown_account_is_404(sandbox_server):
    response = _twilio(sandbox_server, "/2010-04-01/Accounts/AC" + "0" * 32 + "/Calls.json")
    assert response.status_code == 404 and response.json()["code"] == 20404


# --- OpenRouter API ------------------------------------------------------------------------------

def test_openrouter_needs_a_management_key(sandbox_server):
    assert _openrouter(sandbox_server, "/activity").status_code == 401
    forbidden = _openrouter(sandbox_server, "/activity", "sk-or-v1-inference-key")
    assert forbidden.status_code == 403
    assert forbidden.json() == reference_json("openrouter", "getUserActivity.403.json")


def test_openrouter_activity_per_key_and_date(sandbox_server):
    client = clients(SMALL)[1]
    day = SMALL.end_date
    rows = _openrouter(sandbox_server, "/activity", SMALL.openrouter_management_key,
                       api_key_hash=client.openrouter_key_hash, date=day.isoformat()).json()["data"]
    assert rows == openrouter_activity(SMALL, client.index, day)
    old = _openrouter(sandbox_server, "/activity", SMALL.openrouter_management_key, date="2001-01-01")
    assert old.status_code == 400


def test_openrouter_account_activity_sums_every_key(sandbox_server):
    rows = _openrouter(sandbox_server, "/activity", SMALL.openrouter_management_key).json()["data"]
    account_total = sum(Decimal(str(r["usage"])) for r in rows)
    assert account_total == sum(t.cost_usd for (p, _), t in expected_totals(SMALL).items() if p == "openrouter")


# --- faults --------------------------------------------------------------------------------------

def test_injected_429_then_5xx_then_slow(sandbox_server):
    control = f"{sandbox_server.base_url}/_sandbox/faults"
    requests.post(control, json={"provider": "twilio", "status": 429, "count": 1, "retry_after": 2}, timeout=5)
    requests.post(control, json={"provider": "twilio", "status": 503, "count": 1}, timeout=5)
    requests.post(control, json={"provider": "twilio", "status": None, "count": 1, "delay_ms": 300}, timeout=5)
    try:
        first = _twilio(sandbox_server, "/2010-04-01/Accounts.json")
        assert first.status_code == 429 and first.json()["code"] == 20429
        assert first.headers["Retry-After"] == "2"
        assert _twilio(sandbox_server, "/2010-04-01/Accounts.json").status_code == 503
        started = datetime.now(UTC)
        assert _twilio(sandbox_server, "/2010-04-01/Accounts.json").status_code == 200
        assert (datetime.now(UTC) - started).total_seconds() >= 0.3
        assert _twilio(sandbox_server, "/2010-04-01/Accounts.json").status_code == 200
    finally:
        requests.delete(control, timeout=5)


# --- webhooks ------------------------------------------------------------------------------------

class _Capture(BaseHTTPRequestHandler):
    received: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((self.path, dict(self.headers), body))
        self.send_response(204)
        self.end_headers()


def test_signed_webhooks_verify_with_the_sdk_algorithms():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _Capture.received = []
    try:
        statuses = send_webhooks(SMALL, SMALL.end_date, f"{base}/webhooks/retell", f"{base}/webhooks/twilio")
    finally:
        server.shutdown()
    assert statuses == {204: len(_Capture.received)}
    retell = [r for r in _Capture.received if r[0] == "/webhooks/retell"]
    twilio = [r for r in _Capture.received if r[0] == "/webhooks/twilio"]
    calls = [c for c in client_day(SMALL, 0, SMALL.end_date).retell_calls]
    assert len(retell) >= 2 * len(calls) and twilio
    for _, headers, body in retell:
        assert verify_retell(body.decode(), SMALL.retell_api_key(0), headers["x-retell-signature"])
    for _, headers, body in twilio:
        params = parse_qsl(body.decode())
        assert verify_twilio(f"{base}/webhooks/twilio", params, headers["X-Twilio-Signature"], SMALL.twilio_auth_token)


# --- by id, and prices that settle late ---------------------------------------------------------

def _retell_call(server, call_id: str, key: str | None = None) -> requests.Response:
    key = key or SMALL.retell_api_key(0)
    return requests.get(f"{server.base_url}/retell/v2/get-call/{call_id}",
                        headers={"Authorization": f"Bearer {key}"}, timeout=10)


def _twilio_one(server, record: dict) -> requests.Response:
    return _twilio(server, record["uri"])


def _created_on(leg: dict):
    """Twilio dates a leg by its creation, which can be just before midnight of its call's day."""
    return parsedate_to_datetime(leg["date_created"]).date()


def _pending(server, method: str, path: str = "/pending", **body) -> dict:
    response = requests.request(method, f"{server.base_url}/_sandbox{path}", json=body or None, timeout=10)
    response.raise_for_status()
    return response.json()


def test_by_id_responses_equal_the_listed_objects(sandbox_server):
    usage = client_day(SMALL, 1, SMALL.start_date)
    for call in usage.retell_calls[:3]:
        assert _retell_call(sandbox_server, call["call_id"]).json() == call
    for record in usage.twilio_calls[:3] + usage.twilio_messages[:3]:
        assert _twilio_one(sandbox_server, record).json() == record


def test_unknown_ids_are_404_in_each_providers_error_shape(sandbox_server):
    missing = _retell_call(sandbox_server, "call_" + "0" * 28)
    assert missing.status_code == 404 and missing.json() == {"status": "error", "message": "Call not found"}
    leg = client_day(SMALL, 0, SMALL.end_date).twilio_calls[0]
    other_account = clients(SMALL)[1].twilio_subaccount_sid
    for path in (f"/2010-04-01/Accounts/{other_account}/Calls/{leg['sid']}.json",
                 f"/2010-04-01/Accounts/{SMALL.twilio_account_sid}/Calls/{leg['sid']}.json",
                 f"/2010-04-01/Accounts/{leg['account_sid']}/Messages/SM{'0' * 32}.json"):
        response = _twilio(sandbox_server, path)
        assert response.status_code == 404
        assert response.json() == {"code": 20404, "message": f"The requested resource {path} was not found",
                                   "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404}


def test_pending_days_hold_list_and_by_id_prices_until_settled_by_id(sandbox_server):
    usage = client_day(SMALL, 0, SMALL.end_date)
    call_a, call_b = usage.retell_calls[:2]
    leg_a, leg_b = [leg for leg in usage.twilio_calls if _created_on(leg) == SMALL.end_date][:2]
    message = usage.twilio_messages[0]
    try:
        report = _pending(sandbox_server, "POST", days=1)
        assert report["pending_days"] == 1 and report["since"] == SMALL.end_date.isoformat()
        last_day = [client_day(SMALL, c.index, SMALL.end_date) for c in clients(SMALL)]
        assert set(report["held_ids"]["retell"]) == {c["call_id"] for u in last_day for c in u.retell_calls}
        assert {leg_a["sid"], leg_b["sid"], message["sid"]} <= set(report["held_ids"]["twilio"])
        assert not {leg["sid"] for leg in client_day(SMALL, 0, SMALL.start_date).twilio_calls} & set(
            report["held_ids"]["twilio"])

        assert "call_cost" not in _retell_call(sandbox_server, call_a["call_id"]).json()
        assert _twilio_one(sandbox_server, leg_a).json()["price"] is None
        assert _twilio_one(sandbox_server, message).json()["price"] is None

        report = _pending(sandbox_server, "POST", "/settle", ids=[call_a["call_id"], leg_a["sid"]])
        assert report["settled_ids"] == sorted([call_a["call_id"], leg_a["sid"]])
        held = report["held_ids"]
        assert call_a["call_id"] not in held["retell"] and call_b["call_id"] in held["retell"]
        assert leg_a["sid"] not in held["twilio"] and leg_b["sid"] in held["twilio"]

        assert _retell_call(sandbox_server, call_a["call_id"]).json() == call_a
        assert "call_cost" not in _retell_call(sandbox_server, call_b["call_id"]).json()
        assert _twilio_one(sandbox_server, leg_a).json()["price"] == leg_a["price"]
        assert _twilio_one(sandbox_server, leg_b).json()["price"] is None
        listed = _twilio(sandbox_server, f"/2010-04-01/Accounts/{leg_a['account_sid']}/Calls.json",
                         {"StartTime": SMALL.end_date.isoformat(), "PageSize": 1000}).json()["calls"]
        prices = {leg["sid"]: leg["price"] for leg in listed}
        assert prices[leg_a["sid"]] == leg_a["price"] and prices[leg_b["sid"]] is None
        body = {"limit": 1000, "filter_criteria": {"start_timestamp": {"op": "ge", "type": "number",
                                                                       "value": call_a["start_timestamp"]}}}
        costs = {c["call_id"]: c.get("call_cost") for c in _retell(sandbox_server, body).json()["items"]}
        assert costs[call_a["call_id"]] == call_a["call_cost"] and costs[call_b["call_id"]] is None
    finally:
        assert _pending(sandbox_server, "DELETE")["held_ids"] == {"retell": [], "twilio": []}
    assert _twilio_one(sandbox_server, leg_b).json()["price"] == leg_b["price"]


def test_ids_held_by_name_stay_pending_through_settle_all(sandbox_server):
    old = client_day(SMALL, 2, SMALL.start_date)
    forever_call, forever_leg = old.retell_calls[0], old.twilio_calls[0]
    neighbour = old.twilio_calls[1]
    recent = client_day(SMALL, 2, SMALL.end_date).twilio_calls[-1]
    try:
        report = _pending(sandbox_server, "POST", ids=[forever_call["call_id"], forever_leg["sid"]])
        assert report["pending_days"] == 0  # naming ids leaves the day window alone
        assert report["held_ids"] == {"retell": [forever_call["call_id"]], "twilio": [forever_leg["sid"]]}
        assert _twilio_one(sandbox_server, forever_leg).json()["price"] is None
        assert _twilio_one(sandbox_server, neighbour).json()["price"] == neighbour["price"]

        _pending(sandbox_server, "POST", days=2)
        assert _twilio_one(sandbox_server, recent).json()["price"] is None
        report = _pending(sandbox_server, "POST", "/settle", all=True)
        assert report["pending_days"] == 0
        assert report["held_ids"] == {"retell": [forever_call["call_id"]], "twilio": [forever_leg["sid"]]}
        assert _twilio_one(sandbox_server, recent).json()["price"] == recent["price"]
        assert "call_cost" not in _retell_call(sandbox_server, forever_call["call_id"]).json()

        report = _pending(sandbox_server, "POST", "/settle", ids=[forever_leg["sid"]])
        assert report["held_ids"] == {"retell": [forever_call["call_id"]], "twilio": []}
        assert _twilio_one(sandbox_server, forever_leg).json()["price"] == forever_leg["price"]
        assert _pending(sandbox_server, "GET") == report
    finally:
        _pending(sandbox_server, "DELETE")
    assert _retell_call(sandbox_server, forever_call["call_id"]).json() == forever_call


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/settle", {"ids": "call_x"}),
    ("POST", "/pending", {"days": "many"}),
    ("GET", "/settle", None),
])
def test_bad_pending_requests_are_refused(sandbox_server, method, path, body):
    response = requests.request(method, f"{sandbox_server.base_url}/_sandbox{path}", json=body, timeout=10)
    assert response.status_code in (400, 405)
    assert _pending(sandbox_server, "GET")["held_by_id"] == []


# --- planted scenarios (sandbox.scenarios) -------------------------------------------------------

def _planted(*scenarios) -> SandboxConfig:
    return dataclasses.replace(SMALL, scenarios=scenarios)


def _day(offset: int) -> date:
    return SMALL.start_date + timedelta(days=offset)


def test_scenarios_are_off_by_default_and_travel_as_json():
    assert SMALL.scenarios == () and SMALL.to_json()["scenarios"] == []
    planted = _planted(("spike", 0, _day(2), 3), ["silent_provider", "twilio", _day(1).isoformat()])
    assert planted.scenarios == (("spike", 0, _day(2).isoformat(), 3.0),
                                 ("silent_provider", "twilio", _day(1).isoformat()))
    assert SandboxConfig.from_json(json.loads(json.dumps(planted.to_json()))) == planted
    assert hash(planted) == hash(SandboxConfig.from_json(planted.to_json()))
    legacy = {k: v for k, v in SMALL.to_json().items() if k != "scenarios"}  # a config from before scenarios
    assert SandboxConfig.from_json(legacy) == SMALL


@pytest.mark.parametrize("scenario", [
    ("surge", 0, "2026-03-10", 2), ("spike", 0, "2026-03-10"), ("spike", 0, "not a day", 2),
    ("spike", 0, "2026-03-10", 0), ("spike", 9, "2026-03-10", 2), ("silent_provider", "vonage", "2026-03-10"),
    ("silent_client", 0, "2026-03-10", "2026-03-09"), ("unit_price_change", "twilio:calls", "2026-03-10", 2),
    ("corrupt_day", "2026-03-10", 1.5), ("unregistered_agent", 0, "2026-03-10", -1),
])
def test_bad_scenarios_are_refused(scenario):
    with pytest.raises(ValueError):
        _planted(scenario)


def test_cli_takes_scenarios(capsys):
    from sandbox.__main__ import main

    assert main(["--days", "2", "--end-date", SMALL.end_date.isoformat(), "--scenario",
                 f"silent_provider,openrouter,{SMALL.end_date}", "--scenario",
                 f"silent_provider,openrouter,{SMALL.end_date - timedelta(days=1)}", "totals"]) == 0
    assert "openrouter" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--scenario", "spike,0", "totals"])


def test_a_spike_scales_one_client_day_and_keeps_every_id():
    planted = _planted(("spike", 1, _day(2), 4))
    clean, spiked = client_day(SMALL, 1, _day(2)), client_day(planted, 1, _day(2))
    assert [c["call_id"] for c in clean.retell_calls] == [c["call_id"] for c in spiked.retell_calls]
    for before, after in zip(clean.retell_calls, spiked.retell_calls, strict=True):
        assert after["duration_ms"] == before["duration_ms"] * 4
    assert sum(c["call_cost"]["combined_cost"] for c in spiked.retell_calls) > 3.5 * sum(
        c["call_cost"]["combined_cost"] for c in clean.retell_calls)
    requests_of = lambda config: sum(r["requests"] for r in openrouter_activity(config, 1, _day(2)))  # noqa: E731
    assert requests_of(planted) > 3 * requests_of(SMALL)
    for index, day in ((0, _day(2)), (1, _day(1)), (1, _day(3)), (2, _day(2))):  # nothing else moves
        assert client_day(planted, index, day) == client_day(SMALL, index, day)
        assert openrouter_activity(planted, index, day) == openrouter_activity(SMALL, index, day)


def test_silent_clients_and_providers_report_nothing():
    planted = _planted(("silent_client", 0, _day(1), _day(2)), ("silent_provider", "retell", _day(3)),
                       ("silent_provider", "twilio", _day(4)), ("silent_provider", "openrouter", _day(0)))
    for day in (_day(1), _day(2)):
        usage = client_day(planted, 0, day)
        assert not (usage.retell_calls or usage.twilio_calls or usage.twilio_messages)
        assert openrouter_activity(planted, 0, day) == [] and client_day(planted, 1, day) == client_day(SMALL, 1, day)
    retell_quiet, twilio_quiet = client_day(planted, 2, _day(3)), client_day(planted, 2, _day(4))
    assert retell_quiet.retell_calls == [] and retell_quiet.twilio_calls == client_day(SMALL, 2, _day(3)).twilio_calls
    assert twilio_quiet.twilio_calls == twilio_quiet.twilio_messages == []
    assert twilio_quiet.retell_calls == client_day(SMALL, 2, _day(4)).retell_calls  # their legs are orphans
    assert all(openrouter_activity(planted, c.index, _day(0)) == [] for c in clients(SMALL))


def test_a_unit_price_change_holds_from_its_day_on():
    planted = _planted(("unit_price_change", "twilio:voice_minutes", _day(2), 1.5),
                       ("unit_price_change", "openrouter:llm_tokens", _day(3), 2))
    for day in SMALL.iter_days():
        clean, changed = client_day(SMALL, 0, day), client_day(planted, 0, day)
        factor = Decimal("1.5") if day >= _day(2) else 1
        for before, after in zip(clean.twilio_calls, changed.twilio_calls, strict=True):
            assert Decimal(after["price"]) == Decimal(before["price"]) * factor
        assert changed.retell_calls == clean.retell_calls and changed.twilio_messages == clean.twilio_messages
        usage = {r["model"]: r["usage"] for r in openrouter_activity(planted, 0, day)}
        expected = {r["model"]: r["usage"] * (2 if day >= _day(3) else 1) for r in openrouter_activity(SMALL, 0, day)}
        assert usage == pytest.approx(expected, rel=1e-6)


def test_calls_of_an_unregistered_agent_are_not_in_the_directory():
    planted = _planted(("unregistered_agent", 2, _day(1), 3))
    known = {a["resource_id"] for a in directory(planted)["resource_assignments"]
             if a["resource_type"] in ("retell_agent", "twilio_phone_number")}
    clean, changed = client_day(SMALL, 2, _day(1)), client_day(planted, 2, _day(1))
    assert [c["call_id"] for c in changed.retell_calls] == [c["call_id"] for c in clean.retell_calls]
    stray = [c for c in changed.retell_calls if c["agent_id"] not in known]
    assert len(stray) == 3 and len({c["agent_id"] for c in stray}) == 1
    numbers = {c["from_number"] if c["direction"] == "outbound" else c["to_number"]
               for c in stray if c["call_type"] == "phone_call"}
    assert numbers and not numbers & known
    legs = {leg["sid"]: leg for leg in changed.twilio_calls}
    subaccount = clients(SMALL)[2].twilio_subaccount_sid
    assert all(legs[c["telephony_identifier"]["twilio_call_sid"]]["account_sid"] == subaccount
               for c in stray if c["call_type"] == "phone_call")
    assert directory(planted) == directory(SMALL)


def test_a_corrupt_day_damages_that_day_only():
    planted = _planted(("corrupt_day", _day(2), 0.5))

    def damaged(day: date) -> int:
        return sum("_sandbox_corruption" in record for c in clients(SMALL)
                   for record in client_day(planted, c.index, day).retell_calls
                   + client_day(planted, c.index, day).twilio_calls)

    assert damaged(_day(2)) > 10 and damaged(_day(1)) == damaged(_day(3)) == 0


def test_provider_totals_and_listings_agree_with_planted_records():
    planted = _planted(("spike", 0, SMALL.end_date, 3), ("silent_provider", "twilio", _day(3)),
                       ("unit_price_change", "twilio:sms_segments", _day(1), 2),
                       ("silent_provider", "openrouter", SMALL.end_date))
    server = start_in_thread(planted)
    try:
        for client in clients(planted):
            records = _twilio(server, f"/2010-04-01/Accounts/{client.twilio_subaccount_sid}/Usage/Records/Daily.json",
                              {"Category": "totalprice", "PageSize": 1000}).json()["usage_records"]
            served = {r["start_date"]: Decimal(r["price"]) for r in records}
            for day in planted.iter_days():
                usage = client_day(planted, client.index, day)
                generated = sum((-Decimal(r["price"]) for r in usage.twilio_calls + usage.twilio_messages), Decimal(0))
                assert served[day.isoformat()] == generated
            assert served[_day(3).isoformat()] == 0
        activity = requests.get(f"{server.base_url}/openrouter/api/v1/activity",
                                headers={"Authorization": f"Bearer {planted.openrouter_management_key}"},
                                timeout=10).json()["data"]
        assert activity and SMALL.end_date.isoformat() not in {row["date"] for row in activity}
        start = int(datetime.combine(SMALL.end_date, datetime.min.time(), UTC).timestamp() * 1000)
        listed = _retell(server, {"limit": 1000, "filter_criteria": {"start_timestamp": {
            "op": "ge", "type": "number", "value": start}}}, planted.retell_api_key(0)).json()["items"]
        spiked = {c["call_id"]: c for c in client_day(planted, 0, SMALL.end_date).retell_calls}
        assert {c["call_id"]: c for c in listed if c["call_id"] in spiked} == spiked
        by_day = defaultdict(int)
        for day, provider, _, _ in iter_day_records(planted):
            by_day[(day, provider)] += 1
        assert by_day[(_day(3), "retell")] > 0 and by_day[(_day(3), "twilio")] == 0
    finally:
        server.shutdown()
