"""Backfill: a past range is collected again and recomputed, twice gives what once gives, and
nothing outside the range is touched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dagster import DagsterInstance

from cli.backfill import backfill
from sandbox.totals import expected_totals
from tests.conftest import SMALL, pipeline_environment, run_pipeline

pytestmark = pytest.mark.integration
FIRST, LAST = SMALL.start_date + timedelta(days=1), SMALL.start_date + timedelta(days=2)


def _query(warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def _snapshot(warehouse) -> dict:
    return {
        "retell_loads": dict(_query(warehouse, "select call_id, _dlt_load_id from raw_retell.calls")),
        "twilio_loads": dict(_query(warehouse, "select sid, _dlt_load_id from raw_twilio.calls")),
        "events": _query(warehouse, """select usage_event_id, quantity, cost_usd, client_id, agent_id, first_seen_at,
                                              last_changed_at from marts.fct_usage_events order by 1"""),
        "daily": _query(warehouse, """select usage_date, client_id, agent_id, provider, metric, quantity, cost_usd,
                                             event_count from marts.fct_daily_usage order by 1, 2, 3, 4, 5"""),
    }


@pytest.fixture(scope="module")
def backfilled(database_factory, sandbox_server, tmp_path_factory):
    warehouse = database_factory("backfill")
    with pipeline_environment(warehouse, sandbox_server, tmp_path_factory.mktemp("dir") / "directory.yaml"):
        instance = DagsterInstance.ephemeral()
        assert run_pipeline(instance).success
        before = _snapshot(warehouse)
        cursors = _query(warehouse, "select source, resource, account, cursor_position from ops.collector_state")
        once = backfill(FIRST, LAST, instance)
        after_once = _snapshot(warehouse)
        twice = backfill(FIRST, LAST, instance)
        after_twice = _snapshot(warehouse)
        cursors_after = _query(warehouse, "select source, resource, account, cursor_position "
                                          "from ops.collector_state")
    return {"warehouse": warehouse, "runs": (once, twice), "before": before, "once": after_once,
            "twice": after_twice, "cursors": (cursors, cursors_after)}


def test_the_backfill_runs_once_over_the_range(backfilled):
    for result in backfilled["runs"]:
        assert result.success
        for run in result.results:  # collection, then the build over the same range
            assert run.dagster_run.tags["dagster/asset_partition_range_start"] == FIRST.isoformat()
            assert run.dagster_run.tags["dagster/asset_partition_range_end"] == LAST.isoformat()


def test_only_the_range_is_collected_again(backfilled):
    before, once = backfilled["before"], backfilled["once"]
    from sandbox.usage import client_day

    in_range = {c["call_id"] for ci in range(SMALL.clients) for day in (FIRST, LAST)
                for c in client_day(SMALL, ci, day).retell_calls}
    reloaded = {call for call, load in once["retell_loads"].items() if load != before["retell_loads"][call]}
    assert reloaded == in_range
    legs = {leg["sid"] for ci in range(SMALL.clients) for day in (FIRST, LAST)
            for leg in client_day(SMALL, ci, day).twilio_calls}
    assert {sid for sid, load in once["twilio_loads"].items() if load != before["twilio_loads"][sid]} == legs


def test_twice_gives_the_same_result_as_once(backfilled):
    once, twice = backfilled["once"], backfilled["twice"]
    assert once["events"] == twice["events"] and once["daily"] == twice["daily"]
    assert once["events"] == backfilled["before"]["events"]  # nothing changed at the providers
    assert once["daily"] == backfilled["before"]["daily"]


def test_cursors_do_not_move_and_totals_still_match(backfilled):
    assert backfilled["cursors"][0] == backfilled["cursors"][1]
    totals = dict(_query(backfilled["warehouse"], "select provider, sum(cost_usd) from marts.fct_daily_usage "
                                                  "group by 1"))
    generated = {}
    for (provider, _), total in expected_totals(SMALL).items():
        generated[provider] = generated.get(provider, 0) + total.cost_usd
    assert totals == generated
