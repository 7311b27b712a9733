"""Everything Dagster loads: raw dlt assets, dbt models, resources, jobs, schedules and sensors."""

from dagster import Definitions, multiprocess_executor
from dagster_dbt import DbtCliResource
from dagster_dlt import DagsterDltResource

from dagster_project.alerts import alerts_sensor
from dagster_project.checks import anomalies_check, collection_checks, coverage_check, prices_settle
from dagster_project.exports import export_assets, export_cycles_job, exports_after_rollup_sensor
from dagster_project.ingestion import collector_quarantine_assets, raw_assets
from dagster_project.jobs import (
    build_after_collection_sensor,
    build_models_job,
    collect_usage_job,
    collect_usage_schedule,
    daily_rollup_schedule,
    refresh_day_rollups_job,
)
from dagster_project.report import report_after_rollup_sensor, usage_report, usage_report_job
from dagster_project.resources import WarehouseResource
from dagster_project.retention import retention_job, retention_schedule, usage_retention
from dagster_project.transformation import DBT_EXECUTABLE, billing_dbt_models, dbt_project, retention_dbt_models
from dagster_project.webhooks import webhook_deliveries_sensor, webhook_landing_assets

defs = Definitions(
    assets=[*raw_assets, *collector_quarantine_assets, *webhook_landing_assets, billing_dbt_models,
            retention_dbt_models, usage_retention, usage_report, *export_assets],
    asset_checks=[*collection_checks, prices_settle, coverage_check, anomalies_check],
    jobs=[collect_usage_job, build_models_job, refresh_day_rollups_job, retention_job, usage_report_job,
          export_cycles_job],
    schedules=[collect_usage_schedule, daily_rollup_schedule, retention_schedule],
    sensors=[build_after_collection_sensor, webhook_deliveries_sensor, alerts_sensor, report_after_rollup_sensor,
             exports_after_rollup_sensor],
    # Launched runs (the queue) run each step in a subprocess; forked from a server that has imported these
    # definitions once per run, instead of each step importing them again (spawn, Dagster's default).
    executor=multiprocess_executor.configured({"start_method": {"forkserver": {}}}),
    resources={
        "dlt": DagsterDltResource(),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
        "warehouse": WarehouseResource(),
    },
)
