"""Jobs and schedules."""

from __future__ import annotations

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

usage_pipeline_job = define_asset_job(
    "usage_pipeline",
    selection=AssetSelection.all().materializable(),
    description="Collect from every provider, then rebuild the dbt models.",
)

# Polling must stay under 15 minutes behind the providers.
usage_pipeline_schedule = ScheduleDefinition(
    job=usage_pipeline_job,
    cron_schedule="*/10 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
