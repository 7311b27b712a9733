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
from tests.conftest import SMALL, deliver_retell_web_call, pipeline_environment, run_pipeline

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
    # a call on the partial first UTC day of a cycle starting within the generated days, halfway between the
    # cycle's start (a client's local midnight) and the next UTC midnight
    (client_id, cycle_start), = _query(warehouse, """
        select client_id, cycle_start from marts.dim_billing_cycles
        where (cycle_start at time zone 'UTC')::time <> '00:00'
          and (cycle_start at time zone 'UTC')::date between %s and %s
        order by cycle_start, client_id limit 1""", (SMALL.start_date, SMALL.end_date))
    next_midnight = datetime.combine((cycle_start.astimezone(UTC) + timedelta(days=1)).date(), datetime.min.time(), UTC)
    edge_agent = next(client for client in clients(SMALL) if client.client_id == client_id).agents[0]
    deliver_retell_web_call(warehouse, "edge", "call_on_a_partial_first_day", edge_agent.retell_agent_id,
                            cycle_start + (next_midnight - cycle_start) / 2, 60, 120)
    # every cycle holding the generated days has closed by then
    as_of = datetime.combine(SMALL.end_date, datetime.min.time(), UTC) + timedelta(days=70)
    _build(warehouse, as_of)
    frozen = _query(warehouse, "select * from marts.fct_cycle_usage order by cycle_usage_id")
    agent = clients(SMALL)[0].agents[0]
    occurred = datetime.combine(SMALL.start_date, datetime.min.time(), UTC) + timedelta(hours=12)
    deliver_retell_web_call(warehouse, "late", LATE_CALL, agent.retell_agent_id, occurred, 90, 250)
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


CYCLE_EVENTS = """
    select cycles.cycle_id, events.provider, events.metric{agent}, sum(events.quantity), sum(events.cost_usd), count(*)
    from marts.fct_usage_events as events
    inner join marts.dim_billing_cycles as cycles
        on cycles.client_id = events.client_id
        and events.occurred_at >= cycles.cycle_start and events.occurred_at < cycles.cycle_end
    where cycles.cycle_id not in (select cycle_id from marts.fct_cycle_adjustments)
    group by cycles.cycle_id, events.provider, events.metric{agent}"""


def test_every_cycle_row_equals_its_events_on_partial_days_too(closed):
    """Whole UTC days are summed from the day rollups, the partial ones at a client's local midnight from events:
    each row, per agent too, equals the sum of its events (the cycle holding the late event is adjusted)."""
    warehouse = closed["warehouse"]
    for model, agent in (("fct_cycle_usage", ""), ("fct_cycle_usage_by_agent", ", agent_id")):
        stored = _query(warehouse, f"""select cycle_id, provider, metric{agent}, quantity, cost_usd, event_count
                                       from marts.{model}
                                       where cycle_id not in (select cycle_id from marts.fct_cycle_adjustments)""")
        summed = _query(warehouse, CYCLE_EVENTS.format(agent=agent.replace("agent_id", "events.agent_id")))
        assert sorted(stored, key=str) == sorted(summed, key=str)
    # the cycles read both kinds of day: events on a first and on a last UTC day that are partial
    for bound in ("cycle_start", "cycle_end"):
        on_partial_days = _query(warehouse, f"""
            select count(*) from marts.fct_usage_events as events
            inner join marts.dim_billing_cycles as cycles
                on cycles.client_id = events.client_id
                and events.occurred_at >= cycles.cycle_start and events.occurred_at < cycles.cycle_end
            where (cycles.{bound} at time zone 'UTC')::time <> '00:00'
              and events.usage_date = (cycles.{bound} at time zone 'UTC')::date""")[0][0]
        assert on_partial_days > 0, bound


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

    deliver_retell_web_call(warehouse, "late-2", "call_of_another_client", client.agents[0].retell_agent_id,
                            closed["occurred"], 30, 100)
    _build(warehouse, closed["as_of"] + timedelta(hours=5))
    booked = _query(warehouse, """select provider, metric, delta_quantity from marts.fct_cycle_adjustments
                                  where cycle_id = %s order by provider, metric""", (cycle_id,))
    assert booked == [("retell", "voice_seconds", Decimal(30)), ("twilio", metric, Decimal(-1))]
