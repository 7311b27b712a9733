"""Collectors against the sandbox: retries, Retry-After, timeouts, loud failures, kill-and-rerun,
late prices, incremental re-runs, several accounts and the Twilio concurrency cap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import dlt
import pytest
import requests
import yaml
from dlt.pipeline.exceptions import PipelineStepFailed
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth

from billing_usage.settings import NOW_ENV, PROJECT_ROOT
from dlt_sources.http_client import ProviderClient, ProviderError, retry_after_seconds
from dlt_sources.openrouter import missed_days, openrouter_source
from dlt_sources.pending import OPEN_MAX_AGE_DAYS
from dlt_sources.retell import retell_source
from dlt_sources.twilio import twilio_source
from dlt_sources.twilio.helpers import NextPageUriPaginator
from dlt_sources.twilio.settings import MAX_CONCURRENCY
from sandbox.agency import clients
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.totals import iter_records
from sandbox.usage import client_day
from tests.conftest import SMALL, TEST_NOW

pytestmark = pytest.mark.integration
FAST_RETRY = {"max_attempts": 8, "backoff_seconds": 0.01}


def _retell(server, config=SMALL, **options):
    workspaces = [{"name": f"ws{n}", "api_key": config.retell_api_key(n)} for n in range(config.retell_workspaces)]
    return retell_source(workspaces=workspaces, base_url=f"{server.base_url}/retell", **{**FAST_RETRY, **options})


def _twilio(server, config=SMALL, **options):
    accounts = [{"account_sid": config.twilio_account_sid, "auth_token": config.twilio_auth_token}]
    return twilio_source(accounts=accounts, base_url=f"{server.base_url}/twilio", **{**FAST_RETRY, **options})


def _openrouter(server, config=SMALL, **options):
    accounts = [{"name": "agency", "management_key": config.openrouter_management_key}]
    return openrouter_source(accounts=accounts, base_url=f"{server.base_url}/openrouter/api/v1",
                             **{**FAST_RETRY, **options})


@pytest.fixture
def warehouse(database_factory):
    return database_factory("collect")


@pytest.fixture
def pipelines_dir(tmp_path):
    return str(tmp_path / "dlt")


def _pipeline(warehouse, name: str, pipelines_dir: str) -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name=name, destination=dlt.destinations.postgres(credentials=warehouse.url),
                        dataset_name=f"raw_{name}", pipelines_dir=pipelines_dir)


def _scalar(warehouse, sql: str):
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def _generated(config: SandboxConfig, kind: str) -> list[dict]:
    return [r for provider, _, r in iter_records(config)
            if (kind == "retell" and provider == "retell")
            or (kind == "twilio_calls" and provider == "twilio" and r["sid"].startswith("CA"))
            or (kind == "twilio_messages" and provider == "twilio" and not r["sid"].startswith("CA"))]


def _faults(server, *rules: dict) -> None:
    for rule in rules:
        requests.post(f"{server.base_url}/_sandbox/faults", json=rule, timeout=5).raise_for_status()


def _served(server) -> int:
    """Requests the sandbox answered so far; this one counts itself."""
    return requests.get(f"{server.base_url}/_sandbox/health", timeout=5).json()["requests_served"]


def _hold(server, ids: list[str]) -> None:
    """Hold these ids back as pending, whatever their day, until settled by id."""
    requests.post(f"{server.base_url}/_sandbox/pending", json={"ids": ids}, timeout=5).raise_for_status()


def _settle(server, ids: list[str]) -> None:
    requests.post(f"{server.base_url}/_sandbox/settle", json={"ids": ids}, timeout=5).raise_for_status()


def _accounts_state(pipeline: dlt.Pipeline, source: str, resource: str) -> dict:
    return pipeline.state["sources"][source]["resources"][resource]["accounts"]


@pytest.fixture(autouse=True)
def _clean_sandbox(sandbox_server):
    yield
    requests.delete(f"{sandbox_server.base_url}/_sandbox/faults", timeout=5)
    requests.delete(f"{sandbox_server.base_url}/_sandbox/pending", timeout=5)


def test_429_storm_and_5xx_are_retried_without_loss(sandbox_server, warehouse, pipelines_dir):
    _faults(sandbox_server, {"provider": "twilio", "status": 429, "count": 5},
            {"provider": "twilio", "status": 500, "count": 1}, {"provider": "twilio", "status": 503, "count": 1})
    pipeline = _pipeline(warehouse, "twilio", pipelines_dir)
    pipeline.run(_twilio(sandbox_server))
    assert _scalar(warehouse, "select count(*) from raw_twilio.calls") == len(_generated(SMALL, "twilio_calls"))
    assert _scalar(warehouse, "select count(distinct sid) from raw_twilio.calls") == len(
        _generated(SMALL, "twilio_calls"))
    retries = sum(account["retries_last_run"]
                  for account in pipeline.state["sources"]["twilio"]["resources"]["calls"]["accounts"].values())
    assert retries == 7


def test_retry_after_is_honoured(sandbox_server):
    _faults(sandbox_server, {"provider": "openrouter", "status": 429, "count": 1, "retry_after": 1})
    client = ProviderClient("openrouter", f"{sandbox_server.base_url}/openrouter/api/v1", account="agency",
                            backoff_base=0.01, auth=BearerTokenAuth(token=SMALL.openrouter_management_key))
    started = time.monotonic()
    assert client.get("/credits")["data"]["total_usage"] > 0
    assert time.monotonic() - started >= 1.0
    assert client.stats.retries == 1


def test_retry_after_ms_wins_over_retry_after_and_a_date_is_ignored():
    def response(**headers) -> requests.Response:
        answer = requests.Response()
        answer.headers.update(headers)
        return answer

    assert retry_after_seconds(response(**{"retry-after-ms": "250", "Retry-After": "3"})) == 0.25
    assert retry_after_seconds(response(**{"Retry-After": "1.5"})) == 1.5
    assert retry_after_seconds(response(**{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0
    assert retry_after_seconds(None) == 0


def test_twilio_next_page_uri_keeps_the_base_urls_path():
    paginator = NextPageUriPaginator("http://127.0.0.1:8787/twilio")
    page = requests.Response()
    page._content = b'{"calls": [], "next_page_uri": "/2010-04-01/Accounts/AC1/Calls.json?PageSize=2&PageToken=PA1"}'
    paginator.update_state(page, [])
    request = requests.Request("GET", "http://127.0.0.1:8787/twilio/2010-04-01/Accounts/AC1/Calls.json",
                               params={"PageSize": 2})
    paginator.update_request(request)
    assert request.url == "http://127.0.0.1:8787/twilio/2010-04-01/Accounts/AC1/Calls.json?PageSize=2&PageToken=PA1"
    assert request.params is None


def test_slow_page_times_out_and_is_retried(sandbox_server, warehouse, pipelines_dir):
    _faults(sandbox_server, {"provider": "retell", "status": None, "count": 1, "delay_ms": 1500})
    _pipeline(warehouse, "retell", pipelines_dir).run(_retell(sandbox_server, request_timeout=0.5))
    assert _scalar(warehouse, "select count(*) from raw_retell.calls") == len(_generated(SMALL, "retell"))


def test_bad_credentials_fail_loudly_with_the_providers_error_and_no_secret(sandbox_server, warehouse,
                                                                          pipelines_dir):
    secret = "key_" + uuid.uuid4().hex
    source = retell_source(workspaces=[{"name": "main", "api_key": secret}],
                           base_url=f"{sandbox_server.base_url}/retell", **FAST_RETRY)
    with pytest.raises(PipelineStepFailed) as failure:
        _pipeline(warehouse, "retell", pipelines_dir).run(source)
    text = "".join(str(e) for e in (failure.value, failure.value.__cause__, failure.value.__context__))
    assert "HTTP 401" in text and "Invalid API key" in text and "account main" in text
    assert secret not in text


def test_persistent_5xx_gives_up_with_the_provider_message_and_keeps_the_cursor(sandbox_server, warehouse,
                                                                                pipelines_dir):
    _faults(sandbox_server, {"provider": "openrouter", "status": 502, "count": 3})
    pipeline = _pipeline(warehouse, "openrouter", pipelines_dir)
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(_openrouter(sandbox_server, max_attempts=3))
    cause = failure.value.__cause__
    while cause is not None and not isinstance(cause, ProviderError):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, ProviderError) and cause.status == 502 and cause.provider_message == "Bad Gateway"
    assert "sources" not in pipeline.state or not pipeline.state["sources"].get("openrouter")
    pipeline.run(_openrouter(sandbox_server))
    assert _scalar(warehouse, "select count(*) from raw_openrouter.activity") == sum(
        1 for p, _, _ in iter_records(SMALL) if p == "openrouter")


KILLABLE_RUN = textwrap.dedent("""
    import sys, dlt
    from dlt_sources.twilio import twilio_source
    url, credentials, pipelines_dir, sid, token = sys.argv[1:6]
    pipeline = dlt.pipeline(pipeline_name="twilio", destination=dlt.destinations.postgres(credentials=credentials),
                            dataset_name="raw_twilio", pipelines_dir=pipelines_dir)
    pipeline.run(twilio_source(accounts=[{"account_sid": sid, "auth_token": token}], base_url=url,
                               backoff_seconds=0.01))
