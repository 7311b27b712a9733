"""Records rendered once (sandbox.records.RenderedRecords) answer byte for byte what generating every listing on
each request answers: the same conversation (every listing walked page by page, filters, errors, fetches by id,
hidden objects, held-back and settled prices, injected faults, planted scenarios, damaged records) is held with a
rendering server and a plain one, and every status, header and body must be equal."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator

import pytest
import requests

from sandbox.agency import clients
from sandbox.config import SandboxConfig
from sandbox.records import Listed, RenderedRecords, encode
from sandbox.server import start_in_thread
from sandbox.usage import client_day
from tests.conftest import TEST_END_DATE

# Two Retell workspaces, damaged records (some without their id), and every kind of planted scenario.
CONFIG = SandboxConfig(seed=11, clients=3, agents_per_client=2, days=5, calls_per_agent_per_day=6, retell_workspaces=2,
                       corrupt_rate=0.08, end_date=TEST_END_DATE)
DAYS = list(CONFIG.iter_days())
PLANTED = dataclasses.replace(CONFIG, scenarios=(
    ("spike", 0, DAYS[1], 3.0), ("silent_provider", "twilio", DAYS[2]), ("silent_client", 2, DAYS[3], DAYS[3]),
    ("unit_price_change", "retell:voice_seconds", DAYS[3], 1.5), ("unregistered_agent", 1, DAYS[4], 2),
    ("corrupt_day", DAYS[0], 0.5)))
HEADERS_COMPARED = ("content-type", "content-length", "retry-after")

Exchange = tuple[str, int, dict, bytes]


class Conversation:
    """Requests to one sandbox, each answer kept as (label, status, headers compared, body bytes)."""

    def __init__(self, base_url: str, config: SandboxConfig):
        self.base, self.config = base_url, config
        self.session = requests.Session()
        self.log: list[Exchange] = []

    def send(self, label: str, method: str, path: str, **options) -> requests.Response:
        response = self.session.request(method, self.base + path, timeout=30, **options)
        headers = {name: response.headers.get(name) for name in HEADERS_COMPARED}
        self.log.append((label, response.status_code, headers, response.content))
        return response

    def retell(self, label: str, body: dict, workspace: int = 0, key: str | None = None) -> requests.Response:
        key = key or self.config.retell_api_key(workspace)
        return self.send(label, "POST", "/retell/v3/list-calls", json=body, headers={"Authorization": f"Bearer {key}"})

    def retell_walk(self, label: str, body: dict, workspace: int = 0) -> None:
        body = dict(body)
        for n in range(1000):
            page = self.retell(f"{label} page {n}", body, workspace).json()
            if not page.get("has_more"):
                return
            body["pagination_key"] = page["pagination_key"]
        raise AssertionError(f"{label}: no last page")

    def twilio(self, label: str, path: str, params: dict | None = None, token: str | None = None) -> requests.Response:
        auth = (self.config.twilio_account_sid, token or self.config.twilio_auth_token)
        return self.send(label, "GET", "/twilio" + path, params=params, auth=auth)

    def twilio_walk(self, label: str, path: str, params: dict) -> None:
        page = self.twilio(f"{label} page 0", path, params).json()
        for n in range(1, 1000):
            if not page.get("next_page_uri"):
                return
            page = self.twilio(f"{label} page {n}", page["next_page_uri"]).json()
        raise AssertionError(f"{label}: no last page")

    def openrouter(self, label: str, path: str, key: str | None = None, **params) -> requests.Response:
        key = key or self.config.openrouter_management_key
        return self.send(label, "GET", "/openrouter/api/v1" + path, params=params,
                         headers={"Authorization": f"Bearer {key}"})

    def control(self, label: str, method: str, path: str, body: dict | None = None) -> requests.Response:
        return self.send(label, method, "/_sandbox" + path, json=body)


def _listings(talk: Conversation, tag: str) -> None:
    """Every listing, walked in small pages and in the collectors' large ones, with each filter they take."""
    config = talk.config
    middle = sorted(c["start_timestamp"] for c in client_day(config, 0, DAYS[2]).retell_calls)[3]
    agent = clients(config)[0].agents[1].retell_agent_id
    for workspace in range(config.retell_workspaces):
        label = f"{tag} retell ws{workspace}"
        talk.retell_walk(f"{label} ascending by 7", {"limit": 7, "sort_order": "ascending"}, workspace)
        talk.retell_walk(f"{label} default", {}, workspace)
        talk.retell_walk(f"{label} since", {"limit": 1000, "sort_order": "ascending", "filter_criteria": {
            "start_timestamp": {"op": "ge", "type": "number", "value": middle}}}, workspace)
        talk.retell_walk(f"{label} between, total", {"limit": 5, "include_total": True, "filter_criteria": {
            "start_timestamp": {"op": "bt", "type": "range", "value": [middle - 86_400_000, middle]}}}, workspace)
        talk.retell_walk(f"{label} agent", {"limit": 4, "filter_criteria": {"agent": [{"agent_id": agent}]}},
                         workspace)
    master = config.twilio_account_sid
    talk.twilio_walk(f"{tag} twilio accounts", "/2010-04-01/Accounts.json", {"PageSize": 2})
    for client in clients(config):
        account = client.twilio_subaccount_sid
        label = f"{tag} twilio {client.client_id}"
        talk.twilio_walk(f"{label} calls", f"/2010-04-01/Accounts/{account}/Calls.json",
                         {"StartTime>": DAYS[0].isoformat(), "StartTime<": DAYS[-1].isoformat(), "PageSize": 7})
        talk.twilio_walk(f"{label} calls all", f"/2010-04-01/Accounts/{account}/Calls.json", {"PageSize": 1000})
        talk.twilio_walk(f"{label} completed calls of a day", f"/2010-04-01/Accounts/{account}/Calls.json",
                         {"StartTime": DAYS[1].isoformat(), "Status": "completed", "PageSize": 3})
        talk.twilio_walk(f"{label} messages", f"/2010-04-01/Accounts/{account}/Messages.json",
                         {"DateSent>": DAYS[1].isoformat(), "PageSize": 5})
        talk.twilio_walk(f"{label} usage", f"/2010-04-01/Accounts/{account}/Usage/Records/Daily.json",
                         {"StartDate": DAYS[0].isoformat(), "EndDate": DAYS[-1].isoformat(), "PageSize": 9})
    talk.twilio_walk(f"{tag} twilio master usage", f"/2010-04-01/Accounts/{master}/Usage/Records/Daily.json",
                     {"Category": "calls", "PageSize": 2})
    talk.twilio_walk(f"{tag} twilio master calls", f"/2010-04-01/Accounts/{master}/Calls.json", {})
    for client in clients(config):
        talk.openrouter(f"{tag} openrouter activity {client.client_id}", "/activity",
                        api_key_hash=client.openrouter_key_hash)
        talk.openrouter(f"{tag} openrouter activity {client.client_id} day", "/activity",
                        api_key_hash=client.openrouter_key_hash, date=DAYS[-1].isoformat())
    talk.openrouter(f"{tag} openrouter activity", "/activity")
    talk.openrouter(f"{tag} openrouter keys", "/keys", offset="0")
    talk.openrouter(f"{tag} openrouter credits", "/credits")


