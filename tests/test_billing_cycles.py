"""Cycle close: totals freeze, a late event after close becomes an adjustment, Σ cycles + Σ adjustments = Σ events."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from sandbox.agency import clients
from tests.conftest import SMALL, pipeline_environment, run_pipeline

pytestmark = pytest.mark.integration

LATE_CALL = "call_arrived_after_close"


def _query(warehouse, sql: str, params=None) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _build(warehouse, as_of: datetime, *selection: str) -> None:
    """dbt build, or dbt run of the models selected (their tests left out)."""
    command = ["run", "--select", *selection] if selection else ["build", "--exclude", "test_type:unit"]
    result = subprocess.run(
        [DBT_EXECUTABLE, *command, "--vars", json.dumps({"as_of": as_of.isoformat()}),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        capture_output=True, text=True, env={**os.environ, **warehouse.dbt_env()})
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.fixture(scope="module")
def closed(database_factory, sandbox_server, tmp_path_factory):
    warehouse = database_factory("cycles")
    with pipeline_environment(warehouse, sandbox_server, tmp_path_factory.mktemp("dir") / "directory.yaml"):

        assert run_pipeline().success
    # every cycle holding the generated days has closed by then
    as_of = datetime.combine(SMALL.end_date, datetime.min.time(), UTC) + timedelta(days=70)
    _build(warehouse, as_of)
    frozen = _query(warehouse, "select * from marts.fct_cycle_usage order by cycle_usage_id")
    agent = clients(SMALL)[0].agents[0]
    occurred = datetime.combine(SMALL.start_date, datetime.min.time(), UTC) + timedelta(hours=12)
    call = {"call_id": LATE_CALL, "agent_id": agent.retell_agent_id, "call_type": "web_call", "call_status": "ended",
            "start_timestamp": int(occurred.timestamp() * 1000), "duration_ms": 90_000,
            "call_cost": {"product_costs": [], "total_duration_seconds": 90, "combined_cost": 250}}
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("insert into raw_webhooks.retell_events (delivery_id, event, call_id, payload) "
                       "values ('late', 'call_analyzed', %s, %s)",
                       (LATE_CALL, json.dumps({"event": "call_analyzed", "call": call})))
    _build(warehouse, as_of + timedelta(hours=1))
    after_late = _query(warehouse, "select * from marts.fct_cycle_usage order by cycle_usage_id")
    adjustments = _query(warehouse, """select cycle_id, client_id, provider, metric, delta_quantity, delta_cost_usd,
                                              reason, usage_event_ids, bills_into_cycle_id
                                       from marts.fct_cycle_adjustments""")
    _build(warehouse, as_of + timedelta(hours=2))
    return {"warehouse": warehouse, "as_of": as_of, "frozen": frozen, "after_late": after_late,
            "adjustments": adjustments, "occurred": occurred, "client": clients(SMALL)[0].client_id}


def test_cycles_holding_the_data_are_closed(closed):
    statuses = _query(closed["warehouse"], "select distinct cycle_status from marts.fct_cycle_usage")
    assert statuses == [("closed",)]
    assert closed["frozen"]


def test_closed_totals_never_change(closed):
    assert closed["after_late"] == closed["frozen"]
    rows = _query(closed["warehouse"], "select * from marts.fct_cycle_usage order by cycle_usage_id")
    assert rows == closed["frozen"]


def test_a_late_event_becomes_one_adjustment_billed_into_the_open_cycle(closed):
    warehouse = closed["warehouse"]
    (cycle_id, client_id, provider, metric, quantity, cost, reason, event_ids, bills_into), = closed["adjustments"]
    late_cycle = _query(warehouse, "select cycle_id from marts.dim_billing_cycles where client_id = %s "
                                   "and cycle_start <= %s and cycle_end > %s",
                        (closed["client"], closed["occurred"], closed["occurred"]))
    open_cycle = _query(warehouse, "select cycle_id from marts.dim_billing_cycles where client_id = %s "
                                   "and cycle_start <= %s and cycle_end > %s",
                        (closed["client"], closed["as_of"] + timedelta(hours=1), closed["as_of"] + timedelta(hours=1)))
    assert (cycle_id, client_id, provider, metric) == (late_cycle[0][0], closed["client"], "retell", "voice_seconds")
    assert (quantity, cost, reason) == (Decimal(90), Decimal("2.50"), "late_event")
    event_id = _query(warehouse, "select md5(%s)", (f"retell:call:{LATE_CALL}:voice_seconds",))[0][0]
    assert event_ids == [event_id]
    assert bills_into == open_cycle[0][0] != cycle_id


def test_rebuilding_books_nothing_twice(closed):
    assert len(_query(closed["warehouse"], "select 1 from marts.fct_cycle_adjustments")) == 1


def test_cycles_plus_adjustments_equal_events_to_the_cent(closed):
    warehouse = closed["warehouse"]
    events = _query(warehouse, """select sum(e.cost_usd) from marts.fct_usage_events e
                                  join marts.dim_billing_cycles c on c.client_id = e.client_id
                                  and e.occurred_at >= c.cycle_start and e.occurred_at < c.cycle_end""")[0][0]
    cycles = _query(warehouse, "select sum(cost_usd) from marts.fct_cycle_usage")[0][0]
    adjusted = _query(warehouse, "select sum(delta_cost_usd) from marts.fct_cycle_adjustments")[0][0]
    assert events == cycles + adjusted
    by_agent = _query(warehouse, "select sum(cost_usd) from marts.fct_cycle_usage_by_agent")[0][0]
    assert by_agent == cycles


def test_a_full_refresh_leaves_closed_cycles_and_the_ledger_alone(closed):
    warehouse = closed["warehouse"]
    cycles = _query(warehouse, "select * from marts.fct_cycle_usage order by cycle_usage_id")
    ledger = _query(warehouse, "select * from marts.fct_cycle_adjustments order by adjustment_id")
    result = subprocess.run(
        [DBT_EXECUTABLE, "run", "--full-refresh", "--select", "fct_cycle_usage", "fct_cycle_adjustments",
         "--vars", json.dumps({"as_of": (closed["as_of"] + timedelta(hours=3)).isoformat()}),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        capture_output=True, text=True, env={**os.environ, **warehouse.dbt_env()})
    assert result.returncode == 0, result.stdout[-3000:]
    assert _query(warehouse, "select * from marts.fct_cycle_usage order by cycle_usage_id") == cycles
    assert _query(warehouse, "select * from marts.fct_cycle_adjustments order by adjustment_id") == ledger


def test_a_build_compares_only_the_closed_cycles_whose_events_changed(closed):
    """A stored total that no longer matches its events is booked only once an event of its cycle changes."""
    warehouse, client = closed["warehouse"], clients(SMALL)[1]
    (cycle_id, metric), = _query(warehouse, """select cycle_id, metric from marts.fct_cycle_usage
                                               where client_id = %s and provider = 'twilio'
                                                 and cycle_start <= %s and cycle_end > %s
                                               order by metric limit 1""",
                                 (client.client_id, closed["occurred"], closed["occurred"]))
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("update marts.fct_cycle_usage set quantity = quantity + 1 where cycle_id = %s "
                       "and provider = 'twilio' and metric = %s", (cycle_id, metric))
    # a run without tests: assert_cycles_and_adjustments_sum_to_events would rightly fail on this stored total
    _build(warehouse, closed["as_of"] + timedelta(hours=4), "fct_cycle_usage", "fct_cycle_adjustments")
    assert _query(warehouse, "select 1 from marts.fct_cycle_adjustments where cycle_id = %s", (cycle_id,)) == []

    call = {"call_id": "call_of_another_client", "agent_id": client.agents[0].retell_agent_id,
            "call_type": "web_call", "call_status": "ended", "duration_ms": 30_000,
            "start_timestamp": int(closed["occurred"].timestamp() * 1000),
            "call_cost": {"product_costs": [], "total_duration_seconds": 30, "combined_cost": 100}}
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("insert into raw_webhooks.retell_events (delivery_id, event, call_id, payload) "
                       "values ('late-2', 'call_analyzed', %s, %s)",
                       (call["call_id"], json.dumps({"event": "call_analyzed", "call": call})))
    _build(warehouse, closed["as_of"] + timedelta(hours=5))
    booked = _query(warehouse, """select provider, metric, delta_quantity from marts.fct_cycle_adjustments
                                  where cycle_id = %s order by provider, metric""", (cycle_id,))
    assert booked == [("retell", "voice_seconds", Decimal(30)), ("twilio", metric, Decimal(-1))]
