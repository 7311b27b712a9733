"""The reporting API on a real warehouse: ten sandbox days across the US DST change (8 March 2026), collected
and built once; every expectation is read from the events the pipeline built."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests
from dagster import DagsterInstance
from fastapi.testclient import TestClient

from billing_usage.settings import DATABASE_URL_ENV, NOW_ENV, PII_SALT_ENV, PROVIDERS_ENV, SANDBOX_PII_SALT
from billing_usage.tables import ensure_tables
from cli import api_tokens
from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from reporting_api.app import create_app
from reporting_api.openapi import DOCUMENT, render, served_schema
from reporting_api.params import encode_position
from reporting_api.tokens import create_token
from sandbox.agency import clients
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.usage import client_day
from tests.conftest import pipeline_environment, run_pipeline

pytestmark = pytest.mark.integration

# Ten days, 6-15 March 2026: New York springs forward on the 8th.
# The cases are written around the United States' DST change of 2026-03-08, so this module keeps its own
# fixed dates and business clock whatever end date the rest of the suite runs on.
API_END_DATE = date(2026, 3, 15)
API_NOW = "2026-03-16T06:00:00+00:00"
CONFIG = SandboxConfig(seed=7, clients=3, agents_per_client=2, days=10, calls_per_agent_per_day=6,
                       end_date=API_END_DATE)
NEW_YORK = ZoneInfo("America/New_York")
PROBLEM = "application/problem+json"


def _query(warehouse, sql: str, params=None) -> list[tuple]:
    connection = warehouse.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall() if cursor.description else []
        connection.commit()
        return rows
    finally:
        connection.close()  # the backend exits: its table statistics are flushed (CSV ETags read them)


def _held_call(client_index: int) -> str:
    """A priced Retell call of the last day whose price the sandbox keeps back: a pending event."""
    calls = client_day(CONFIG, client_index, CONFIG.end_date).retell_calls
    return [call for call in calls if call["call_cost"]["combined_cost"] > 0][-1]["call_id"]


@pytest.fixture(scope="module", autouse=True)
def api_clock():
    with pytest.MonkeyPatch.context() as env:
        env.setenv(NOW_ENV, API_NOW)
        yield API_NOW


@pytest.fixture(scope="module")
def warehouse(database_factory, tmp_path_factory):
    warehouse = database_factory("api")
    server = start_in_thread(CONFIG)
    server.pending.hold(ids=[_held_call(0)])  # client_001's open cycle has a pending price
    try:
        with pipeline_environment(warehouse, server, tmp_path_factory.mktemp("api") / "directory.json"), \
                pytest.MonkeyPatch.context() as env:
            env.setenv("SOURCES__RETELL__INITIAL_DAYS", str(CONFIG.days + 1))
            env.setenv("SOURCES__TWILIO__INITIAL_DAYS", str(CONFIG.days + 1))
            result = run_pipeline(DagsterInstance.ephemeral())
            assert result.success, result.summary_lines()
    finally:
        server.shutdown()
    connection = warehouse.connect()
    ensure_tables(connection)
    connection.close()
    return warehouse


@pytest.fixture(scope="module")
def tokens(warehouse) -> dict[str, str]:
    connection = warehouse.connect()
    try:
        return {"agency": create_token(connection, None, "tests")[1],
                "client_001": create_token(connection, "client_001")[1],
                "client_002": create_token(connection, "client_002")[1]}
    finally:
        connection.close()


@pytest.fixture(scope="module")
def http(warehouse):
    with TestClient(create_app(warehouse.connect)) as client:
        yield client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _get(http, tokens, url: str, who: str = "agency", **headers):
    return http.get(url, headers={**_auth(tokens[who]), **headers})


def _all_pages(http, tokens, url: str, who: str = "agency", limit: int = 1000, after: str | None = None) -> list[dict]:
    rows = []
    while True:
        page = _get(http, tokens, f"{url}&limit={limit}" + (f"&starting_after={after}" if after else ""), who)
        assert page.status_code == 200, page.text
        body = page.json()
        rows += body["data"]
        if not body["has_more"]:
            return rows
        after = body["next_starting_after"]


def _events(warehouse, start: datetime, end: datetime, client_id: str | None = None) -> list[dict]:
    columns = ["occurred_at", "client_id", "agent_id", "provider", "metric", "quantity", "cost_usd", "cost_status"]
    rows = _query(warehouse, f"""
        select {', '.join(columns)} from marts.fct_usage_events
        where occurred_at >= %s and occurred_at < %s and (%s::text is null or client_id = %s)""",
                  (start, end, client_id, client_id))
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


# ------------------------------------------------------------------ parameters and errors

BAD_USAGE_PARAMETERS = [
    ("window_size=day", "from"),
    ("from=yesterday", "from"),
    ("from=2026-03-06&to=03/10/2026", "to"),
    ("from=2026-03-10&to=2026-03-06", "to"),
    ("from=1900-01-01", "from"),
    ("from=2026-03-06&window_size=week", "window_size"),
    ("from=2020-01-01&to=2026-03-01&window_size=hour", "window_size"),
    ("from=2026-03-06&window_time_zone=Mars/Olympus_Mons", "window_time_zone"),
    ("from=2026-03-06&window_time_zone=../../etc/passwd", "window_time_zone"),
    ("from=2026-03-06&group_by=client,country", "group_by"),
    ("from=2026-03-06&limit=0", "limit"),
    ("from=2026-03-06&limit=1001", "limit"),
    ("from=2026-03-06&limit=ten", "limit"),
    ("from=2026-03-06&limit=5&limit=6", "limit"),
    ("from=2026-03-06&starting_after=not-a-row", "starting_after"),
    ("from=2026-03-06&group_by=client&starting_after=" + encode_position(["2026-03-06T00:00:00+00:00"]),
     "starting_after"),  # a row id of another query's shape
    ("from=2026-03-06&starting_after=" + encode_position(["2025-01-01T00:00:00+00:00"]), "starting_after"),
    ("from=2026-03-06&format=xml", "format"),
    ("from=2026-03-06&windowSize=day", "windowSize"),
]


@pytest.mark.parametrize(("query", "parameter"), BAD_USAGE_PARAMETERS)
def test_a_bad_usage_parameter_is_a_400_problem_naming_it(http, tokens, query, parameter):
    response = _get(http, tokens, f"/v1/usage?{query}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 400 and body["parameter"] == parameter
    assert body["invalid_params"][0]["name"] == parameter and parameter in body["detail"]


@pytest.mark.parametrize(("url", "parameter"), [
    ("/v1/clients?limit=-1", "limit"),
    ("/v1/clients?sort=name", "sort"),
    ("/v1/clients/client_001/cycles?limit=2000", "limit"),
    ("/v1/clients/client_001/cycles?starting_after=no_such_cycle", "starting_after"),
    ("/v1/clients/client_001/cycles/x/statement?format=pdf", "format"),
])
def test_a_bad_list_or_statement_parameter_is_a_400_problem_naming_it(http, tokens, url, parameter):
    response = _get(http, tokens, url)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["parameter"] == parameter


def test_an_unknown_client_filter_is_a_404_naming_client_id(http, tokens):
    response = _get(http, tokens, "/v1/usage?from=2026-03-06&client_id=client_999")
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM
    assert response.json()["parameter"] == "client_id"


# ------------------------------------------------------------------ windows and DST

def test_day_windows_follow_new_york_across_the_dst_change(http, tokens, warehouse):
    rows = _all_pages(http, tokens, "/v1/usage?from=2026-03-06&to=2026-03-16&window_size=day"
                                    "&window_time_zone=America/New_York", limit=3)
    windows = [(datetime.fromisoformat(row["window_start"]), datetime.fromisoformat(row["window_end"]))
               for row in rows]
    lengths = {start.astimezone(NEW_YORK).date(): end - start for start, end in windows}
    assert lengths[date(2026, 3, 8)] == timedelta(hours=23)  # 2 a.m. never happened
    assert lengths[date(2026, 3, 7)] == lengths[date(2026, 3, 9)] == timedelta(hours=24)
    assert windows[0][0] == _local_midnight(date(2026, 3, 6), NEW_YORK)
    assert all(row["window_start"].endswith(("-05:00", "-04:00")) for row in rows)
    # each window holds exactly the events of that New York day, bucketed here with zoneinfo
    expected: dict[date, list] = defaultdict(lambda: [0, Decimal(0)])
    for event in _events(warehouse, windows[0][0], _local_midnight(date(2026, 3, 16), NEW_YORK)):
        local_day = event["occurred_at"].astimezone(NEW_YORK).date()
        expected[local_day][0] += 1
        expected[local_day][1] += event["cost_usd"] or 0
    assert {start.astimezone(NEW_YORK).date(): [row["event_count"], Decimal(row["cost_usd"])]
            for (start, _), row in zip(windows, rows, strict=True)} == expected
    # the day of the change has events in its last hour (after 04:00 UTC would be the next day under EST)
    assert expected[date(2026, 3, 8)][0] > 0


def test_hour_windows_of_a_half_hour_zone_start_at_half_past(http, tokens, warehouse):
    kolkata = ZoneInfo("Asia/Kolkata")
    rows = _all_pages(http, tokens, "/v1/usage?from=2026-03-10T00:00:00%2B05:30&to=2026-03-12T00:00:00%2B05:30"
                                    "&window_size=hour&window_time_zone=Asia/Kolkata&group_by=provider")
    assert rows and all(datetime.fromisoformat(row["window_start"]).astimezone(UTC).minute == 30 for row in rows)
    expected: dict[tuple, int] = defaultdict(int)
    start, end = datetime(2026, 3, 10, tzinfo=kolkata), datetime(2026, 3, 12, tzinfo=kolkata)
    for event in _events(warehouse, start, end):
        hour = event["occurred_at"].astimezone(kolkata).replace(minute=0, second=0, microsecond=0)
        expected[(hour, event["provider"])] += 1
    assert {(datetime.fromisoformat(row["window_start"]), row["provider"]): row["event_count"] for row in rows} \
        == expected


def test_a_month_window_in_berlin_is_743_hours_long(http, tokens):
    body = _get(http, tokens, "/v1/usage?from=2026-03-01&to=2026-04-01&window_size=month"
                              "&window_time_zone=Europe/Berlin").json()
    (row,) = body["data"]
    length = datetime.fromisoformat(row["window_end"]) - datetime.fromisoformat(row["window_start"])
    assert length == timedelta(hours=743)  # clocks go forward on 29 March
    assert row["window_start"] == "2026-03-01T00:00:00+01:00"


# ------------------------------------------------------------------ figures

RECONCILED_QUERIES = [
    "window_size=day&group_by=client",                                            # whole UTC days: daily rollup
    "window_size=day&window_time_zone=America/New_York&group_by=client,provider",  # whole UTC hours: hourly
    "window_size=day&window_time_zone=America/New_York&group_by=agent",            # agents: events
    "window_size=month&window_time_zone=Europe/Berlin&group_by=metric",            # daily, hourly, events
    "window_size=hour&window_time_zone=Asia/Kolkata&group_by=provider",            # hourly and half hours
    "window_size=hour&window_time_zone=Asia/Kolkata&group_by=agent",
    "window_size=cycle&group_by=provider",                                         # each client's cycles
    "window_size=cycle&group_by=agent,metric",
    "group_by=client,agent,provider,metric",
]


@pytest.mark.parametrize("query", RECONCILED_QUERIES)
def test_usage_reconciles_with_the_events_to_the_cent(http, tokens, warehouse, query):
    start, end = datetime(2026, 3, 7, 12, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC)
    url = f"/v1/usage?from={start.isoformat().replace('+', '%2B')}&to={end.isoformat().replace('+', '%2B')}&{query}"
    rows = _all_pages(http, tokens, url, limit=250)
    groups = [group for group in ("client", "agent", "provider", "metric") if group in query]
    groups = ["client", *groups] if "cycle" in query and "client" not in groups else groups
    columns = {"client": "client_id", "agent": "agent_id", "provider": "provider", "metric": "metric"}
    expected: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0, 0])
    for event in _events(warehouse, start, end):
        if "cycle" in query and event["client_id"] == "unattributed":
            continue  # in no client's cycle
        figures = expected[tuple(event[columns[group]] for group in groups)]
        figures[0] += event["cost_usd"] or 0
        figures[1] += 1
        figures[2] += event["cost_status"] == "pending"
    found: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0, 0])
    for row in rows:
        figures = found[tuple(row[columns[group]] for group in groups)]
        figures[0] += Decimal(row["cost_usd"])
        figures[1] += row["event_count"]
        figures[2] += row["pending_events"]
    assert found == expected
    assert sum(figures[2] for figures in found.values()) > 0  # the held price


def test_money_is_a_decimal_string_never_a_float(http, tokens):
    body = _get(http, tokens, "/v1/usage?from=2026-03-06&group_by=metric").json()
    for row in body["data"]:
        assert isinstance(row["cost_usd"], str) and isinstance(row["quantity"], str)
        Decimal(row["cost_usd"])
    assert '"cost_usd":0.' not in _get(http, tokens, "/v1/usage?from=2026-03-06&group_by=metric").text


def test_cycle_windows_are_each_clients_billing_cycles(http, tokens, warehouse):
    rows = _all_pages(http, tokens, "/v1/usage?from=2026-03-01&to=2026-03-16&window_size=cycle")
    cycles = {cycle_id: (client_id, start, end) for cycle_id, client_id, start, end in _query(warehouse, """
        select cycle_id, client_id, cycle_start, cycle_end from marts.dim_billing_cycles""")}
    total = Decimal(0)
    for row in rows:
        client_id, cycle_start, cycle_end = cycles[row["cycle_id"]]
        assert row["client_id"] == client_id
        assert datetime.fromisoformat(row["window_start"]) == max(cycle_start, datetime(2026, 3, 1, tzinfo=UTC))
        assert datetime.fromisoformat(row["window_end"]) == min(cycle_end, datetime(2026, 3, 16, tzinfo=UTC))
        total += Decimal(row["cost_usd"])
    # client_002's cycle ends at Berlin midnight of the 15th: it splits the range in two windows
    assert sum(row["client_id"] == "client_002" for row in rows) == 2
    events = _events(warehouse, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC))
    assert total == sum(event["cost_usd"] or 0 for event in events if event["client_id"] != "unattributed")


def test_csv_carries_the_figures_of_json(http, tokens, warehouse):
    url = "/v1/usage?from=2026-03-06&window_size=day&window_time_zone=America/New_York&group_by=client,agent,metric"
    # an agent id CSV must quote (PostgreSQL writes the CSV lines)
    _query(warehouse, """
        insert into marts.fct_usage_events
        select md5('quoted:' || usage_event_id), 'quoted:' || idempotency_key, provider, object_type, metric, unit,
               quantity, cost_usd, currency, cost_native, occurred_at, usage_date, client_id, 'agent "7", east',
               attribution_status, 'quoted:' || external_id, linked_external_id, source_channels, first_seen_at,
               last_changed_at, last_observed_at, attributes, cost_status
        from marts.fct_usage_events where usage_event_id = (select min(usage_event_id) from marts.fct_usage_events)""")
    try:
        json_rows = _all_pages(http, tokens, url, limit=100)
        assert any(row["agent_id"] == 'agent "7", east' for row in json_rows)
        for csv_response in (_get(http, tokens, url + "&format=csv"), _get(http, tokens, url, Accept="text/csv")):
            assert csv_response.status_code == 200 and csv_response.headers["content-type"].startswith("text/csv")
            csv_rows = list(csv.DictReader(io.StringIO(csv_response.text)))
            assert {row.pop("data_refreshed_at") for row in csv_rows} == {_refreshed(http, tokens)}
            assert csv_rows == [{key: "" if value is None else str(value) for key, value in row.items() if key != "id"}
                                for row in json_rows]
        assert len(json_rows) > 100  # more than one JSON page
    finally:
        _query(warehouse, "delete from marts.fct_usage_events where idempotency_key like 'quoted:%'")


def _refreshed(http, tokens) -> str:
    return _get(http, tokens, "/v1/clients?limit=1").json()["data_refreshed_at"]


def _collected_through(warehouse, *providers: str) -> str:
    """Each provider's oldest last successful collection, the oldest of them: what data_refreshed_at says."""
    (moment,), = _query(warehouse, "select min(last_success_at) from ops.collector_state "
                                   "where source = any(%(p)s::text[]) or cardinality(%(p)s::text[]) = 0",
                        {"p": list(providers)})
    return moment.isoformat()