""")


@pytest.mark.parametrize("kill_after", [0.4, 1.2, 2.5])
def test_a_run_killed_at_any_point_loses_and_duplicates_nothing(sandbox_server, warehouse, pipelines_dir,
                                                                kill_after):
    _faults(sandbox_server, {"provider": "twilio", "status": None, "count": 12, "delay_ms": 150})
    process = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_RUN, f"{sandbox_server.base_url}/twilio", warehouse.url, pipelines_dir,
         SMALL.twilio_account_sid, SMALL.twilio_auth_token], cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_after)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    requests.delete(f"{sandbox_server.base_url}/_sandbox/faults", timeout=5)
    # The next run starts in a working folder of its own, as every Dagster run does (ingestion.py): the
    # killed run's half-loaded package is abandoned, state comes from the warehouse, and merge keys
    # absorb what the killed run committed. (Resuming a package in place can replay a load job into
    # staging tables that were not truncated again: dlt-hub/dlt#3023.)
    _pipeline(warehouse, "twilio", f"{pipelines_dir}_next").run(_twilio(sandbox_server))
    for table, kind in (("calls", "twilio_calls"), ("messages", "twilio_messages")):
        expected = _generated(SMALL, kind)
        assert _scalar(warehouse, f"select count(*) from raw_twilio.{table}") == len(expected)
        assert _scalar(warehouse, f"select count(distinct sid) from raw_twilio.{table}") == len(expected)
    cost = _scalar(warehouse, "select sum(-price::numeric) from raw_twilio.calls")
    assert cost == sum(-Decimal(r["price"]) for r in _generated(SMALL, "twilio_calls"))


def test_late_prices_update_the_raw_rows_in_place(sandbox_server, warehouse, pipelines_dir):
    requests.post(f"{sandbox_server.base_url}/_sandbox/pending", json={"days": 1}, timeout=5)
    twilio = _pipeline(warehouse, "twilio", pipelines_dir)
    retell = _pipeline(warehouse, "retell", pipelines_dir)
    twilio.run(_twilio(sandbox_server))
    retell.run(_retell(sandbox_server))
    unsettled = _scalar(warehouse, "select count(*) from raw_twilio.calls where price is null")
    uncosted = _scalar(warehouse, "select count(*) from raw_retell.calls where call_cost is null")
    assert unsettled > 0 and uncosted > 0
    requests.delete(f"{sandbox_server.base_url}/_sandbox/pending", timeout=5)
    twilio.run(_twilio(sandbox_server))
    retell.run(_retell(sandbox_server))
    legs = _generated(SMALL, "twilio_calls")
    assert _scalar(warehouse, "select count(*) from raw_twilio.calls") == len(legs)
    assert _scalar(warehouse, "select count(*) from raw_twilio.calls where price is null") == 0
    assert _scalar(warehouse, "select sum(-price::numeric) from raw_twilio.calls") == sum(
        -Decimal(r["price"]) for r in legs)
    calls = _generated(SMALL, "retell")
    assert _scalar(warehouse, "select count(*) from raw_retell.calls") == len(calls)
    assert _scalar(warehouse, "select sum((call_cost->>'combined_cost')::numeric) from raw_retell.calls") == sum(
        Decimal(str(c["call_cost"]["combined_cost"])) for c in calls)


def test_second_run_rereads_only_the_lookback_window(sandbox_server, warehouse, pipelines_dir, monkeypatch):
    pipeline = _pipeline(warehouse, "retell", pipelines_dir)
    pipeline.run(_retell(sandbox_server))
    first = pipeline.state["sources"]["retell"]["resources"]["calls"]["accounts"]["ws0"]
    monkeypatch.setenv(NOW_ENV, (datetime.fromisoformat(TEST_NOW) + timedelta(hours=1)).isoformat())  # an hour on
    pipeline.run(_retell(sandbox_server, lookback_hours=48))
    second = pipeline.state["sources"]["retell"]["resources"]["calls"]["accounts"]["ws0"]
    window_start = first["cursor"] - 48 * 3_600_000
    in_window = sum(1 for c in _generated(SMALL, "retell") if c["start_timestamp"] >= window_start)
    assert first["rows_last_run"] == len(_generated(SMALL, "retell"))
    assert second["rows_last_run"] == in_window < first["rows_last_run"]
    newest = max(c["start_timestamp"] for c in _generated(SMALL, "retell"))
    assert second["cursor"] == first["cursor"] == newest  # the newest call listed, not the run's start
    assert _scalar(warehouse, "select count(*) from raw_retell.calls") == first["rows_last_run"]


def test_a_run_with_nothing_new_reads_again_only_what_can_still_change(sandbox_server, warehouse, pipelines_dir,
                                                                       monkeypatch):
    """Defaults: Retell lists again an hour behind its cursor, Twilio from its cursor's day. What a run saw
    unpriced is fetched again by id on the next runs, with no model build in between, until it settles or
    was first seen more than OPEN_MAX_AGE_DAYS ago."""
    settles, never_settles = client_day(SMALL, 0, SMALL.start_date).retell_calls[:2]
    held_leg = client_day(SMALL, 0, SMALL.start_date).twilio_calls[0]
    _hold(sandbox_server, [settles["call_id"], never_settles["call_id"], held_leg["sid"]])
    retell, twilio = _pipeline(warehouse, "retell", pipelines_dir), _pipeline(warehouse, "twilio", pipelines_dir)

    def collect(now: datetime) -> tuple[dict, dict, dict]:
        monkeypatch.setenv(NOW_ENV, now.isoformat())
        retell.run(_retell(sandbox_server))
        twilio.run(_twilio(sandbox_server))
        return (_accounts_state(retell, "retell", "calls")["ws0"], _accounts_state(twilio, "twilio", "calls"),
                _accounts_state(twilio, "twilio", "messages"))

    first_run = datetime.fromisoformat(TEST_NOW)
    seen_on = first_run.date().isoformat()
    calls, legs, _ = collect(first_run)
    assert calls["open"] == {settles["call_id"]: seen_on, never_settles["call_id"]: seen_on}
    assert legs[held_leg["account_sid"]]["open"] == {held_leg["sid"]: seen_on}

    calls, legs, messages = collect(first_run + timedelta(hours=1))  # nothing new, nothing settled
    overlap = sum(1 for c in _generated(SMALL, "retell") if c["start_timestamp"] >= calls["cursor"] - 3_600_000)
    assert 0 < overlap < len(_generated(SMALL, "retell")) / SMALL.days  # the newest call's last hour
    assert (calls["rows_last_run"], calls["refetched_last_run"], calls["settled_last_run"]) == (overlap + 2, 2, 0)
    assert {sid: state["rows_last_run"] for sid, state in legs.items() if state["rows_last_run"]} == {
        held_leg["account_sid"]: 1}
    assert sum(state["rows_last_run"] for state in messages.values()) == 0

    _settle(sandbox_server, [settles["call_id"], held_leg["sid"]])
    calls, legs, _ = collect(first_run + timedelta(hours=2))
    assert (calls["refetched_last_run"], calls["settled_last_run"]) == (2, 1)
    assert calls["open"] == {never_settles["call_id"]: seen_on}
    assert (legs[held_leg["account_sid"]]["settled_last_run"], legs[held_leg["account_sid"]]["open"]) == (1, {})
    assert _scalar(warehouse, f"select (call_cost->>'combined_cost')::numeric from raw_retell.calls "
                              f"where call_id = '{settles['call_id']}'") == Decimal(
        str(settles["call_cost"]["combined_cost"]))
    leg_price = _scalar(warehouse, f"select price from raw_twilio.calls where sid = '{held_leg['sid']}'")
    assert leg_price == held_leg["price"]

    calls, _, _ = collect(first_run + timedelta(days=OPEN_MAX_AGE_DAYS + 1))
    assert (calls["open_dropped_last_run"], calls["refetched_last_run"], calls["open"]) == (1, 0, {})
    assert _scalar(warehouse, f"select call_cost from raw_retell.calls "
                              f"where call_id = '{never_settles['call_id']}'") is None


def test_collectors_stop_asking_when_the_models_expire_a_price():
    models = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text())
    assert models["vars"]["pending_max_age_days"] == OPEN_MAX_AGE_DAYS


def test_several_retell_workspaces_and_twilio_subaccounts(warehouse, pipelines_dir):
    config = SandboxConfig(seed=11, clients=4, agents_per_client=1, days=2, calls_per_agent_per_day=3,
                           retell_workspaces=2, end_date=SMALL.end_date)
    server = start_in_thread(config)
    try:
        retell = _pipeline(warehouse, "retell", pipelines_dir)
        retell.run(_retell(server, config))
        _pipeline(warehouse, "twilio", pipelines_dir).run(_twilio(server, config))
    finally:
        server.shutdown()
    assert set(retell.state["sources"]["retell"]["resources"]["calls"]["accounts"]) == {"ws0", "ws1"}
    assert _scalar(warehouse, "select count(distinct workspace) from raw_retell.calls") == 2
    assert _scalar(warehouse, "select count(*) from raw_retell.calls") == len(_generated(config, "retell"))
    subaccounts = {c.twilio_subaccount_sid for c in clients(config)}
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select distinct account_sid from raw_twilio.calls")
        assert {row[0] for row in cursor.fetchall()} == subaccounts


def test_twilio_subaccounts_are_collected_in_parallel_within_the_cap(warehouse, pipelines_dir):
    config = SandboxConfig(seed=5, clients=3 * MAX_CONCURRENCY, agents_per_client=1, days=2,
                           calls_per_agent_per_day=2, end_date=SMALL.end_date)
    server = start_in_thread(config)
    try:
        _faults(server, {"provider": "twilio", "status": None, "count": 10_000, "delay_ms": 100})
        pipeline = _pipeline(warehouse, "twilio", pipelines_dir)
        pipeline.run(_twilio(server, config))
        observed = requests.get(f"{server.base_url}/_sandbox/health", timeout=5).json()["max_in_flight"]
    finally:
        server.shutdown()
    assert MAX_CONCURRENCY // 2 < observed <= MAX_CONCURRENCY
    subaccounts = {c.twilio_subaccount_sid for c in clients(config)}
    for resource in ("calls", "messages", "usage_records"):
        assert set(pipeline.state["sources"]["twilio"]["resources"][resource]["accounts"]) == {
            config.twilio_account_sid, *subaccounts}
    assert _scalar(warehouse, "select count(*) from raw_twilio.calls") == len(_generated(config, "twilio_calls"))
    assert _scalar(warehouse, "select count(distinct account_sid) from raw_twilio.calls") == len(subaccounts)


def test_twilio_errors_while_collecting_in_parallel_fail_the_run_and_move_no_cursor(sandbox_server, warehouse,
                                                                                      pipelines_dir):
    pipeline = _pipeline(warehouse, "twilio", pipelines_dir)
    _faults(sandbox_server, {"provider": "twilio", "status": None, "count": 6},  # listings and first pages pass
            {"provider": "twilio", "status": 503, "count": 100})
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(_twilio(sandbox_server, max_attempts=2))
    cause = failure.value.__cause__
    while cause is not None and not isinstance(cause, ProviderError):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, ProviderError) and cause.provider == "twilio" and cause.status == 503
    assert cause.account in {SMALL.twilio_account_sid, *(c.twilio_subaccount_sid for c in clients(SMALL))}
    assert SMALL.twilio_auth_token not in str(failure.value)
    assert "sources" not in pipeline.state or not pipeline.state["sources"].get("twilio")


@pytest.mark.parametrize("last_day, oldest, lost", [(None, "2026-01-31", 0), ("2026-01-30", "2026-01-31", 0),
                                                     ("2026-01-25", "2026-01-31", 5)])
def test_openrouter_days_beyond_the_30_day_window_are_counted(last_day, oldest, lost):
    from datetime import date

    assert missed_days(date.fromisoformat(last_day) if last_day else None, date.fromisoformat(oldest)) == lost


def test_twilio_request_counts_are_what_the_provider_served(sandbox_server, warehouse, pipelines_dir):
    before = _served(sandbox_server)
    pipeline = _pipeline(warehouse, "twilio", pipelines_dir)
    pipeline.run(_twilio(sandbox_server))
    answered = _served(sandbox_server) - before - 1
    resources = pipeline.state["sources"]["twilio"]["resources"]
    recorded = sum(state["requests_last_run"] for resource in resources.values()
                   for state in resource["accounts"].values())
    assert recorded == answered and answered > 0


# Pending objects beyond the look-back window: fetched again by id (dlt_sources.pending).
NEXT_DAY = (datetime.fromisoformat(TEST_NOW) + timedelta(days=1)).isoformat()


def _first_of_each_account(records: list[dict], count: int) -> list[dict]:
    """The first record of `count` different accounts."""
    picked: dict[str, dict] = {}
    for record in records:
        picked.setdefault(record["account_sid"], record)
    assert len(picked) >= count
    return list(picked.values())[:count]


def test_pending_retell_calls_beyond_the_window_are_fetched_by_id(sandbox_server, warehouse, pipelines_dir,
                                                                  monkeypatch):
    client = clients(SMALL)[0]
    workspace = f"ws{client.retell_workspace}"
    old = client_day(SMALL, client.index, SMALL.start_date).retell_calls[:4]
    recent = client_day(SMALL, client.index, SMALL.end_date).retell_calls[-1]
    held = [call["call_id"] for call in [*old, recent]]
    _hold(sandbox_server, held)
    pipeline = _pipeline(warehouse, "retell", pipelines_dir)
    pipeline.run(_retell(sandbox_server))
    in_list = ", ".join(f"'{call_id}'" for call_id in held)
    assert _scalar(warehouse, f"select count(*) from raw_retell.calls where call_id in ({in_list}) "
                              "and call_cost is null") == len(held)
    first = dict(_accounts_state(pipeline, "retell", "calls")[workspace])

    settled = [old[0], old[1], recent]
    _settle(sandbox_server, [call["call_id"] for call in settled])
    monkeypatch.setenv(NOW_ENV, NEXT_DAY)
    window_start = first["cursor"] - 48 * 3_600_000
    assert all(call["start_timestamp"] < window_start for call in old) and recent["start_timestamp"] >= window_start
    before = _served(sandbox_server)
    pipeline.run(_retell(sandbox_server, lookback_hours=48,
                         pending_calls=[{"workspace": workspace, "call_id": call_id} for call_id in held]))
    answered = _served(sandbox_server) - before - 1

    second = _accounts_state(pipeline, "retell", "calls")[workspace]
    in_window = sum(1 for call in _generated(SMALL, "retell") if call["start_timestamp"] >= window_start)
    # The recent call came back with the window's pages and was not fetched again.
    assert (second["refetched_last_run"], second["settled_last_run"]) == (len(old), 2)
    assert (second["not_found_last_run"], second["not_found_ids_last_run"]) == (0, [])
    assert second["rows_last_run"] == in_window + len(old)
    assert second["requests_last_run"] == answered
    assert second["cursor"] == first["cursor"]  # nothing newer listed; by-id fetches do not move it
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"select call_id, (call_cost->>'combined_cost')::numeric, workspace from raw_retell.calls "
                       f"where call_id in ({in_list})")
        costs = {call_id: (cost, ws) for call_id, cost, ws in cursor.fetchall()}
    assert costs == {call["call_id"]: (Decimal(str(call["call_cost"]["combined_cost"])) if call in settled else None,
                                       workspace) for call in [*old, recent]}
    assert _scalar(warehouse, "select count(*) from raw_retell.calls") == len(_generated(SMALL, "retell"))


def test_pending_twilio_records_beyond_the_window_are_fetched_by_sid(sandbox_server, warehouse, pipelines_dir,
                                                                     monkeypatch):
    old_days = [client_day(SMALL, c.index, day) for day in (SMALL.start_date, SMALL.start_date + timedelta(days=1))
                for c in clients(SMALL)]
    old_calls = _first_of_each_account([leg for usage in old_days for leg in usage.twilio_calls], 2)
    old_messages = _first_of_each_account([m for usage in old_days for m in usage.twilio_messages], 2)
    recent = client_day(SMALL, 0, SMALL.end_date).twilio_calls[0]
    held = [*old_calls, *old_messages, recent]
    _hold(sandbox_server, [record["sid"] for record in held])
    pipeline = _pipeline(warehouse, "twilio", pipelines_dir)
    pipeline.run(_twilio(sandbox_server))

    def prices() -> dict[str, str | None]:
        with warehouse.connect() as connection, connection.cursor() as cursor:
            cursor.execute("select sid, price from raw_twilio.calls "
                           "union all select sid, price from raw_twilio.messages")
            return {sid: price for sid, price in cursor.fetchall() if sid in {r["sid"] for r in held}}

    assert prices() == {record["sid"]: None for record in held}
    settled = [old_calls[0], old_messages[0], recent]
    _settle(sandbox_server, [record["sid"] for record in settled])
    monkeypatch.setenv(NOW_ENV, NEXT_DAY)  # the 3-day window now starts after the old days
    before = _served(sandbox_server)
    pipeline.run(_twilio(sandbox_server, lookback_days=3,
                         pending_records=[{"account_sid": r["account_sid"], "sid": r["sid"]} for r in held]))
    answered = _served(sandbox_server) - before - 1

    assert prices() == {r["sid"]: r["price"] if r in settled else None for r in held}
    for resource, refetched in (("calls", old_calls), ("messages", old_messages)):
        accounts = _accounts_state(pipeline, "twilio", resource)
        for sid, state in accounts.items():
            mine = [r for r in refetched if r["account_sid"] == sid]
            assert state["refetched_last_run"] == len(mine)
            assert state["settled_last_run"] == sum(r in settled for r in mine)
            assert state["not_found_last_run"] == 0
        assert pipeline.state["sources"]["twilio"]["resources"][resource]["pending_skipped_last_run"] == []
    resources = pipeline.state["sources"]["twilio"]["resources"]
    all_accounts = [state for resource in resources.values() for state in resource["accounts"].values()]
    assert sum(state["requests_last_run"] for state in all_accounts) == answered
    assert {state["cursor"] for state in all_accounts} == {datetime.fromisoformat(NEXT_DAY).date().isoformat()}
    for table, kind in (("calls", "twilio_calls"), ("messages", "twilio_messages")):
        assert _scalar(warehouse, f"select count(*) from raw_twilio.{table}") == len(_generated(SMALL, kind))


def test_pending_ids_the_provider_does_not_know_are_counted_not_fatal(sandbox_server, warehouse, pipelines_dir):
    ghost_call = "call_" + uuid.uuid4().hex[:28]
    retell = _pipeline(warehouse, "retell", pipelines_dir)
    retell.run(_retell(sandbox_server, pending_calls=[{"workspace": "ws0", "call_id": ghost_call},
                                                      {"workspace": "gone", "call_id": "call_of_a_gone_workspace"}]))
    state = _accounts_state(retell, "retell", "calls")["ws0"]
    assert (state["refetched_last_run"], state["not_found_last_run"], state["not_found_ids_last_run"]) == (
        0, 1, [ghost_call])
    assert retell.state["sources"]["retell"]["resources"]["calls"]["pending_skipped_last_run"] == [
        "call_of_a_gone_workspace"]
    assert _scalar(warehouse, "select count(*) from raw_retell.calls") == len(_generated(SMALL, "retell"))

    subaccount = clients(SMALL)[0].twilio_subaccount_sid
    ghost_leg, ghost_message = "CA" + uuid.uuid4().hex, "SM" + uuid.uuid4().hex
    unknown_account_message = "SM" + uuid.uuid4().hex
    twilio = _pipeline(warehouse, "twilio", pipelines_dir)
    twilio.run(_twilio(sandbox_server, pending_records=[
        {"account_sid": subaccount, "sid": ghost_leg}, {"account_sid": subaccount, "sid": ghost_message},
        {"account_sid": "AC" + uuid.uuid4().hex, "sid": unknown_account_message}]))
    for resource, ghost in (("calls", ghost_leg), ("messages", ghost_message)):
        state = _accounts_state(twilio, "twilio", resource)[subaccount]
        assert (state["refetched_last_run"], state["not_found_last_run"], state["not_found_ids_last_run"]) == (
            0, 1, [ghost])
    resources = twilio.state["sources"]["twilio"]["resources"]
    assert resources["messages"]["pending_skipped_last_run"] == [unknown_account_message]
    assert _scalar(warehouse, "select count(*) from raw_twilio.calls") == len(_generated(SMALL, "twilio_calls"))


def test_other_by_id_errors_fail_the_run_and_move_no_cursor(sandbox_server, warehouse, pipelines_dir):
    pipeline = _pipeline(warehouse, "retell", pipelines_dir)
    list_pages = -(-len(_generated(SMALL, "retell")) // 1000)
    _faults(sandbox_server, {"provider": "retell", "status": None, "count": list_pages},  # the window passes
            {"provider": "retell", "status": 503, "count": 100})
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(_retell(sandbox_server, max_attempts=2,
                             pending_calls=[{"workspace": "ws0", "call_id": "call_" + uuid.uuid4().hex[:28]}]))
    cause = failure.value.__cause__
    while cause is not None and not isinstance(cause, ProviderError):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, ProviderError) and cause.status == 503 and "/v2/get-call/" in str(cause)
    assert SMALL.retell_api_key(0) not in str(failure.value)
    assert "sources" not in pipeline.state or not pipeline.state["sources"].get("retell")


def test_a_backfill_ignores_pending_ids(sandbox_server, warehouse, pipelines_dir):
    days = {"backfill_start": SMALL.start_date.isoformat(),
            "backfill_end": (SMALL.start_date + timedelta(days=1)).isoformat()}
    outside = client_day(SMALL, 0, SMALL.end_date).retell_calls[0]  # not on the backfill's day
    before = _served(sandbox_server)
    pipeline = _pipeline(warehouse, "retell", pipelines_dir)
    pipeline.run(_retell(sandbox_server, **days, pending_calls=[{"workspace": "ws0", "call_id": outside["call_id"]}]))
    answered = _served(sandbox_server) - before - 1
    state = _accounts_state(pipeline, "retell", "calls")["ws0"]
    assert (state["refetched_last_run"], state["not_found_last_run"], state["cursor"]) == (0, 0, None)
    assert state["requests_last_run"] == answered
    assert _scalar(warehouse, f"select count(*) from raw_retell.calls where call_id = '{outside['call_id']}'") == 0