def _sample_ids(config: SandboxConfig) -> Iterator[tuple[str, int, dict]]:
    """(provider, Retell workspace, record) for a few records of each client-day that still have their id."""
    for day in DAYS:
        for client in clients(config):
            usage = client_day(config, client.index, day)
            workspace = client.retell_workspace
            yield from (("retell", workspace, c) for c in usage.retell_calls[:2] if "call_id" in c)
            yield from (("twilio", workspace, r) for r in usage.twilio_calls[:1] + usage.twilio_messages[:1]
                        if "sid" in r)


def _by_id(talk: Conversation, tag: str) -> None:
    for provider, workspace, record in _sample_ids(talk.config):
        if provider == "retell":
            talk.send(f"{tag} get-call {record['call_id']}", "GET", f"/retell/v2/get-call/{record['call_id']}",
                      headers={"Authorization": f"Bearer {talk.config.retell_api_key(workspace)}"})
        else:
            talk.twilio(f"{tag} fetch {record['sid']}", record["uri"])


def _errors(talk: Conversation) -> None:
    talk.retell("retell limit too big", {"limit": 1001})
    talk.retell("retell unknown filter", {"filter_criteria": {"no_such_filter": {}}})
    talk.retell("retell garbage key", {"pagination_key": "garbage!"})
    talk.retell("retell forged key", {"pagination_key": base64.urlsafe_b64encode(b"[0,-3]").decode().rstrip("=")})
    talk.retell("retell skip and key", {"skip": 3, "pagination_key": "WzAsMV0"})
    talk.retell("retell bad api key", {}, key="key_wrong")
    talk.twilio("twilio bad token", "/2010-04-01/Accounts.json", token="wrong")
    talk.twilio("twilio unknown account", "/2010-04-01/Accounts/AC" + "0" * 32 + "/Calls.json")
    account = clients(talk.config)[0].twilio_subaccount_sid
    talk.twilio("twilio bad page size", f"/2010-04-01/Accounts/{account}/Calls.json", {"PageSize": 5000})
    talk.twilio("twilio bad token", f"/2010-04-01/Accounts/{account}/Messages.json", {"PageToken": "PAxx"})
    talk.openrouter("openrouter old day", "/activity", date="2001-01-01")
    talk.openrouter("openrouter inference key", "/activity", key="sk-or-v1-inference")


