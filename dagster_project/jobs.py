"""Jobs, schedules and the sensor that chains them. Collection and the model build are separate jobs, so
one provider's outage never stops the others from reaching the marts: every finished collection run,
failed or not, is followed by a build of the same partitions."""

from datetime import UTC, date, datetime, timedelta

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from dagster_project.checks import anomalies_check, collection_checks, coverage_check, prices_settle
from dagster_project.ingestion import raw_assets
from dagster_project.partitions import daily_partitions, today_partition_key
from dagster_project.transformation import billing_dbt_models

collect_usage_job = define_asset_job(
    "collect_usage",
    selection=AssetSelection.assets(*raw_assets).without_checks(),
    partitions_def=daily_partitions,
    description="Collect from every provider into the raw tables. Today's partition follows the collectors' "
                "cursors; any other partition range re-collects exactly those days.",
)

DAY_ROLLUPS = [AssetKey(["marts", name]) for name in ("fct_daily_usage", "fct_daily_client_usage", "fct_hourly_usage")]

refresh_day_rollups_job = define_asset_job(
    "refresh_day_rollups",
    selection=(AssetSelection.assets(*DAY_ROLLUPS).upstream() & AssetSelection.assets(billing_dbt_models))
    .without_checks(),
    partitions_def=daily_partitions,
    description="New webhook deliveries to the day rollups: only the models on the way to fct_daily_usage, "
                "fct_daily_client_usage and fct_hourly_usage, without tests. The build after each collection "
                "does the rest (cycles, coverage, anomalies, every test).",
)

build_models_job = define_asset_job(
    "build_models",
    # the checks on the raw tables too: collection health and dbt's source tests
    selection=AssetSelection.assets(billing_dbt_models)
    | AssetSelection.checks_for_assets(*raw_assets)
    | AssetSelection.checks(*collection_checks, prices_settle, coverage_check, anomalies_check),
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


RANGE_TAGS = (ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG)


@sensor(job=build_models_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Every finished collect_usage run, succeeded or failed, is followed by a build of the same "
                    "partitions: the providers that answered reach the marts even when another one is down.")
def build_after_collection_sensor(context: SensorEvaluationContext):
    since = datetime.fromtimestamp(float(context.cursor), UTC) if context.cursor else None
    records = context.instance.get_run_records(
        filters=RunsFilter(job_name=collect_usage_job.name, updated_after=since,
                           statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]),
        order_by="update_timestamp", ascending=True, limit=100)
    if not records:
        return SkipReason("no collection run finished since the last evaluation")
    requests = [_same_partitions(record.dagster_run) for record in records]
    return SensorResult(run_requests=requests, cursor=str(records[-1].update_timestamp.timestamp()))


def _same_partitions(collection_run) -> RunRequest:
    run_key = f"after-{collection_run.run_id}"
    tags = collection_run.tags
    if PARTITION_NAME_TAG in tags:
        return RunRequest(run_key=run_key, partition_key=tags[PARTITION_NAME_TAG])
    return RunRequest(run_key=run_key, tags={tag: tags[tag] for tag in RANGE_TAGS if tag in tags})


def completed_days_request(build_run, today: str, run_key_prefix: str) -> RunRequest | None:
    """A run of the build's days up to yesterday; None for a build of today alone."""
    tags = build_run.tags
    run_key = f"{run_key_prefix}-{build_run.run_id}"
    if PARTITION_NAME_TAG in tags:
        day = tags[PARTITION_NAME_TAG]
        return RunRequest(run_key=run_key, partition_key=day) if day < today else None
    if all(tag in tags for tag in RANGE_TAGS):
        first, last = (tags[tag] for tag in RANGE_TAGS)
        if first >= today:
            return None
        last = min(last, (date.fromisoformat(today) - timedelta(days=1)).isoformat())
        return RunRequest(run_key=run_key, tags={RANGE_TAGS[0]: first, RANGE_TAGS[1]: last})
    return None


def after_rollup_sensor(job, name: str, what: str, run_key_prefix: str):
    """A sensor that follows each successful build_models run of completed UTC days (the daily rollup, a
    backfill) with `job` on the same days; the regular runs of today are not followed."""

    @sensor(name=name, job=job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
            description=f"Each successful build_models run of completed UTC days (the daily rollup, a backfill) is "
                        f"followed by {what} of the same days; the regular runs of today are not.")
    def follow_rollups(context: SensorEvaluationContext):
        since = datetime.fromtimestamp(float(context.cursor), UTC) if context.cursor else None
        records = context.instance.get_run_records(
            filters=RunsFilter(job_name=build_models_job.name, updated_after=since,
                               statuses=[DagsterRunStatus.SUCCESS]),
            order_by="update_timestamp", ascending=True, limit=100)
        if not records:
            return SkipReason("no model build finished since the last evaluation")
        today = today_partition_key()
        requests = [request for record in records
                    if (request := completed_days_request(record.dagster_run, today, run_key_prefix))]
        return SensorResult(run_requests=requests, cursor=str(records[-1].update_timestamp.timestamp()))

    return follow_rollups
