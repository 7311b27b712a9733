"""Runs that can be left alone: concurrent runs serialize instead of colliding, a provider outage does
not stop the others, collector state recovers, killed runs do not stay STARTED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from dagster import AssetCheckSeverity, DagsterInstance, DagsterRunStatus, RunsFilter

from billing_usage.locks import advisory_lock
from billing_usage.settings import PROJECT_ROOT
from cli.demo_summary import generated_figures
from cli.local_env import local_instance_config
from cli.runs import fail_abandoned_runs
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.totals import expected_totals
from tests.conftest import TEST_END_DATE, pipeline_environment, run_pipeline

pytestmark = pytest.mark.integration
CONFIG = SandboxConfig(seed=13, clients=2, agents_per_client=2, days=4, calls_per_agent_per_day=5,
                       end_date=TEST_END_DATE)
TODAY = CONFIG.today.isoformat()
BUILD_ONE_PARTITION = f"""
import sys
from dagster import DagsterInstance
from dagster_project.definitions import defs
from cli.local_env import ensure_dagster_home
from cli.runs import _process_tags
ensure_dagster_home()
result = defs.resolve_job_def("build_models").execute_in_process(
    instance=DagsterInstance.get(), partition_key="{TODAY}", tags=_process_tags(), raise_on_error=False)