def test_every_response_says_when_the_data_was_refreshed(http, tokens, warehouse):
    expected = _collected_through(warehouse)
    for url in ("/v1/usage?from=2026-03-06", "/v1/clients", "/v1/clients/client_001/cycles"):
        response = _get(http, tokens, url)
        assert response.json()["data_refreshed_at"] == expected
        assert response.headers["data-refreshed-at"] == expected
    assert _get(http, tokens, "/v1/usage?from=2026-03-06&format=csv").headers["data-refreshed-at"] == expected


# ------------------------------------------------------------------ pagination and ETags

def test_pages_are_stable_while_rows_are_inserted(http, tokens, warehouse):
    url = "/v1/usage?from=2026-03-06&to=2026-03-16&window_size=day&window_time_zone=America/New_York" \
          "&group_by=client,agent,provider"
    before = [row["id"] for row in _all_pages(http, tokens, url)]
    first = _get(http, tokens, url + "&limit=20").json()
    # a new client sorting first, with events in every window: before and after the position
    _query(warehouse, """
        insert into marts.fct_usage_events
        select md5('inserted:' || usage_event_id), 'inserted:' || idempotency_key, provider, object_type, metric,
               unit, quantity, cost_usd, currency, cost_native, occurred_at, usage_date, 'client_000', agent_id,
               attribution_status, 'inserted:' || external_id, linked_external_id, source_channels, first_seen_at,
               last_changed_at, last_observed_at, attributes, cost_status
        from marts.fct_usage_events where client_id = 'client_001'""")
    try:
        rest = _all_pages(http, tokens, url, limit=37, after=first["next_starting_after"])
        read = [row["id"] for row in first["data"]] + [row["id"] for row in rest]
        assert len(read) == len(set(read))  # nothing twice
        assert [row_id for row_id in read if row_id in set(before)] == before  # nothing skipped, same order
        new = [row for row in rest if row["client_id"] == "client_000"]
        first_window = first["data"][-1]["window_start"]
        assert new and all(row["window_start"] > first_window for row in new)  # only after the position
    finally:
        _query(warehouse, "delete from marts.fct_usage_events where client_id = 'client_000'")


