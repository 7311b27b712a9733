"""Bad records and duplicate deliveries: every generated cent ends in fct_usage_events or quarantine."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
import uvicorn

from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from sandbox.agency import clients
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.totals import iter_records, record_cost_usd
from sandbox.usage import client_day
from sandbox.webhook_sender import retell_deliveries, send_webhooks, twilio_deliveries
from tests.conftest import TEST_END_DATE, pipeline_environment, run_pipeline
from webhooks.app import create_app
from webhooks.settings import WebhookSettings

pytestmark = pytest.mark.integration

DAMAGED = SandboxConfig(seed=5, clients=3, agents_per_client=2, days=4, calls_per_agent_per_day=8, corrupt_rate=0.15,
                        end_date=TEST_END_DATE)
EXPECTED_REASON = {
    ("retell", "missing_id"): "missing_call_id",
    ("twilio", "missing_id"): "missing_sid",
}


def _query(warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def _day_with_a_call_without_id(config: SandboxConfig) -> date:
    """The last generated day on which a Retell call lost its id: its webhooks are malformed."""
    for day in reversed(list(config.iter_days())):
        if any("call_id" not in call for client in clients(config)
               for call in client_day(config, client.index, day).retell_calls):
            return day
    raise AssertionError("the damaged sandbox generated no call without an id")


def _expected_statuses(config: SandboxConfig, day: date, twilio_url: str) -> Counter:
    """What the receiver must answer: 400 for each delivery of a call without id, 200 for the rest."""
    statuses = Counter(400 if "call_id" not in json.loads(delivery.body)["call"] else 200
                       for delivery in retell_deliveries(config, day))
    statuses[200] += sum(1 for _ in twilio_deliveries(config, day, twilio_url))
    return statuses


@pytest.fixture(scope="module")
def damaged_run(database_factory, tmp_path_factory):
    warehouse = database_factory("quarantine")
    sandbox = start_in_thread(DAMAGED)
    receiver = uvicorn.Server(uvicorn.Config(
        create_app(WebhookSettings((DAMAGED.retell_api_key(0),), (DAMAGED.twilio_auth_token,)), warehouse.connect),
        host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=receiver.run, daemon=True)
    thread.start()
    while not receiver.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{receiver.servers[0].sockets[0].getsockname()[1]}"
    try:
        with pipeline_environment(warehouse, sandbox, tmp_path_factory.mktemp("dir") / "directory.yaml"):

            day = _day_with_a_call_without_id(DAMAGED)
            deliveries = [send_webhooks(DAMAGED, day, f"{base}/webhooks/retell",
                                        f"{base}/webhooks/twilio") for _ in range(2)]  # every delivery twice
            expected = _expected_statuses(DAMAGED, day, f"{base}/webhooks/twilio")
            result = run_pipeline()
    finally:
        receiver.should_exit = True
        thread.join(5)
        sandbox.shutdown()
    return {"warehouse": warehouse, "result": result, "deliveries": deliveries, "expected": expected}


def test_the_run_succeeds_with_the_reconciliation_tests_passing(damaged_run):
    assert damaged_run["result"].success
    checks = {e.check_name: e.passed for e in damaged_run["result"].get_asset_check_evaluations()}
    assert checks["assert_raw_objects_reconcile_with_quarantine"] is True
    assert checks["assert_daily_usage_reconciles_with_events"] is True


def test_malformed_webhooks_were_refused_and_duplicates_acknowledged(damaged_run):
    first, second = damaged_run["deliveries"]
    expected = damaged_run["expected"]
    assert first == second == dict(expected) and expected[400] > 0


def test_every_generated_cent_is_billed_or_quarantined(damaged_run):
    warehouse = damaged_run["warehouse"]
    generated = Counter()
    for provider, _, record in iter_records(DAMAGED):
        generated[provider] += record_cost_usd(provider, record)
    billed = dict(_query(warehouse, "select provider, sum(cost_usd) from marts.fct_usage_events group by 1"))
    held = dict(_query(warehouse, "select provider, sum(cost_native) from marts.quarantine group by 1"))
    for provider in ("retell", "twilio", "openrouter"):
        assert billed.get(provider, Decimal(0)) + held.get(provider, Decimal(0)) == generated[provider], provider
    assert sum(held.values()) != 0


def test_every_generated_object_is_billed_or_quarantined_once(damaged_run):
    warehouse = damaged_run["warehouse"]
    generated = Counter(provider for provider, _, _ in iter_records(DAMAGED))
    billed = dict(_query(warehouse, "select provider, count(distinct object_type || external_id) "
                                    "from marts.fct_usage_events group by 1"))
    held = dict(_query(warehouse, "select provider, count(distinct coalesce(external_id, quarantine_id)) "
                                  "from marts.quarantine group by 1"))
    assert {p: billed.get(p, 0) + held.get(p, 0) for p in generated} == dict(generated)
    overlap = _query(warehouse, """select count(*) from marts.quarantine q join marts.fct_usage_events f
                                   on f.provider = q.provider and f.object_type = q.object_type
                                   and f.external_id = q.external_id""")
    assert overlap == [(0,)]


def test_each_damaged_record_is_quarantined_for_its_reason(damaged_run):
    expected = Counter()
    for provider, _, record in iter_records(DAMAGED):
        damage = record.get("_sandbox_corruption")
        if damage:
            expected[(provider, EXPECTED_REASON.get((provider, damage), damage))] += 1
    rows = _query(damaged_run["warehouse"], """
        select provider, reason, count(distinct coalesce(external_id, quarantine_id))
        from marts.quarantine group by 1, 2""")
    assert {(provider, reason): count for provider, reason, count in rows} == dict(expected)
    assert len({reason for _, reason in expected}) >= 7


def test_fct_calls_reports_the_orphans_that_quarantine_leaves(damaged_run):
    expected = Counter()
    for client in clients(DAMAGED):
        for day in DAMAGED.iter_days():
            usage = client_day(DAMAGED, client.index, day)
            # the uri keeps the sid even when the damage removed the sid field
            damaged_legs = {leg["uri"].rsplit("/", 1)[1][:-5] for leg in usage.twilio_calls
                            if leg.get("_sandbox_corruption")}
            for call in usage.retell_calls:
                if "telephony_identifier" not in call:
                    continue
                sid = call["telephony_identifier"]["twilio_call_sid"]
                call_damaged, leg_damaged = bool(call.get("_sandbox_corruption")), sid in damaged_legs
                if call_damaged and not leg_damaged:
                    expected["twilio_without_retell_call"] += 1
                elif leg_damaged and not call_damaged:
                    expected["retell_leg_missing"] += 1
    rows = _query(damaged_run["warehouse"], """select link_status, count(*) from marts.fct_calls
                                               where link_status not in ('matched', 'web_call') group by 1""")
    assert dict(rows) == dict(expected) and sum(expected.values()) > 0


def test_quarantine_keeps_no_phone_numbers_or_message_bodies(damaged_run):
    leaked = _query(damaged_run["warehouse"], r"""select count(*) from marts.quarantine
                                                where details::text ~ '\+1(202|303)[0-9]{7}'
                                                   or details::text like '%%appointment is confirmed%%'""")
    assert leaked == [(0,)]


def _dbt_run(warehouse, target, *arguments: str) -> None:
    result = subprocess.run([DBT_EXECUTABLE, "run", *arguments, "--project-dir", str(DBT_PROJECT_DIR),
                             "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target)],
                            capture_output=True, text=True, env={**os.environ, **warehouse.dbt_env()})
    assert result.returncode == 0, result.stdout[-3000:]


def test_quarantine_rewrites_only_changed_objects_and_equals_a_full_rebuild(damaged_run, tmp_path):
    """A repaired record leaves quarantine for fct_usage_events; the build touched that object alone."""
    warehouse = damaged_run["warehouse"]
    (sid,), = _query(warehouse, """select external_id from marts.quarantine where provider = 'twilio'
                                   and object_type = 'call' and reason = 'negative_cost' order by 1 limit 1""")
    (collector_rows,), = _query(warehouse, "select count(*) from marts.quarantine where stage = 'collector'")
    # a build re-reads the webhook deliveries of the last 5 minutes before its watermark (late commits)
    (re_read,), = _query(warehouse, """
        with recent_calls as (
            select call_id as id from raw_webhooks.retell_events
            where received_at > (select max(received_at) - interval '5 minutes' from raw_webhooks.retell_events)
        ), recent_sids as (
            select sid as id from raw_webhooks.twilio_callbacks
            where received_at > (select max(received_at) - interval '5 minutes' from raw_webhooks.twilio_callbacks)
        )
        select count(*) from marts.quarantine where stage = 'normalization' and (
            (provider = 'retell' and external_id in (select id from recent_calls))
            or (provider = 'twilio' and external_id in (select id from recent_sids)))""")
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("update raw_twilio.calls set price = '-' || price, _dlt_load_id = '9999999999.0' "
                       "where sid = %s returning price", (sid,))
        price = Decimal(cursor.fetchone()[0])
    _dbt_run(warehouse, tmp_path / "incremental", "--select", "fct_usage_events", "quarantine")
    compiled = next((tmp_path / "incremental").rglob("compiled/**/quarantine.sql")).read_text()
    assert "external_id = any((" in compiled
    results = json.loads((tmp_path / "incremental" / "run_results.json").read_text())["results"]
    inserted = next(r for r in results if r["unique_id"].endswith(".quarantine"))["adapter_response"]["rows_affected"]
    assert inserted == collector_rows + re_read  # the repaired object has no rejected row any more
    assert _query(warehouse, f"select count(*) from marts.quarantine where external_id = '{sid}'") == [(0,)]
    assert _query(warehouse, f"""select cost_usd from marts.fct_usage_events
                                 where external_id = '{sid}' and metric = 'voice_minutes'""") == [(-price,)]
    incremental = _query(warehouse, "select * from marts.quarantine order by quarantine_id")
    _dbt_run(warehouse, tmp_path / "full", "--select", "quarantine", "--full-refresh")
    assert _query(warehouse, "select * from marts.quarantine order by quarantine_id") == incremental


def test_quarantine_reads_raw_rows_only_once_fct_usage_events_has(damaged_run, tmp_path):
    """A billed call damaged at the source stays billed, not also quarantined, until fct_usage_events has read
    it; then it moves to quarantine whole."""
    warehouse = damaged_run["warehouse"]
    (sid,), = _query(warehouse, """select external_id from marts.fct_usage_events where provider = 'twilio'
                                   and object_type = 'call' and cost_usd > 0 order by 1 limit 1""")
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("update raw_twilio.calls set price = ltrim(price, '-'), _dlt_load_id = '9999999999.1' "
                       "where sid = %s", (sid,))

    def where_is_it() -> tuple:
        return (_query(warehouse, f"select count(*) from marts.fct_usage_events where external_id = '{sid}'")[0][0],
                _query(warehouse, f"select reason from marts.quarantine where external_id = '{sid}'"))

    _dbt_run(warehouse, tmp_path / "quarantine_alone", "--select", "quarantine")
    assert where_is_it() == (1, [])
    _dbt_run(warehouse, tmp_path / "both", "--select", "fct_usage_events", "quarantine")
    assert where_is_it() == (0, [("negative_cost",)])
