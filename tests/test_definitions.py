"""Dagster definitions load, lineage is one connected graph, and the dbt arguments are right."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from billing_usage.settings import PROJECT_ROOT
from billing_usage.tables import OPS_DDL
from dagster_project.definitions import defs
from dagster_project.ingestion import collector_quarantine_assets, raw_assets
from dagster_project.transformation import dbt_build_args, dbt_project
from dagster_project.webhooks import webhook_landing_assets


def _manifest() -> dict:
    return json.loads(Path(dbt_project.manifest_path).read_text())


def test_every_dbt_source_is_fed_by_a_dlt_asset_or_the_webhook_receiver():
    produced_by_dlt = {key for assets in raw_assets for key in assets.keys}
    produced_by_dlt |= {spec.key for spec in collector_quarantine_assets}
    landed_by_receiver = {spec.key for spec in webhook_landing_assets}  # reported by the webhook sensor
    sources = [s for s in _manifest()["sources"].values() if s["source_name"] != "ops"]
    assert sources
    for source in sources:
        key = AssetKey(source["meta"]["dagster"]["asset_key"])
        assert key in produced_by_dlt | landed_by_receiver, f"dbt source {source['unique_id']} has no upstream asset"
    assert {AssetKey(s["meta"]["dagster"]["asset_key"]) for s in sources} >= produced_by_dlt - {
        AssetKey(["raw_openrouter", "credits"])}


def test_ops_sources_are_tables_the_pipeline_creates():
    ops_sources = [s for s in _manifest()["sources"].values() if s["source_name"] == "ops"]
    assert ops_sources
    for source in ops_sources:
        assert f"create table if not exists ops.{source['name']}" in OPS_DDL, source["unique_id"]


def test_lineage_runs_from_raw_tables_to_daily_usage():
    graph = defs.resolve_asset_graph()
    daily = next(k for k in graph.get_all_asset_keys() if k.path[-1] == "fct_daily_usage")
    ancestors = graph.upstream_key_iterator(daily)
    upstream = set(ancestors)
    for raw in (AssetKey(["raw_retell", "calls"]), AssetKey(["raw_twilio", "calls"]),
                AssetKey(["raw_openrouter", "activity"]), AssetKey(["raw_directory", "resource_assignments"])):
        assert raw in upstream


def test_collection_and_build_jobs_schedule_and_sensor_are_defined():
    collect, build = defs.resolve_job_def("collect_usage"), defs.resolve_job_def("build_models")
    raw = {key for assets in raw_assets for key in assets.keys}
    assert set(collect.asset_layer.executable_asset_keys) == raw
    built = set(build.asset_layer.executable_asset_keys)
    assert not built & raw and AssetKey(["marts", "fct_daily_usage"]) in built
    schedule = defs.resolve_schedule_def("collect_usage_schedule")
    assert schedule.cron_schedule == "*/10 * * * *" and schedule.job_name == "collect_usage"
    assert defs.resolve_sensor_def("build_after_collection_sensor").job_name == "build_models"


def test_webhooks_refresh_only_the_path_to_the_day_rollups():
    refresh = defs.resolve_job_def("refresh_day_rollups")
    models = {key.path[-1] for key in refresh.asset_layer.executable_asset_keys}
    assert {"fct_usage_events", "fct_daily_usage", "fct_daily_client_usage", "fct_hourly_usage"} <= models
    assert not models & {"fct_cycle_usage", "fct_calls", "coverage_comparisons", "fct_usage_anomalies", "quarantine"}
    assert not refresh.asset_layer.asset_graph.asset_check_keys  # the tests run in the build after collection
    assert defs.resolve_sensor_def("webhook_deliveries_sensor").job_name == "refresh_day_rollups"


def test_production_dbt_build_excludes_unit_tests_and_fixes_the_clock():
    args = dbt_build_args("2026-03-16T06:00:00+00:00", ("2026-03-01", "2026-03-03"))
    assert args[0] == "build"
    assert args[args.index("--exclude") + 1] == "test_type:unit"
    assert json.loads(args[args.index("--vars") + 1]) == {
        "as_of": "2026-03-16T06:00:00+00:00", "backfill_start": "2026-03-01", "backfill_end": "2026-03-03"}


def test_workspace_yaml_loads():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_collection_health_flags_stale_failing_and_lost_accounts():
    from datetime import UTC, datetime, timedelta

    from dagster_project.checks import collection_health

    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    rows = [
        ("fresh", now - timedelta(minutes=5), None, None),
        ("stale", now - timedelta(minutes=16), None, None),
        ("failing", now - timedelta(minutes=5), now - timedelta(minutes=1), None),
        ("recovered", now - timedelta(minutes=1), now - timedelta(minutes=5), None),
        ("never", None, now, None),
        ("lost", now, None, "3 day(s) of activity ... were not collected"),
    ]
    assert collection_health(rows, now) == {"stale": ["never", "stale"], "failing": ["failing", "never"],
                                            "lost_data": ["lost"]}