print("BUILD", "succeeded" if result.success else "failed", result.run_id, flush=True)
sys.exit(0 if result.success else 1)
"""


def _query(warehouse, sql: str, params=None) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _totals(warehouse) -> dict[str, Decimal]:
    return dict(_query(warehouse, "select provider, sum(cost_usd) from marts.fct_usage_events group by 1"))


def _generated(config: SandboxConfig, providers=("retell", "twilio", "openrouter")) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for (provider, _), total in expected_totals(config).items():
        if provider in providers:
            totals[provider] += total.cost_usd
    return dict(totals)


@pytest.fixture(scope="module")
def sandbox():
    server = start_in_thread(CONFIG)
    yield server
    server.shutdown()


def _local_env(warehouse, sandbox, folder: Path, **extra: str) -> dict[str, str]:
    """A fresh machine's `make demo` setup, pointed at a test database and the test sandbox."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SOURCES__")}
    return env | {"BILLING_USAGE_PROVIDERS": "sandbox", "BILLING_USAGE_DATABASE_URL": warehouse.url,
                  "BILLING_USAGE_SANDBOX_URL": sandbox.base_url, "BILLING_USAGE_LOCAL_DIR": str(folder),
                  "DAGSTER_HOME": str(folder / "dagster_home"), **extra}


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=PROJECT_ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(process: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


@pytest.fixture(scope="module")
def collisions(database_factory, sandbox, tmp_path_factory):
    """Two demos at once, then a demo with a backfill, then two model builds at once, on one machine."""
    warehouse = database_factory("collide")
    env = _local_env(warehouse, sandbox, tmp_path_factory.mktemp("local"))
    first = _spawn(["-m", "cli.demo"], env)
    time.sleep(3)
    second = _spawn(["-m", "cli.demo"], env)
    demos = [_finish(first), _finish(second)]
    after_demos = _totals(warehouse)
    demo = _spawn(["-m", "cli.demo"], env)
    backfill = _spawn(["-m", "cli.backfill", "--start", CONFIG.start_date.isoformat(),
                       "--end", (CONFIG.start_date + timedelta(days=1)).isoformat()], env)
    with_backfill = [_finish(demo), _finish(backfill)]
    after_backfill = _totals(warehouse)
    builds = [_spawn(["-c", BUILD_ONE_PARTITION], env) for _ in range(2)]
    concurrent_builds = [_finish(build) for build in builds]
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        dbt_commands = [_dbt_command_span(instance, output.split("BUILD succeeded ")[-1].split()[0])
                        for _, output in concurrent_builds if "BUILD succeeded " in output]
    return {"warehouse": warehouse, "demos": demos, "with_backfill": with_backfill, "builds": concurrent_builds,
            "dbt_commands": dbt_commands, "after_demos": after_demos, "after_backfill": after_backfill,
            "final": _totals(warehouse)}


def _dbt_command_span(instance: DagsterInstance, run_id: str) -> tuple[float, float]:
    """When the run's dbt command started and finished, from the run's event log."""
    times = {entry.user_message.split(" dbt command")[0]: entry.timestamp for entry in instance.all_logs(run_id)
             if entry.user_message.startswith(("Running dbt command", "Finished dbt command"))}
    return times["Running"], times["Finished"]


def test_two_demos_at_once_both_end_well_with_exact_totals(collisions):
    for code, output in collisions["demos"]:
        assert code == 0, output[-3000:]
        assert "Billed + quarantined = generated for every provider." in output
        assert "Traceback" not in output
    assert collisions["after_demos"] == _generated(CONFIG)


def test_a_demo_and_a_backfill_at_once_both_end_well(collisions):
    (demo_code, demo_output), (backfill_code, backfill_output) = collisions["with_backfill"]
    assert demo_code == 0, demo_output[-3000:]
    assert backfill_code == 0, backfill_output[-3000:]
    assert "every step succeeded" in backfill_output
    assert collisions["after_backfill"] == _generated(CONFIG)


def test_two_model_builds_at_once_serialize_on_the_warehouse(collisions):
    outputs = [output for _, output in collisions["builds"]]
    assert [code for code, _ in collisions["builds"]] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert all("BUILD succeeded" in output for output in outputs)
    (first_start, first_end), (second_start, second_end) = sorted(collisions["dbt_commands"])
    assert first_end <= second_start  # one dbt build at a time, by Dagster's pool or the advisory lock
    assert collisions["final"] == _generated(CONFIG)


def test_a_run_that_cannot_get_the_lock_in_time_skips_and_says_who_holds_it(database_factory, sandbox, tmp_path,
                                                                           monkeypatch):
    warehouse = database_factory("skip")
    monkeypatch.setenv("BILLING_USAGE_LOCK_WAIT_SECONDS", "1")
    with pipeline_environment(warehouse, sandbox, tmp_path / "directory.yaml"), \
            advisory_lock(warehouse, "dbt:build", "test-holder", 0) as held:
        assert held.acquired
        run = run_pipeline(DagsterInstance.ephemeral())
    assert run.collect.success and run.build.success and not run.failed_steps()
    skipped = run.skipped()
    assert skipped and all("held by billing-usage dbt:build test-holder" in reason for reason in skipped.values())
    assert not [event for event in run.build.get_asset_materialization_events()]
    assert any(line.startswith("SKIPPED ") for line in run.summary_lines())


def test_the_local_instance_has_the_production_limits(tmp_path, monkeypatch):
    from cli.local_env import ensure_dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    ensure_dagster_home()
    with DagsterInstance.get() as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled
    assert local_instance_config()["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}


@pytest.fixture(scope="module")
def outage(database_factory, sandbox, tmp_path_factory):
    """Retell refuses the key for one run; OpenRouter answers 500 for one run; then both recover."""
    warehouse = database_factory("outage")
    instance = DagsterInstance.ephemeral()
    with pipeline_environment(warehouse, sandbox, tmp_path_factory.mktemp("dir") / "directory.yaml"), \
            pytest.MonkeyPatch.context() as env:
        workspaces = os.environ["SOURCES__RETELL__WORKSPACES"]
        env.setenv("SOURCES__RETELL__WORKSPACES", '[{"name": "workspace_0", "api_key": "key_revoked"}]')
        env.setenv("SOURCES__OPENROUTER__MAX_ATTEMPTS", "2")
        env.setenv("SOURCES__OPENROUTER__BACKOFF_SECONDS", "0.01")
        requests.post(f"{sandbox.base_url}/_sandbox/faults", json={"provider": "openrouter", "status": 500,
                                                                  "count": 1000}, timeout=5)
        try:
            down = run_pipeline(instance)
        finally:
            requests.delete(f"{sandbox.base_url}/_sandbox/faults", timeout=5)
        during = _totals(warehouse)
        state_during = _query(warehouse, "select source, resource, account, last_error is not null "
                                         "from ops.collector_state where source in ('retell', 'openrouter')")
        env.setenv("SOURCES__RETELL__WORKSPACES", workspaces)
        recovered = run_pipeline(instance)
    return {"warehouse": warehouse, "down": down, "during": during, "state_during": state_during,
            "recovered": recovered, "after": _totals(warehouse),
            "state_after": _query(warehouse, "select source, resource, account from ops.collector_state "
                                             "where resource = '*'")}


def _check(run, source: str):
    return next(e for e in run.get_asset_check_evaluations()
                if e.check_name == "collection_fresh" and e.asset_key.path[0] == f"raw_{source}")


def test_the_providers_that_answered_still_reach_the_marts(outage):
    down = outage["down"]
    assert not down.collect.success and down.build.success
    assert set(down.failed_steps()) == {"retell", "openrouter"}
    assert "HTTP 401" in down.failed_steps()["retell"] and "key_revoked" not in down.failed_steps()["retell"]
    assert outage["during"] == _generated(CONFIG, ("twilio",))


def test_the_failed_providers_are_red_checks_and_a_clear_summary(outage):
    down = outage["down"]
    for source in ("retell", "openrouter"):
        check = _check(down, source)
        assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert _check(down, "twilio").passed
    lines = down.summary_lines()
    assert any(line.startswith("FAILED  retell: retell account workspace_0") for line in lines)
    assert any("raw_retell/calls:collection_fresh (ERROR)" in line for line in lines)


def test_after_recovery_nothing_is_lost_and_the_checks_turn_green(outage):
    recovered = outage["recovered"]
    assert recovered.success, recovered.summary_lines()
    assert outage["after"] == _generated(CONFIG)
    assert all(_check(recovered, source).passed for source in ("retell", "twilio", "openrouter"))
    assert outage["state_after"] == []  # placeholders of never-collected accounts are gone
    assert ("openrouter", "*", "agency", True) in outage["state_during"]


def test_a_killed_in_process_run_is_marked_failed_by_the_next_command(database_factory, sandbox, tmp_path):
    warehouse = database_factory("killed")
    env = _local_env(warehouse, sandbox, tmp_path)
    with advisory_lock(warehouse, "dbt:build", "test-holder", 0):  # the build waits for this lock
        process = _spawn(["-c", BUILD_ONE_PARTITION], env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (tmp_path / "dagster_home" / "dagster.yaml").exists():
            time.sleep(0.2)
        with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            started = []
            while time.monotonic() < deadline and not started:
                time.sleep(0.5)
                started = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]))
            time.sleep(2)
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            assert len(started) == 1
            assert instance.get_run_by_id(started[0].run_id).status == DagsterRunStatus.STARTED
            assert fail_abandoned_runs(instance) == [started[0].run_id]
            assert instance.get_run_by_id(started[0].run_id).status == DagsterRunStatus.FAILURE
            assert fail_abandoned_runs(instance) == []


