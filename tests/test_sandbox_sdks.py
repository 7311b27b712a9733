"""The providers' official SDKs read every sandbox endpoint: retell-sdk and openrouter validate each response
against their models, strictly; twilio's typed instances must carry the values the sandbox generated."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import pytest
import requests
from openrouter import OpenRouter
from openrouter.utils import BackoffStrategy, RetryConfig
from retell import APIResponseValidationError, NotFoundError, Retell
from retell.types.call_list_response import ItemV3PhoneCallResponse, ItemV3WebCallResponse
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient

from sandbox.agency import clients
from sandbox.config import SandboxConfig
from sandbox.openrouter_api import KEYS_PAGE, default_workspace_id
from sandbox.server import start_in_thread
from sandbox.usage import USAGE_CATEGORIES, client_day, openrouter_activity, usage_totals
from tests.conftest import TEST_END_DATE

END_DATE = TEST_END_DATE
CONFIG = SandboxConfig(seed=23, clients=3, agents_per_client=2, days=4, calls_per_agent_per_day=5,
                       retell_workspaces=2, end_date=END_DATE)
# Enough clients for two pages of OpenRouter keys, and little else.
MANY_KEYS = SandboxConfig(seed=23, clients=KEYS_PAGE + 5, agents_per_client=1, days=1, calls_per_agent_per_day=1,
                          end_date=END_DATE)
PAGE = 7  # small pages, so every listing takes several


@pytest.fixture(scope="module")
def sandbox():
    server = start_in_thread(CONFIG)
    yield server
    server.shutdown()
    server.server_close()


def _generated(kind: str, client_indexes=None) -> list[dict]:
    """Records of one kind in generation order, for the given clients (default: all)."""
    indexes = range(CONFIG.clients) if client_indexes is None else client_indexes
    return [record for day in CONFIG.iter_days() for i in indexes
            for record in getattr(client_day(CONFIG, i, day), kind)]


def _rfc2822(value: str | None) -> datetime | None:
    return parsedate_to_datetime(value) if value else None


# --- Retell (retell-sdk, strict response validation) ----------------------------------------------

def _retell(sandbox, workspace: int) -> Retell:
    return Retell(api_key=CONFIG.retell_api_key(workspace), base_url=f"{sandbox.base_url}/retell", max_retries=0,
                  _strict_response_validation=True)


def _workspace_clients(workspace: int) -> list[int]:
    return [c.index for c in clients(CONFIG) if c.retell_workspace == workspace]


@pytest.mark.parametrize("workspace", [0, 1])
def test_retell_sdk_pages_through_every_call_of_the_workspace(sandbox, workspace):
    retell = _retell(sandbox, workspace)
    expected = sorted(_generated("retell_calls", _workspace_clients(workspace)),
                      key=lambda c: (c["start_timestamp"], c["call_id"]))
    seen, pages = [], 0
    page = retell.call.list(limit=PAGE, sort_order="ascending")
    while True:
        pages += 1
        seen += page.items
        if not page.has_more:
            assert page.pagination_key is None
            break
        page = retell.call.list(limit=PAGE, sort_order="ascending", pagination_key=page.pagination_key)
    assert pages == math.ceil(len(expected) / PAGE)
    assert [call.to_dict() for call in seen] == expected
    for call in seen:
        model = ItemV3PhoneCallResponse if call.call_type == "phone_call" else ItemV3WebCallResponse
        assert type(call) is model
    assert retell.call.list(limit=1, include_total=True).total == len(expected)
    assert retell.call.list(limit=1).total is None


def test_retell_sdk_retrieves_every_call_by_id(sandbox):
    sdks = [_retell(sandbox, workspace) for workspace in range(CONFIG.retell_workspaces)]
    for client in clients(CONFIG):
        own, other = sdks[client.retell_workspace], sdks[1 - client.retell_workspace]
        calls = [c for day in CONFIG.iter_days() for c in client_day(CONFIG, client.index, day).retell_calls]
        for call in calls:
            assert own.call.retrieve(call["call_id"]).to_dict() == call
        with pytest.raises(NotFoundError):
            other.call.retrieve(calls[0]["call_id"])  # another workspace's call
    with pytest.raises(NotFoundError):
        sdks[0].call.retrieve("call_" + "0" * 28)


def test_retell_strict_validation_rejects_a_call_without_its_agent_id(sandbox, monkeypatch):
    """The guard the tests above rely on: strict mode does fail on a missing required field."""
    from sandbox import retell_api

    real_client_day = retell_api.client_day

    def without_agent_id(config, index, day):
        usage = real_client_day(config, index, day)
        return type(usage)([{k: v for k, v in c.items() if k != "agent_id"} for c in usage.retell_calls],
                           usage.twilio_calls, usage.twilio_messages)

    monkeypatch.setattr(retell_api, "client_day", without_agent_id)
    with pytest.raises(APIResponseValidationError):
        _retell(sandbox, 0).call.list(limit=1)


# --- Twilio (twilio SDK, typed instances) -----------------------------------------------------------

class SandboxHttpClient(TwilioHttpClient):
    """Sends what the SDK addresses to api.twilio.com to the sandbox instead, and remembers the URLs."""

    def __init__(self, sandbox_url: str):
        super().__init__()
        self.sandbox_url = f"{sandbox_url}/twilio"
        self.urls: list[str] = []

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        assert parts.netloc.endswith("twilio.com"), url
        self.urls.append(url)
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method, self.sandbox_url + rest, *args, **kwargs)


def _twilio(sandbox, account_sid: str | None = None) -> tuple[TwilioClient, SandboxHttpClient]:
    http = SandboxHttpClient(sandbox.base_url)
    client = TwilioClient(CONFIG.twilio_account_sid, CONFIG.twilio_auth_token, account_sid=account_sid,
                          http_client=http)
    return client, http


def _assert_paged(http: SandboxHttpClient, records: int, page_size: int = PAGE) -> None:
    """The SDK asked page after page, following next_page_uri (which carries the PageToken) to the end."""
    assert len(http.urls) == max(1, math.ceil(records / page_size))
    assert all("PageToken=PA" in url for url in http.urls[1:])


def test_twilio_sdk_lists_the_master_account_and_its_subaccounts(sandbox):
    twilio, http = _twilio(sandbox)
    accounts = twilio.api.v2010.accounts.list(page_size=2)
    master = CONFIG.twilio_account_sid
    assert [a.sid for a in accounts] == [master] + [c.twilio_subaccount_sid for c in clients(CONFIG)]
    assert {a.owner_account_sid for a in accounts} == {master}
    assert all(a.status == "active" and a.uri == f"/2010-04-01/Accounts/{a.sid}.json" for a in accounts)
    assert all(a.date_created.tzinfo is not None for a in accounts)
    _assert_paged(http, len(accounts), page_size=2)


@pytest.mark.parametrize("client_index", range(CONFIG.clients))
def test_twilio_sdk_pages_through_the_calls_of_a_subaccount(sandbox, client_index):
    account = clients(CONFIG)[client_index].twilio_subaccount_sid
    twilio, http = _twilio(sandbox, account)
    expected = {leg["sid"]: leg for leg in _generated("twilio_calls", [client_index])}
    calls = twilio.calls.list(page_size=PAGE)
    assert len(calls) == len(expected) == len({c.sid for c in calls})
    _assert_paged(http, len(expected))
    for call in calls:
        leg = expected[call.sid]
        assert call.account_sid == account
        assert (call.price, call.price_unit, call.duration) == (leg["price"], "USD", leg["duration"])
        assert Decimal(call.price) <= 0
        assert call.start_time == _rfc2822(leg["start_time"]) and call.end_time == _rfc2822(leg["end_time"])
        assert call.date_created == _rfc2822(leg["date_created"])
        assert (call.direction, call.status, call._from, call.to) == (leg["direction"], leg["status"], leg["from"],
                                                                      leg["to"])


@pytest.mark.parametrize("client_index", range(CONFIG.clients))
def test_twilio_sdk_pages_through_the_messages_of_a_subaccount(sandbox, client_index):
    account = clients(CONFIG)[client_index].twilio_subaccount_sid
    twilio, http = _twilio(sandbox, account)
    expected = {m["sid"]: m for m in _generated("twilio_messages", [client_index])}
    messages = twilio.messages.list(page_size=PAGE)
    assert len(messages) == len(expected) == len({m.sid for m in messages})
    _assert_paged(http, len(expected))
    for message in messages:
        generated = expected[message.sid]
        assert (message.price, message.price_unit) == (generated["price"], "USD")
        assert (message.num_segments, message.num_media) == (generated["num_segments"], generated["num_media"])
        assert message.date_sent == _rfc2822(generated["date_sent"])
        assert message.error_code is None and message.from_ == generated["from"]


def test_twilio_sdk_pages_with_a_start_time_filter(sandbox):
    account = clients(CONFIG)[0].twilio_subaccount_sid
    twilio, http = _twilio(sandbox, account)
    since = END_DATE - timedelta(days=1)
    calls = twilio.calls.list(start_time_after=datetime.combine(since, time(), UTC), page_size=3)
    expected = [leg["sid"] for day in (since, END_DATE) for leg in client_day(CONFIG, 0, day).twilio_calls]
    assert sorted(c.sid for c in calls) == sorted(expected)
    _assert_paged(http, len(expected), page_size=3)


def test_twilio_sdk_fetches_every_call_and_message_by_sid(sandbox):
    for client in clients(CONFIG):
        twilio, _ = _twilio(sandbox, client.twilio_subaccount_sid)
        for leg in _generated("twilio_calls", [client.index]):
            call = twilio.calls(leg["sid"]).fetch()
            assert (call.sid, call.price, call.duration, call.start_time) == (
                leg["sid"], leg["price"], leg["duration"], _rfc2822(leg["start_time"]))
        for generated in _generated("twilio_messages", [client.index]):
            message = twilio.messages(generated["sid"]).fetch()
            assert (message.sid, message.price, message.num_segments) == (
                generated["sid"], generated["price"], generated["num_segments"])


def test_twilio_sdk_fetch_is_404_for_an_unknown_sid_or_another_account(sandbox):
    first, second = clients(CONFIG)[:2]
    twilio, _ = _twilio(sandbox, second.twilio_subaccount_sid)
    leg = _generated("twilio_calls", [first.index])[0]
    message = _generated("twilio_messages", [first.index])[0]
    for fetch in (twilio.calls(leg["sid"]).fetch, twilio.messages(message["sid"]).fetch,
                  twilio.calls("CA" + "0" * 32).fetch):
        with pytest.raises(TwilioRestException) as raised:
            fetch()
        assert (raised.value.status, raised.value.code) == (404, 20404)


@pytest.mark.parametrize("client_index", range(CONFIG.clients))
def test_twilio_sdk_reads_daily_usage_records_of_a_subaccount(sandbox, client_index):
    twilio, http = _twilio(sandbox, clients(CONFIG)[client_index].twilio_subaccount_sid)
    records = twilio.usage.records.daily.list(page_size=PAGE)
    assert len(records) == CONFIG.days * len(USAGE_CATEGORIES)
    _assert_paged(http, len(records))
    days = {}
    for record in records:
        count, usage, price = usage_totals(client_day(CONFIG, client_index, record.start_date))[record.category]
        assert (int(record.count), Decimal(record.usage), record.price) == (count, usage, price)
        assert isinstance(record.price, Decimal) and record.price_unit == "usd"
        assert record.end_date == record.start_date
        days.setdefault(record.start_date, set()).add(record.category)
    assert days == {day: {c for c, *_ in USAGE_CATEGORIES} for day in CONFIG.iter_days()}


def test_twilio_sdk_reads_master_usage_including_subaccounts(sandbox):
    twilio, _ = _twilio(sandbox)
    records = twilio.usage.records.daily.list(category="totalprice", include_subaccounts=True, page_size=PAGE)
    assert len(records) == CONFIG.days
    charged = sum(-Decimal(r["price"]) for kind in ("twilio_calls", "twilio_messages") for r in _generated(kind))
    assert sum(r.price for r in records) == charged > 0


# --- OpenRouter (openrouter SDK, pydantic models) -----------------------------------------------

def _openrouter(server) -> OpenRouter:
    no_retries = RetryConfig("none", BackoffStrategy(1, 1, 1, 1), False)
    return OpenRouter(api_key=CONFIG.openrouter_management_key, server_url=f"{server.base_url}/openrouter/api/v1",
                      retry_config=no_retries)


def test_openrouter_sdk_reads_activity_per_key_and_day(sandbox):
    openrouter = _openrouter(sandbox)
    rows = 0
    for client in clients(CONFIG):
        for day in CONFIG.iter_days():
            expected = openrouter_activity(CONFIG, client.index, day)
            activity = openrouter.analytics.get_user_activity(
                request={"api_key_hash": client.openrouter_key_hash, "date": day.isoformat()}).data
            assert [row.model_dump(by_alias=True) for row in activity] == expected
            rows += len(activity)
    assert rows > 0


def test_openrouter_sdk_reads_account_activity_and_credits(sandbox):
    openrouter = _openrouter(sandbox)
    generated = [row for day in CONFIG.iter_days() for c in clients(CONFIG)
                 for row in openrouter_activity(CONFIG, c.index, day)]
    total = sum(Decimal(str(row["usage"])) for row in generated)
    activity = openrouter.analytics.get_user_activity().data
    assert len(activity) == len({(r["date"], r["model_permaslug"], r["endpoint_id"]) for r in generated})
    assert sum(Decimal(str(row.usage)) for row in activity) == total
    assert sum(row.cached_tokens for row in activity) == sum(row["cached_tokens"] for row in generated)
    credits = openrouter.credits.get_credits().data
    assert Decimal(str(credits.total_usage)) == total and credits.total_credits > credits.total_usage


def test_openrouter_sdk_lists_keys(sandbox):
    keys = _openrouter(sandbox).api_keys.list().data
    assert [k.hash for k in keys] == [c.openrouter_key_hash for c in clients(CONFIG)]
    for key, client in zip(keys, clients(CONFIG), strict=True):
        usage = sum(Decimal(str(r["usage"])) for day in CONFIG.iter_days()
                    for r in openrouter_activity(CONFIG, client.index, day))
        assert Decimal(str(key.usage)) == usage
        assert key.workspace_id == default_workspace_id(CONFIG)
        assert key.last_used_at == datetime.combine(CONFIG.end_date, time(23, 59), tzinfo=UTC)


def test_openrouter_sdk_pages_keys_by_offset():
    server = start_in_thread(MANY_KEYS)
    try:
        openrouter = _openrouter(server)
        hashes, offset, pages = [], 0, 0
        while page := openrouter.api_keys.list(offset=offset).data:
            pages += 1
            hashes += [k.hash for k in page]
            offset += len(page)
    finally:
        server.shutdown()
        server.server_close()
    assert hashes == [c.openrouter_key_hash for c in clients(MANY_KEYS)]
    assert pages == math.ceil(MANY_KEYS.clients / KEYS_PAGE) == 2


# --- unsettled prices, as the SDKs see them ---------------------------------------------------------

def test_sdks_read_unsettled_by_id_responses_and_the_settled_ones(sandbox):
    control = f"{sandbox.base_url}/_sandbox"
    client = clients(CONFIG)[0]
    usage = client_day(CONFIG, client.index, END_DATE)
    call = next(c for c in usage.retell_calls if c["call_type"] == "phone_call")
    leg = next(leg for leg in usage.twilio_calls if _rfc2822(leg["date_created"]).date() == END_DATE)
    message = usage.twilio_messages[0]
    retell = _retell(sandbox, client.retell_workspace)
    twilio, _ = _twilio(sandbox, client.twilio_subaccount_sid)
    requests.post(f"{control}/pending", json={"days": 1}, timeout=5).raise_for_status()
    try:
        unpriced = retell.call.retrieve(call["call_id"])
        assert unpriced.call_cost is None and unpriced.llm_token_usage is None
        assert twilio.calls(leg["sid"]).fetch().price is None
        assert twilio.messages(message["sid"]).fetch().price is None
        settled = requests.post(f"{control}/settle", json={"ids": [call["call_id"], leg["sid"]]}, timeout=5)
        assert settled.json()["settled_ids"] == sorted([call["call_id"], leg["sid"]])
        assert retell.call.retrieve(call["call_id"]).call_cost.combined_cost == call["call_cost"]["combined_cost"]
        assert twilio.calls(leg["sid"]).fetch().price == leg["price"]
        assert twilio.messages(message["sid"]).fetch().price is None
    finally:
        requests.delete(f"{control}/pending", timeout=5)
    assert twilio.messages(message["sid"]).fetch().price == message["price"]


def test_a_by_id_lookup_generates_only_its_own_client_day(sandbox):
    client = clients(CONFIG)[2]
    day = next(d for d in CONFIG.iter_days() if client_day(CONFIG, client.index, d).twilio_messages)
    call = client_day(CONFIG, client.index, day).retell_calls[0]
    message = client_day(CONFIG, client.index, day).twilio_messages[0]
    retell = _retell(sandbox, client.retell_workspace)
    twilio, _ = _twilio(sandbox, client.twilio_subaccount_sid)
    retell.call.retrieve(call["call_id"])
    twilio.messages(message["sid"]).fetch()  # builds both id indexes before counting
    client_day.cache_clear()
    retell.call.retrieve(call["call_id"])
    twilio.messages(message["sid"]).fetch()
    info = client_day.cache_info()
    assert (info.misses, info.hits) == (1, 1)
