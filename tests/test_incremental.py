"""fct_usage_events is incremental: a settled price updates its event and moves last_changed_at,
unchanged events keep theirs, and a build with nothing new recomputes nothing."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest
import requests
from dagster import DagsterInstance

from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from sandbox.agency import clients
from sandbox.totals import expected_totals
from sandbox.usage import client_day
from tests.conftest import SMALL, deliver_retell_web_call, pipeline_environment, run_pipeline

pytestmark = pytest.mark.integration


def _event(warehouse, external_id: str, metric: str) -> tuple:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("""select cost_usd, first_seen_at, last_changed_at, last_observed_at
                          from marts.fct_usage_events where external_id = %s and metric = %s""",
                       (external_id, metric))
        return cursor.fetchone()


def _dbt_run(warehouse, target: Path, *arguments: str) -> None:
    result = subprocess.run(
        [DBT_EXECUTABLE, "run", *arguments, "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target-path", str(target)],
        capture_output=True, text=True, env={**os.environ, **warehouse.dbt_env()})
    assert result.returncode == 0, result.stdout[-3000:]


def _compiled(target: Path, model: str) -> str:
    return next(target.rglob(f"compiled/**/{model}.sql")).read_text()


def _dbt_run_fct(warehouse, target: Path) -> str:
    """dbt run of fct_usage_events alone; returns its compiled SQL."""
    _dbt_run(warehouse, target, "--select", "fct_usage_events")
    return _compiled(target, "fct_usage_events")


def _rows_inserted(target: Path, model: str = "fct_usage_events") -> int:
    results = json.loads((target / "run_results.json").read_text())["results"]
    return next(r for r in results if r["unique_id"].endswith(f".{model}"))["adapter_response"]["rows_affected"]


def _calls(warehouse) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select * from marts.fct_calls order by conversation_id")
        return cursor.fetchall()


def _deliver_web_call(warehouse, delivery_id: str, call_id: str, agent_id: str, day, seconds: int) -> None:
    """A web call started at noon UTC on `day`, costing 2 cents a second."""
    deliver_retell_web_call(warehouse, delivery_id, call_id, agent_id, datetime.combine(day, time(12), UTC),
                            seconds, 2 * seconds)


@pytest.fixture(scope="module")
def settled(database_factory, sandbox_server, tmp_path_factory):
    warehouse = database_factory("incremental")
    control = f"{sandbox_server.base_url}/_sandbox/pending"
    leg_pending = client_day(SMALL, 0, SMALL.end_date).twilio_calls[0]["sid"]
    leg_stable = client_day(SMALL, 0, SMALL.end_date - timedelta(days=1)).twilio_calls[0]["sid"]
    with (pipeline_environment(warehouse, sandbox_server, tmp_path_factory.mktemp("dir") / "directory.yaml"),
          pytest.MonkeyPatch.context() as env):
        env.setenv("SOURCES__TWILIO__LOOKBACK_DAYS", "2")  # the second run lists leg_stable's day again
        instance = DagsterInstance.ephemeral()
        requests.post(control, json={"days": 1}, timeout=5)
        try:
            assert run_pipeline(instance).success
        finally:
            requests.delete(control, timeout=5)
        before = {sid: _event(warehouse, sid, "voice_minutes") for sid in (leg_pending, leg_stable)}
        assert run_pipeline(instance).success
        after = {sid: _event(warehouse, sid, "voice_minutes") for sid in (leg_pending, leg_stable)}
    return {"warehouse": warehouse, "before": before, "after": after, "pending": leg_pending,
            "stable": leg_stable, "tmp": tmp_path_factory.mktemp("dbt_target")}


def test_a_settled_price_updates_its_event_and_moves_last_changed_at(settled):
    cost_before, first_before, changed_before, _ = settled["before"][settled["pending"]]
    cost_after, first_after, changed_after, _ = settled["after"][settled["pending"]]
    assert cost_before is None and cost_after > 0
    assert first_after == first_before
    assert changed_after > changed_before


def test_an_unchanged_event_keeps_last_changed_at_though_it_was_re_read(settled):
    cost_before, first_before, changed_before, observed_before = settled["before"][settled["stable"]]
    cost_after, first_after, changed_after, observed_after = settled["after"][settled["stable"]]
    assert (cost_after, first_after, changed_after) == (cost_before, first_before, changed_before)
    assert observed_after > observed_before  # the look-back read it again


def test_totals_after_incremental_builds_equal_the_sandbox(settled):
    with settled["warehouse"].connect() as connection, connection.cursor() as cursor:
        cursor.execute("select provider, client_id, count(distinct object_type || external_id), sum(cost_usd) "
                       "from marts.fct_usage_events group by 1, 2")
        totals = {(p, c): (n, cost) for p, c, n, cost in cursor.fetchall()}
    assert totals == {key: (t.objects, t.cost_usd) for key, t in expected_totals(SMALL).items()}


def test_nothing_new_recomputes_nothing_and_mappings_reattribute(settled):
    warehouse = settled["warehouse"]
    compiled = _dbt_run_fct(warehouse, settled["tmp"] / "idle")
    # no object selected: the changed keys are found when the build runs (no ids in the SQL text), and none is
    assert "external_id = any((coalesce((select array_agg(" in compiled and "and true" not in compiled
    assert _rows_inserted(settled["tmp"] / "idle") == 0
    client = clients(SMALL)[2]
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("create table raw_directory.removed as select * from raw_directory.resource_assignments "
                       "where client_id = %s", (client.client_id,))
        cursor.execute("delete from raw_directory.resource_assignments where client_id = %s", (client.client_id,))
    compiled = _dbt_run_fct(warehouse, settled["tmp"] / "unmapped")
    assert "and true" in compiled  # the directory changed: everything is attributed again
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select count(*), sum(cost_usd) from marts.fct_usage_events where client_id = 'unattributed'")
        unattributed, cost = cursor.fetchone()
    assert unattributed > 0 and cost == sum(t.cost_usd for (_, c), t in expected_totals(SMALL).items()
                                            if c == client.client_id)
    compiled = _dbt_run_fct(warehouse, settled["tmp"] / "unattributed_only")
    assert "and (" in compiled and "and true" not in compiled  # only the unattributed objects again
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select sum(cost_usd) from marts.fct_usage_events")
        assert cursor.fetchone()[0] == sum((t.cost_usd for t in expected_totals(SMALL).values()), Decimal(0))
        cursor.execute("insert into raw_directory.resource_assignments select * from raw_directory.removed")
    _dbt_run_fct(warehouse, settled["tmp"] / "mapped_again")
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from marts.fct_usage_events where client_id = 'unattributed'")
        assert cursor.fetchone()[0] == 0
        cursor.execute("select count(*) from marts.fct_usage_events where client_id = %s", (client.client_id,))
        assert cursor.fetchone()[0] > 0


def test_conversations_built_incrementally_equal_a_full_rebuild(settled):
    """fct_calls recomputes only the conversations of changed client-days, and ends where a full rebuild does."""
    warehouse, client = settled["warehouse"], clients(SMALL)[0]
    _dbt_run(warehouse, settled["tmp"] / "calls_all", "--select", "fct_calls")
    assert "fct_calls__rebuilt" not in _compiled(settled["tmp"] / "calls_all", "fct_calls")  # the directory moved
    day = SMALL.end_date - timedelta(days=2)
    _deliver_web_call(warehouse, "late-web", "call_web_late", client.agents[0].retell_agent_id, day, 60)
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("""select count(*) from marts.fct_calls
                          where client_id = %s and (started_at at time zone 'UTC')::date = %s""",
                       (client.client_id, day))
        conversations_that_day = cursor.fetchone()[0]
    target = settled["tmp"] / "calls_changed"
    _dbt_run(warehouse, target, "--select", "fct_usage_events", "fct_calls")
    assert "fct_calls__rebuilt" in _compiled(target, "fct_calls")
    assert _rows_inserted(target, "fct_calls") == conversations_that_day + 1
    incremental = _calls(warehouse)
    assert [row for row in incremental if row[0] == "call_web_late"]
    _dbt_run(warehouse, settled["tmp"] / "calls_full", "--select", "fct_calls", "--full-refresh")
    assert _calls(warehouse) == incremental


MEASURES = "metric, quantity, cost_usd, event_count, pending_events, expired_events"
DAY_ROLLUP_COLUMNS = {  # each rollup's rows, without observed_through (it moves with any new observation)
    "fct_daily_usage": f"usage_date, client_id, agent_id, provider, {MEASURES}",
    "fct_daily_client_usage": f"usage_date, client_id, provider, {MEASURES}",
    "fct_hourly_usage": f"usage_hour, client_id, provider, {MEASURES}",
    "anomaly_objects_daily": "usage_date, client_id, account, provider, event_count, object_count",
    "coverage_twilio_daily": "usage_date, account, category, objects, quantity, cost_usd, sip_or_client_objects, "
                             "unbilled_objects, expired_events, pending_events",
    "coverage_retell_daily": "usage_date, workspace, retell_agent_id, client_id, polled_calls, delivered_calls, "
                             "pending_calls",
}


def _day_rollups(warehouse) -> dict[str, list[tuple]]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        rows = {}
        for model, columns in DAY_ROLLUP_COLUMNS.items():
            cursor.execute(f"select {columns} from marts.{model} order by {columns}")
            rows[model] = cursor.fetchall()
        return rows


def test_day_rollups_rebuild_the_day_an_event_left_and_the_day_it_reached(settled):
    """A call delivered again with another start moves to another day: the day rollups rebuild both days, and
    only those, and end where a full rebuild does."""
    warehouse, client = settled["warehouse"], clients(SMALL)[1]
    rollups = list(DAY_ROLLUP_COLUMNS)
    left, reached = SMALL.end_date - timedelta(days=3), SMALL.end_date - timedelta(days=1)

    def deliver(delivery_id: str, day) -> None:
        _deliver_web_call(warehouse, delivery_id, "call_web_moved", client.agents[0].retell_agent_id, day, 90)

    deliver("moved-1", left)
    _dbt_run(warehouse, settled["tmp"] / "rollups_first", "--select", "fct_usage_events", *rollups)
    deliver("moved-2", reached)
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select processed from ops.rollup_watermarks where model = 'fct_daily_usage'")
        read_before = cursor.fetchone()[0]
    target = settled["tmp"] / "rollups_moved"
    _dbt_run(warehouse, target, "--select", "fct_usage_events", *rollups)
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select usage_date from marts.fct_usage_events where external_id = 'call_web_moved'")
        assert {day for (day,) in cursor.fetchall()} == {reached}
        # the client-days logged since (webhook rows are re-read with a few minutes' overlap, so a little more)
        cursor.execute("select distinct usage_date from ops.usage_event_changes where changed_at > %s",
                       (read_before,))
        logged_days = [day for (day,) in cursor.fetchall()]
        cursor.execute("select count(*), count(*) filter (where usage_date = any(%s)) from marts.fct_daily_usage",
                       (logged_days,))
        all_rows, rows_of_logged_days = cursor.fetchone()
    assert {left, reached} <= set(logged_days) and len(logged_days) < SMALL.days
    assert _rows_inserted(target, "fct_daily_usage") == rows_of_logged_days < all_rows
    incremental = _day_rollups(warehouse)
    _dbt_run(warehouse, settled["tmp"] / "rollups_full", "--select", *rollups, "--full-refresh")
    assert _day_rollups(warehouse) == incremental


def test_a_leg_that_changes_alone_keeps_its_call_from_another_day(settled):
    """A Twilio leg on another day than its Retell call changes while the call does not: fct_calls rebuilds
    their conversation whole (not the leg alone) and ends where a full rebuild does."""
    warehouse = settled["warehouse"]
    call_day = SMALL.end_date - timedelta(days=SMALL.days - 1)  # the first day: no other test changes it
    leg = client_day(SMALL, 0, call_day).twilio_calls[0]["sid"]

    def collect_leg_again(**changes: str) -> None:  # as a collection would: the row rewritten under a new load
        assignments = ", ".join(f"{column} = %({column})s" for column in changes)
        with warehouse.connect() as connection, connection.cursor() as cursor:
            cursor.execute("select max(_dlt_load_id)::numeric + 1 from raw_twilio.calls")
            load_id = str(cursor.fetchone()[0])
            cursor.execute(f"update raw_twilio.calls set {assignments}, _dlt_load_id = %(load_id)s "
                           "where sid = %(sid)s", {**changes, "load_id": load_id, "sid": leg})
            assert cursor.rowcount == 1

    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select start_time from raw_twilio.calls where sid = %s", (leg,))
        started = parsedate_to_datetime(cursor.fetchone()[0])
    collect_leg_again(start_time=format_datetime(started + timedelta(days=1)))  # the leg moves to the next day
    _dbt_run(warehouse, settled["tmp"] / "leg_moved", "--select", "fct_usage_events", "fct_calls")
    collect_leg_again(price="-0.5000")  # then its price changes, on that day alone
    _dbt_run(warehouse, settled["tmp"] / "leg_repriced", "--select", "fct_usage_events", "fct_calls")
    incremental = _calls(warehouse)
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select call_id, link_status, twilio_cost_usd from marts.fct_calls "
                       "where twilio_call_sid = %s", (leg,))
        (call_id, link_status, twilio_cost), = cursor.fetchall()
    assert call_id is not None and link_status == "matched" and twilio_cost == Decimal("0.5000")
    _dbt_run(warehouse, settled["tmp"] / "leg_full", "--select", "fct_calls", "--full-refresh")
    assert _calls(warehouse) == incremental