def _ids(config: SandboxConfig) -> dict[str, list[str]]:
    first, last = client_day(config, 0, DAYS[0]), client_day(config, 1, DAYS[-1])
    key = clients(config)[2].openrouter_key_hash
    return {
        "retell": [c["call_id"] for c in first.retell_calls[:3] + last.retell_calls[-2:] if "call_id" in c],
        "twilio": [r["sid"] for r in first.twilio_calls[:2] + last.twilio_messages[:2] if "sid" in r],
        "openrouter": [clients(config)[1].openrouter_key_hash, f"{key}:{DAYS[-1]}:openai/gpt-4.1-mini-2025-04-14"],
    }


def converse(base_url: str, config: SandboxConfig) -> list[Exchange]:
    """The whole conversation with the sandbox at `base_url`, serving `config`."""
    talk = Conversation(base_url, config)
    _listings(talk, "plain")
    _by_id(talk, "plain")
    _errors(talk)
    ids = _ids(config)
    talk.control("hide", "POST", "/hidden", {"ids": [i for group in ids.values() for i in group]})
    _listings(talk, "hidden")
    talk.control("hidden", "GET", "/hidden")
    talk.control("show all", "DELETE", "/hidden")
    talk.control("hold two days", "POST", "/pending", {"days": 2})
    _listings(talk, "pending days")
    talk.control("settle some", "POST", "/settle", {"ids": ids["retell"][-2:] + ids["twilio"][-1:]})
    talk.control("hold some by id", "POST", "/pending", {"ids": ids["retell"][:2] + ids["twilio"][:1]})
    _listings(talk, "pending settled")
    _by_id(talk, "pending")
    talk.control("settle all", "POST", "/settle", {"all": True})
    _listings(talk, "held by id")
    talk.control("forget pending", "DELETE", "/pending")
    talk.control("429 storm", "POST", "/faults", {"provider": "twilio", "status": 429, "count": 2, "retry_after": 1})
    talk.control("5xx", "POST", "/faults", {"provider": "retell", "status": 503, "count": 1})
    _listings(talk, "after faults")
    talk.control("clear faults", "DELETE", "/faults")
    talk.control("health", "GET", "/health")
    return talk.log


@pytest.mark.parametrize("config", [CONFIG, PLANTED], ids=["damaged records", "planted scenarios"])
def test_rendered_listings_are_byte_identical_to_generated_ones(config):
    rendered, plain = start_in_thread(config), start_in_thread(config, rendered=False)
    try:
        answers = converse(rendered.base_url, config)
        expected = converse(plain.base_url, config)
    finally:
        for server in (rendered, plain):
            server.shutdown()
            server.server_close()
    assert isinstance(rendered.records, RenderedRecords) and not isinstance(plain.records, RenderedRecords)
    assert rendered.records.size() == sum(len(u.retell_calls) + len(u.twilio_calls) + len(u.twilio_messages)
                                          for day in DAYS for c in clients(config)
                                          for u in [client_day(config, c.index, day)])
    assert [a[:3] for a in answers] == [e[:3] for e in expected]
    for answer, reference in zip(answers, expected, strict=True):
        assert answer[3] == reference[3], f"{answer[0]}: bodies differ"
    statuses = {status for _, status, _, _ in answers}
    assert {200, 400, 401, 403, 404, 429, 503} <= statuses  # the conversation reached every path it meant to
    assert sum(b'"_sandbox_corruption"' in body for *_, body in answers) > 10  # damaged records were listed
    hidden_call = _ids(config)["retell"][0].encode()
    listed_calls = {tag: b"".join(body for label, _, _, body in answers if label.startswith(f"{tag} retell"))
                    for tag in ("plain", "hidden")}
    assert hidden_call in listed_calls["plain"] and hidden_call not in listed_calls["hidden"]
    unpriced = [body for label, _, _, body in answers if label.startswith("pending days retell")]
    assert sum(body.count(b'"call_cost"') for body in unpriced) < sum(body.count(b'"call_id"') for body in unpriced)


def test_a_listed_page_encodes_as_json_dumps_would():
    import json

    records = RenderedRecords(CONFIG)
    legs = records.client_day(0, DAYS[0]).twilio_calls
    assert legs and all(isinstance(leg, Listed) for leg in legs)
    body = {"calls": legs, "end": 3, "next_page_uri": None, "uri": "/x?a=1&b=%3E"}
    plain = {**body, "calls": client_day(CONFIG, 0, DAYS[0]).twilio_calls}
    assert encode(body) == json.dumps(plain, separators=(",", ":")).encode()
    assert encode({"calls": []}) == b'{"calls":[]}'


def test_prerender_renders_every_client_day_once():
    records = RenderedRecords(PLANTED)
    generated = sum(len(u.retell_calls) + len(u.twilio_calls) + len(u.twilio_messages)
                    for day in DAYS for c in clients(PLANTED) for u in [client_day(PLANTED, c.index, day)])
    assert records.prerender() == generated > 0
    first = records.client_day(1, DAYS[2])
    assert records.prerender() == generated and records.client_day(1, DAYS[2]) is first  # kept, not rendered again