def test_the_demo_ends_with_its_own_summary_of_an_outage(database_factory, sandbox, tmp_path):
    warehouse = database_factory("demo_outage")
    env = _local_env(warehouse, sandbox, tmp_path,
                     SOURCES__RETELL__WORKSPACES='[{"name": "workspace_0", "api_key": "key_revoked"}]')
    code, output = _finish(_spawn(["-m", "cli.demo"], env))
    assert code == 1
    collected = next(line for line in output.splitlines() if line.startswith("collect_usage: ") and "(" in line)
    assert "retell FAILED" in collected and "twilio ok" in collected and "openrouter ok" in collected
    assert "build_models: billing_dbt_models ok" in output
    summary = output[output.index("Run summary"):]
    assert "FAILED  retell: retell account workspace_0: POST" in summary and "(HTTP 401)" in summary
    assert "raw_retell/calls:collection_fresh (ERROR)" in summary
    assert "Traceback" not in output
    log = Path(output.split("Full log: ")[1].split()[0]).read_text()
    assert "STEP_FAILURE" in log  # the whole story is in the log file
    assert _totals(warehouse) == _generated(CONFIG, ("twilio", "openrouter"))


def test_a_damaged_sandbox_passes_when_billed_plus_quarantined_is_what_it_generated(database_factory, tmp_path):
    damaged = SandboxConfig(seed=13, clients=2, agents_per_client=2, days=4, calls_per_agent_per_day=5,
                            end_date=TEST_END_DATE, corrupt_rate=0.15)
    figures = generated_figures(damaged)
    assert all(entry.damaged for entry in figures.values())
    server = start_in_thread(damaged)
    env = _local_env(database_factory("demo_damaged"), server, tmp_path)
    try:
        code, output = _finish(_spawn(["-m", "cli.demo"], env))
    finally:
        server.shutdown()
    assert code == 0, output[-3000:]
    assert "Billed + quarantined = generated for every provider." in output and "MISMATCH" not in output
    table = output[output.index("Every generated object"):output.index("Per client")]
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.split()[:1] & figures.keys()}
    for provider, entry in figures.items():
        assert rows[provider][-1] == "ok", output
        generated, damaged_count = int(rows[provider][1]), int(rows[provider][2])
        assert (generated, damaged_count) == (entry.generated, entry.damaged)
        assert int(rows[provider][4]) >= entry.damaged  # quarantined
    assert "Open anomalies (marts.fct_usage_anomalies):" in output and "Coverage against" in output
