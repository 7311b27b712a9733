"""Everything Dagster loads: raw dlt assets, dbt models, resources and schedules."""

from dagster import Definitions
from dagster_dbt import DbtCliResource
from dagster_dlt import DagsterDltResource

from dagster_project.checks import collection_checks
from dagster_project.ingestion import collector_quarantine_assets, raw_assets
from dagster_project.resources import WarehouseResource
from dagster_project.retention_asset import retention_job, retention_schedule, usage_retention
from dagster_project.schedules import daily_rollup_schedule, usage_pipeline_job, usage_pipeline_schedule
from dagster_project.sensors import webhook_deliveries_sensor, webhook_landing_assets, webhook_refresh_job
from dagster_project.transformation import DBT_EXECUTABLE, billing_dbt_models, dbt_project

defs = Definitions(
    assets=[*raw_assets, *collector_quarantine_assets, *webhook_landing_assets, billing_dbt_models, usage_retention],
    asset_checks=collection_checks,
    jobs=[usage_pipeline_job, webhook_refresh_job, retention_job],
    schedules=[usage_pipeline_schedule, daily_rollup_schedule, retention_schedule],
    sensors=[webhook_deliveries_sensor],
    resources={
        "dlt": DagsterDltResource(),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
        "warehouse": WarehouseResource(),
    },
)
