"""Retention purges detailed events of closed, reconciled cycles only; aggregates stay; a dry run changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance
from dateutil.relativedelta import relativedelta

from billing_usage.retention import run_retention
from billing_usage.settings import NOW_ENV, PROJECT_ROOT
from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from tests.conftest import TEST_END_DATE, pipeline_environment, run_job, run_pipeline

pytestmark = pytest.mark.integration
END_OF_DATA = datetime.combine(TEST_END_DATE, datetime.min.time(), UTC)
AS_OF = END_OF_DATA + timedelta(days=70)  # the generated days' cycles are all closed by then
RETENTION_MONTHS = 1  # and they all ended more than a month before it


def _query(warehouse, sql: str, params=None) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _build(warehouse, as_of: datetime, *select: str, command: str = "build") -> subprocess.CompletedProcess:
    return subprocess.run(
        [DBT_EXECUTABLE, command, "--exclude", "test_type:unit", *(["--select", *select] if select else []),
         "--vars", json.dumps({"as_of": as_of.isoformat(), "retention_months": RETENTION_MONTHS}),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        capture_output=True, text=True, env={**os.environ, **warehouse.dbt_env()})


def _counts(warehouse) -> dict:
    return {
        "events": dict(_query(warehouse, "select client_id, count(*) from marts.fct_usage_events group by 1")),
        "raw_calls": _query(warehouse, "select count(*) from raw_retell.calls")[0][0],
        "cycles": _query(warehouse, "select * from marts.fct_cycle_usage order by cycle_usage_id"),
    }


def _make_retention_dry_run(local_dir) -> subprocess.CompletedProcess:
    """`make retention DRY_RUN=1` a year after AS_OF: its 13 months' cutoff is the tests' one month's."""
    env = {**os.environ, NOW_ENV: (AS_OF + relativedelta(years=1)).isoformat(),
           "BILLING_USAGE_LOCAL_DIR": str(local_dir), "DAGSTER_HOME": str(local_dir / "dagster_home")}
    return subprocess.run([sys.executable, "-m", "cli.retention", "--dry-run"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def retained(database_factory, sandbox_server, tmp_path_factory):
    warehouse = database_factory("retention")
    with pipeline_environment(warehouse, sandbox_server, tmp_path_factory.mktemp("dir") / "directory.yaml"):
        assert run_pipeline().success
        assert _build(warehouse, AS_OF).returncode == 0
        with warehouse.connect() as connection, connection.cursor() as cursor:
            # after close, Retell raises one call of each of client_002's cycles by $1: the closed totals no
            # longer match the events, so the cycles must not be purged until the ledger books the difference
            cursor.execute("""
                update raw_retell.calls
                set call_cost = jsonb_set(call_cost, '{combined_cost}',
                                          to_jsonb((call_cost ->> 'combined_cost')::numeric + 100)),
                    _dlt_load_id = '9999999999.0'
                where call_id in (
                    select distinct on (cycles.cycle_id) events.external_id
                    from marts.fct_cycle_usage as cycles
                    inner join marts.fct_usage_events as events
                        on events.client_id = cycles.client_id and events.occurred_at >= cycles.cycle_start
                        and events.occurred_at < cycles.cycle_end
                    where cycles.client_id = 'client_002' and cycles.provider = 'retell'
                      and cycles.metric = 'voice_seconds' and events.metric = 'voice_seconds'
                      and events.cost_usd is not null
                    order by cycles.cycle_id, events.external_id)""")
            tampered = cursor.rowcount  # one call per cycle the generated days touch
        # retention decides on what the models hold at a build: here, before the ledger books the difference
        # (a run: the identity test on the cycles would rightly fail until then)
        assert _build(warehouse, AS_OF, "fct_usage_events", command="run").returncode == 0
        before = _counts(warehouse)
        cli = _make_retention_dry_run(tmp_path_factory.mktemp("local"))
        after_cli = _counts(warehouse)
        assert _build(warehouse, AS_OF, "retention_cycles", "retention_raw_rows").returncode == 0
        dry = run_retention(warehouse, dry_run=True)
        after_dry = _counts(warehouse)
        applied = run_retention(warehouse, dry_run=False)
        after = _counts(warehouse)
        purged = _query(warehouse, "select client_id from ops.retention_purges order by 1")
        rebuild = _build(warehouse, AS_OF + timedelta(hours=1))
        again = run_retention(warehouse, dry_run=False)
        asset_run = run_job("retention", DagsterInstance.ephemeral())
    return {"warehouse": warehouse, "before": before, "cli": cli, "after_cli": after_cli, "dry": dry,
            "after_dry": after_dry, "applied": applied, "after": after, "purged": purged, "rebuild": rebuild,
            "again": again, "asset_run": asset_run, "tampered": tampered}


def test_a_dry_run_lists_what_would_go_and_changes_nothing(retained):
    dry = retained["dry"]
    assert {c.client_id for c in dry.purge} == {"client_001", "client_003"}
    assert [(c.client_id, c.refusals) for c in dry.refused] == \
        [("client_002", ["does not reconcile"])] * retained["tampered"]
    assert retained["after_dry"] == retained["before"]
    assert any(line.startswith("  would purge client_001") for line in dry.lines())


def test_make_retention_decides_then_lists_and_changes_nothing(retained):
    """The command builds the retention models itself (the model build leaves them out), as the job does."""
    cli = retained["cli"]
    assert cli.returncode == 1, cli.stdout + cli.stderr[-3000:]  # client_002 is refused
    assert set(retained["dry"].lines()[1:]) <= set(cli.stdout.splitlines())
    assert retained["after_cli"] == retained["before"]


def test_only_reconciled_closed_cycles_lose_their_detail(retained):
    before, after = retained["before"], retained["after"]
    assert set(after["events"]) == {"client_002"}  # refused: kept whole
    assert after["events"]["client_002"] == before["events"]["client_002"]
    assert after["raw_calls"] < before["raw_calls"]
    assert retained["applied"].rows_deleted["marts.fct_usage_events"] == (
        before["events"]["client_001"] + before["events"]["client_003"])
    # one row per purged cycle: the generated days may touch one or two cycles of a client
    assert {client for client, in retained["purged"]} == {"client_001", "client_003"}
    assert retained["purged"] == sorted((cycle.client_id,) for cycle in retained["applied"].purge)


def test_cycle_aggregates_and_adjustments_stay(retained):
    assert retained["after"]["cycles"] == retained["before"]["cycles"]
    assert retained["rebuild"].returncode == 0, retained["rebuild"].stdout[-3000:]
    assert _query(retained["warehouse"], "select count(*) from marts.fct_cycle_adjustments "
                                         "where client_id in ('client_001', 'client_003')") == [(0,)]


def test_a_refused_cycle_waits_until_the_ledger_reconciles_it(retained):
    assert [(c.client_id, c.refusals) for c in retained["applied"].refused] == \
        [("client_002", ["does not reconcile"])] * retained["tampered"]
    # The next build books the difference as an adjustment; then the cycle reconciles and may go.
    adjustments = _query(retained["warehouse"], "select client_id, delta_cost_usd, reason "
                                                "from marts.fct_cycle_adjustments")
    assert adjustments == [("client_002", 1, "changed_after_close")] * retained["tampered"]
    assert [c.client_id for c in retained["again"].purge] == ["client_002"] * retained["tampered"]
    assert not retained["again"].refused
    checks = {e.check_name: e.passed for e in retained["asset_run"].get_asset_check_evaluations()}
    assert checks["every_expired_cycle_reconciles"]  # the asset's own cutoff: nothing expired yet
    assert checks["unique_retention_cycles_cycle_id"]  # the job builds and tests the retention models first
    assert all(checks.values()), checks