def test_client_pages_follow_ids(http, tokens):
    first = _get(http, tokens, "/v1/clients?limit=2").json()
    assert [client["id"] for client in first["data"]] == ["client_001", "client_002"] and first["has_more"]
    rest = _get(http, tokens, f"/v1/clients?limit=2&starting_after={first['next_starting_after']}").json()
    assert [client["id"] for client in rest["data"]] == ["client_003"] and not rest["has_more"]


def test_an_unchanged_response_is_a_304(http, tokens, warehouse):
    for url in ("/v1/usage?from=2026-03-06&group_by=client", "/v1/clients", "/v1/usage?from=2026-03-06&format=csv",
                "/v1/clients/client_001/cycles"):
        response = _get(http, tokens, url)
        etag = response.headers["etag"]
        again = _get(http, tokens, url, **{"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        assert _get(http, tokens, url, **{"If-None-Match": '"something-else"'}).status_code == 200
    other = _get(http, tokens, "/v1/usage?from=2026-03-06&group_by=provider").headers["etag"]
    assert other != _get(http, tokens, "/v1/usage?from=2026-03-06&group_by=client").headers["etag"]


def test_a_change_of_data_changes_the_etags(http, tokens, warehouse):
    # agents' local days: read from the events (the hourly rollup has no agent)
    json_url = "/v1/usage?from=2026-03-06&window_size=day&window_time_zone=America/New_York&group_by=agent"
    csv_url = "/v1/usage?from=2026-03-06&format=csv"
    json_etag, csv_etag = (_get(http, tokens, url).headers["etag"] for url in (json_url, csv_url))
    _query(warehouse, "update marts.fct_usage_events set cost_usd = cost_usd + 1 where usage_event_id = "
                      "(select min(usage_event_id) from marts.fct_usage_events where usage_date = '2026-03-10' "
                      "and cost_usd is not null)")
    try:
        assert _get(http, tokens, json_url, **{"If-None-Match": json_etag}).status_code == 200
        deadline = time.monotonic() + 10  # table statistics reach other sessions within a second or so
        while _get(http, tokens, csv_url, **{"If-None-Match": csv_etag}).status_code == 304:
            assert time.monotonic() < deadline, "the CSV ETag did not change with the data"
            time.sleep(0.2)
    finally:
        _query(warehouse, "update marts.fct_usage_events set cost_usd = cost_usd - 1 where usage_event_id = "
                          "(select min(usage_event_id) from marts.fct_usage_events where usage_date = '2026-03-10' "
                          "and cost_usd is not null)")


# ------------------------------------------------------------------ tokens and scope

def test_a_request_without_a_valid_token_is_refused_alike(http, tokens, warehouse):
    token = tokens["agency"]
    wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    answers = []
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer nonsense"},
                    _auth(wrong_secret), _auth("bu_0000000000000000_" + "x" * 43)):
        response = http.get("/v1/clients", headers=headers)
        assert response.status_code == 401 and response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"].startswith("Bearer")
        answers.append(response.content)
    assert len(set(answers)) == 1
    stored = _query(warehouse, "select token_hash from ops.api_tokens")
    assert (hashlib.sha256(token.encode()).hexdigest(),) in stored
    assert not any(token in value for (value,) in stored)


def test_a_client_token_sees_only_its_client(http, tokens, warehouse):
    assert [c["id"] for c in _get(http, tokens, "/v1/clients", "client_001").json()["data"]] == ["client_001"]
    rows = _all_pages(http, tokens, "/v1/usage?from=2026-03-06&group_by=client", "client_001")
    assert {row["client_id"] for row in rows} == {"client_001"}
    events = _events(warehouse, datetime(2026, 3, 6, tzinfo=UTC), datetime.fromisoformat(API_NOW), "client_001")
    assert sum(Decimal(row["cost_usd"]) for row in rows) == sum(event["cost_usd"] or 0 for event in events)


def test_another_clients_ids_answer_exactly_like_ids_that_do_not_exist(http, tokens, warehouse):
    (cycle_of_002,) = _query(warehouse, "select cycle_id from marts.dim_billing_cycles where client_id = 'client_002' "
                                        "and cycle_start <= '2026-03-10' and cycle_end > '2026-03-10'")[0]
    assert _get(http, tokens, f"/v1/clients/client_002/cycles/{cycle_of_002}/statement", "client_002").status_code \
        == 200
    pairs = [("/v1/clients/client_002/cycles", "/v1/clients/client_404/cycles"),
             (f"/v1/clients/client_002/cycles/{cycle_of_002}/statement",
              f"/v1/clients/client_404/cycles/{cycle_of_002}/statement"),
             ("/v1/usage?from=2026-03-06&client_id=client_002", "/v1/usage?from=2026-03-06&client_id=client_404")]
    for others, missing in pairs:
        seen, unknown = _get(http, tokens, others, "client_001"), _get(http, tokens, missing, "client_001")
        assert seen.status_code == unknown.status_code == 404
        assert seen.content == unknown.content and seen.headers == unknown.headers
    # and a cycle of another client under one's own id is no cycle at all
    response = _get(http, tokens, f"/v1/clients/client_001/cycles/{cycle_of_002}/statement", "client_001")
    assert response.status_code == 404 and response.json()["detail"] == "no such cycle"


def test_tokens_are_created_and_revoked_from_the_command_line(http, warehouse, capsys, monkeypatch):
    monkeypatch.setenv(PROVIDERS_ENV, "live")
    monkeypatch.setenv(DATABASE_URL_ENV, warehouse.url)
    monkeypatch.setenv(PII_SALT_ENV, SANDBOX_PII_SALT)
    assert api_tokens.main(["create", "--client", "client_003", "--label", "portal"]) == 0
    printed = capsys.readouterr().out
    token_id = printed.split("token id: ")[1].split()[0]
    token = printed.split("token:    ")[1].split()[0]
    assert http.get("/v1/clients", headers=_auth(token)).json()["data"][0]["id"] == "client_003"
    assert api_tokens.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert token_id in listed and token not in listed and hashlib.sha256(token.encode()).hexdigest() not in listed
    assert api_tokens.main(["revoke", token_id]) == 0
    assert http.get("/v1/clients", headers=_auth(token)).status_code == 401
    assert api_tokens.main(["revoke", token_id]) == 1  # already revoked
    assert api_tokens.main(["create", "--client", "client_404"]) == 2  # no such client
    capsys.readouterr()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_served_api_logs_requests_but_never_a_token(warehouse, tokens, tmp_path):
    port = _free_port()
    environment = {**os.environ, PROVIDERS_ENV: "live", DATABASE_URL_ENV: warehouse.url,
                   PII_SALT_ENV: SANDBOX_PII_SALT, "BILLING_USAGE_API_PORT": str(port), NOW_ENV: API_NOW}
    log = tmp_path / "api.log"
    with open(log, "wb") as output:
        server = subprocess.Popen([sys.executable, "-m", "reporting_api"], env=environment, stdout=output,
                                  stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/openapi.json", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, log.read_text()
                time.sleep(0.2)
        assert requests.get(f"{base}/v1/clients", headers=_auth(tokens["agency"]), timeout=10).status_code == 200
        assert requests.get(f"{base}/v1/usage?from=2026-03-06&format=csv", headers=_auth(tokens["client_001"]),
                            timeout=10).status_code == 200
        assert requests.get(f"{base}/v1/clients", headers=_auth(tokens["agency"] + "x"), timeout=10).status_code \
            == 401
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text()
    assert '"GET /v1/clients HTTP/1.1" 200' in text and '"GET /v1/clients HTTP/1.1" 401' in text  # access log on
    for token in tokens.values():
        assert token not in text and token.split("_", 2)[2] not in text
    assert "authorization" not in text.lower() and "bearer" not in text.lower()


# ------------------------------------------------------------------ cycles and statements

def test_cycles_are_listed_newest_first_with_their_status(http, tokens, warehouse):
    rows = _all_pages(http, tokens, "/v1/clients/client_002/cycles?", limit=4)
    starts = [row["start"] for row in rows]
    assert starts == sorted(starts, reverse=True) and len(set(row["id"] for row in rows)) == len(rows)
    current, previous = rows[0], rows[1]
    assert current["status"] == "open" and current["local_start_date"] == "2026-03-15"
    assert previous["status"] == "settling" and previous["end"] == "2026-03-14T23:00:00+00:00"  # grace period
    assert rows[-1]["status"] == "closed"
    assert all(datetime.fromisoformat(row["start"]) < datetime.fromisoformat(API_NOW) for row in rows)


def _statement(http, tokens, client_id: str, cycle_id: str, who: str = "agency", **headers):
    return _get(http, tokens, f"/v1/clients/{client_id}/cycles/{cycle_id}/statement", who, **headers)


def test_a_statement_sums_the_cycles_events_with_pending_counts(http, tokens, warehouse):
    (cycle_id, start, end), = _query(warehouse, """
        select cycle_id, cycle_start, cycle_end from marts.dim_billing_cycles
        where client_id = 'client_001' and cycle_start <= '2026-03-10' and cycle_end > '2026-03-10'""")
    body = _statement(http, tokens, "client_001", cycle_id, "client_001").json()
    events = _events(warehouse, start, end, "client_001")
    assert body["status"] == body["cycle"]["status"] == "open"
    assert Decimal(body["totals"]["usage_cost_usd"]) == sum(event["cost_usd"] or 0 for event in events)
    assert body["totals"]["pending_events"] == sum(event["cost_status"] == "pending" for event in events) > 0
    assert body["totals"]["event_count"] == len(events)
    by_line = defaultdict(Decimal)
    for event in events:
        by_line[(event["provider"], event["metric"])] += event["quantity"] or 0
    assert {(line["provider"], line["metric"]): Decimal(line["quantity"]) for line in body["lines"]} == by_line
    worst = _query(warehouse, """
        select coverage_status from reporting.rpt_cycle_statements where cycle_id = %s
        order by array_position(array['not_measured', 'ok', 'not_yet_comparable', 'warn', 'error'], coverage_status)
            desc limit 1""", (cycle_id,))
    assert body["coverage"]["status"] == worst[0][0] == body["cycle"]["coverage_status"]
    assert {line["coverage_status"] for line in body["lines"]} <= {"ok", "not_yet_comparable", "warn", "error",
                                                                  "not_measured"}
    assert body["adjustments"] == [] and body["totals"]["adjustments_cost_usd"] == "0"


def test_a_statement_as_csv_carries_the_json_figures(http, tokens, warehouse):
    (cycle_id,), = _query(warehouse, """
        select cycle_id from marts.dim_billing_cycles
        where client_id = 'client_002' and cycle_end = '2026-03-14T23:00:00+00'""")
    document = _statement(http, tokens, "client_002", cycle_id).json()
    response = _statement(http, tokens, "client_002", cycle_id, Accept="text/csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    usage = [row for row in rows if row["line_type"] == "usage"]
    assert [(row["provider"], row["metric"], row["quantity"], row["cost_usd"], row["pending_events"])
            for row in usage] == [(line["provider"], line["metric"], line["quantity"], line["cost_usd"],
                                   str(line["pending_events"])) for line in document["lines"]]
    (total,) = [row for row in rows if row["line_type"] == "total"]
    assert (total["cost_usd"], total["total_cost_usd"], total["pending_events"]) == \
        (document["totals"]["usage_cost_usd"], document["totals"]["total_cost_usd"],
         str(document["totals"]["pending_events"]))
    assert {row["cycle_status"] for row in rows} == {document["status"]} == {"settling"}
    assert _statement(http, tokens, "client_002", cycle_id, **{"If-None-Match": response.headers["etag"],
                                                                "Accept": "text/csv"}).status_code == 304


# ------------------------------------------------------------------ the OpenAPI document

def test_the_served_openapi_document_is_the_committed_one(http, tokens):
    served = http.get("/openapi.json").json()
    assert render(served) == DOCUMENT.read_text(), \
        "the API changed: regenerate with `.venv/bin/python -m reporting_api.openapi` and commit the file"
    assert render(served_schema()) == render(served)
    assert "bearer" in json.dumps(served["components"]["securitySchemes"]).lower()


# ------------------------------------------------------------------ after close: adjustments (runs last)

def _build(warehouse, as_of: datetime) -> None:
    result = subprocess.run(
        [DBT_EXECUTABLE, "build", "--exclude", "test_type:unit", "--vars", json.dumps({"as_of": as_of.isoformat()}),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        capture_output=True, text=True, env={**os.environ, **warehouse.dbt_env()})
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.fixture(scope="module")
def after_close(warehouse):
    """client_002's February cycle closed, then a call of it arrives late: an adjustment into April's cycle."""
    as_of = datetime(2026, 4, 20, tzinfo=UTC)
    _build(warehouse, as_of)
    agent = clients(CONFIG)[1].agents[0]
    occurred = datetime(2026, 3, 9, 12, tzinfo=UTC)
    call = {"call_id": "call_late_for_the_api", "agent_id": agent.retell_agent_id, "call_type": "web_call",
            "call_status": "ended", "start_timestamp": int(occurred.timestamp() * 1000), "duration_ms": 90_000,
            "call_cost": {"product_costs": [], "total_duration_seconds": 90, "combined_cost": 250}}
    _query(warehouse, "insert into raw_webhooks.retell_events (delivery_id, event, call_id, payload) "
                      "values ('late-api', 'call_analyzed', %s, %s)",
           (call["call_id"], json.dumps({"event": "call_analyzed", "call": call})))
    _build(warehouse, as_of + timedelta(hours=1))
    return as_of + timedelta(hours=1)


def test_a_statement_lists_the_adjustments_billed_into_its_cycle(http, tokens, warehouse, after_close, monkeypatch):
    monkeypatch.setenv(NOW_ENV, after_close.isoformat())
    (closed_cycle,), = _query(warehouse, """
        select cycle_id from marts.dim_billing_cycles
        where client_id = 'client_002' and cycle_end = '2026-03-14T23:00:00+00'""")
    (open_cycle, start, end), = _query(warehouse, """
        select cycle_id, cycle_start, cycle_end from marts.dim_billing_cycles
        where client_id = 'client_002' and cycle_start <= %s and cycle_end > %s""", (after_close, after_close))
    closed = _statement(http, tokens, "client_002", closed_cycle, "client_002").json()
    assert closed["status"] == "closed" and closed["adjustments"] == []
    statement = _statement(http, tokens, "client_002", open_cycle, "client_002").json()
    (adjustment,) = statement["adjustments"]
    assert adjustment["adjusted_cycle_id"] == closed_cycle and adjustment["reason"] == "late_event"
    assert Decimal(adjustment["delta_cost_usd"]) == Decimal("2.5")
    totals = statement["totals"]
    assert Decimal(totals["total_cost_usd"]) == Decimal(totals["usage_cost_usd"]) + Decimal("2.5")
    assert statement["data_refreshed_at"] == _collected_through(warehouse, "retell")  # its one provider
    # the closed cycle plus its adjustment is what its events sum to now
    events = _events(warehouse, *_query(warehouse, "select cycle_start, cycle_end from marts.dim_billing_cycles "
                                                   "where cycle_id = %s", (closed_cycle,))[0], "client_002")
    assert Decimal(closed["totals"]["usage_cost_usd"]) + Decimal(adjustment["delta_cost_usd"]) \
        == sum(event["cost_usd"] or 0 for event in events)
    listed = _all_pages(http, tokens, "/v1/clients/client_002/cycles?", "client_002")
    (row,) = [row for row in listed if row["id"] == open_cycle]
    assert row["adjustments_cost_usd"] == adjustment["delta_cost_usd"] and row["total_cost_usd"] \
        == totals["total_cost_usd"]
