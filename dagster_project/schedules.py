"""Jobs and schedules. Collection and the model build are separate jobs, so one provider's outage
never stops the others from reaching the marts: every finished collection run, failed or not, is
followed by a build of the same partitions (see sensors.py)."""

from datetime import UTC, timedelta

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from dagster_project.checks import collection_checks
from dagster_project.ingestion import raw_assets
from dagster_project.partitions import daily_partitions
from dagster_project.transformation import billing_dbt_models

collect_usage_job = define_asset_job(
    "collect_usage",
    selection=AssetSelection.assets(*raw_assets).without_checks(),
    partitions_def=daily_partitions,
    description="Collect from every provider into the raw tables. Today's partition follows the collectors' "
                "cursors; any other partition range re-collects exactly those days.",
)

build_models_job = define_asset_job(
    "build_models",
    selection=AssetSelection.assets(billing_dbt_models) | AssetSelection.checks(*collection_checks),
    partitions_def=daily_partitions,
    description="Rebuild the dbt models from what the raw tables hold now, and check collection health.",
)


@schedule(job=collect_usage_job, cron_schedule="*/10 * * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def collect_usage_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    """Polling stays under 15 minutes behind the providers."""
    return RunRequest(partition_key=context.scheduled_execution_time.astimezone(UTC).date().isoformat())


@schedule(job=collect_usage_job, cron_schedule="15 0 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def daily_rollup_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    """At 00:15 UTC, collect the previous UTC day again in full; the build that follows rebuilds its
    aggregates (done well before 01:00: a day takes minutes, see the README's figures)."""
    day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"daily-rollup-{day}", partition_key=day)
