"""Jobs and schedules: polling every 10 minutes (today's partition), and the previous day's rollup."""

from datetime import UTC, timedelta

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from dagster_project.partitions import daily_partitions

usage_pipeline_job = define_asset_job(
    "usage_pipeline",
    selection=AssetSelection.all().materializable() - AssetSelection.assets("usage_retention"),
    partitions_def=daily_partitions,
    description="Collect from every provider, then rebuild the dbt models. Today's partition follows the "
                "collectors' cursors; any other partition range re-collects exactly those days.",
)


@schedule(job=usage_pipeline_job, cron_schedule="*/10 * * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def usage_pipeline_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    """Polling stays under 15 minutes behind the providers."""
    return RunRequest(partition_key=context.scheduled_execution_time.astimezone(UTC).date().isoformat())


@schedule(job=usage_pipeline_job, cron_schedule="15 0 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING)
def daily_rollup_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    """At 00:15 UTC, collect the previous UTC day again in full and rebuild its aggregates (done well
    before 01:00: a day takes minutes, see the README's figures)."""
    day = (context.scheduled_execution_time.astimezone(UTC) - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"daily-rollup-{day}", partition_key=day)
