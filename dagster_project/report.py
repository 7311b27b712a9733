"""The usage report as a Dagster asset: the agency's page and one per client, written after a completed
UTC day has been rebuilt (the daily rollup at 00:15, or a backfill), one folder per day."""

from datetime import UTC, date, datetime, time, timedelta

from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)
from dagster._core.storage.tags import PARTITION_NAME_TAG

from billing_usage.settings import utc_now
from dagster_project.jobs import RANGE_TAGS, build_models_job
from dagster_project.partitions import daily_partitions, single_run, today_partition_key
from dagster_project.policies import OWNERS
from dagster_project.resources import WarehouseResource
from usage_report import default_report_dir, write_reports

REPORT_MARTS = ("fct_daily_usage", "fct_usage_events", "fct_cycle_usage", "fct_cycle_adjustments",
                "dim_billing_cycles", "dim_clients", "dim_agents", "fct_calls", "fct_usage_anomalies",
                "fct_coverage_daily")


def report_as_of(day: date) -> datetime:
    """A day's report is as of the end of that UTC day, or now while the day is not over."""
    return min(datetime.combine(day + timedelta(days=1), time.min, UTC), utc_now())


@asset(
    deps=[AssetKey(["marts", name]) for name in REPORT_MARTS],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    group_name="reporting",
    kinds={"html"},
    owners=OWNERS,
    description="Static HTML usage report: the agency's page and one per client (cost per provider per day, "
                "cycle to date against the previous cycle, top agents and conversations, open anomalies, "
                "coverage, pending prices), for the 30 UTC days up to each partition's day. See docs/report.md.",
)
def usage_report(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    start, end = (date.fromisoformat(key) for key in (context.partition_key_range.start,
                                                      context.partition_key_range.end))
    out_dir = default_report_dir()
    files = None
    for offset in range((end - start).days + 1):
        files = write_reports(warehouse.warehouse, out_dir, report_as_of(start + timedelta(days=offset)))
        context.log.info(f"usage report for {files.window_end}: {files.agency} and {len(files.clients)} client "
                         "page(s)")
    return MaterializeResult(metadata={
        "path": MetadataValue.path(str(files.agency)),
        "directory": MetadataValue.path(str(files.directory)),
        "client_pages": len(files.clients),
        "window": f"{files.window_start} to {files.window_end}",
        "as_of": files.as_of.isoformat(),
    })


usage_report_job = define_asset_job("write_usage_report", selection=[usage_report], partitions_def=daily_partitions,
                                    description="Write the usage report of the partitions' days.")


@sensor(job=usage_report_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Each successful build_models run of completed UTC days (the daily rollup, a backfill) is "
                    "followed by the usage report of the same days; the regular runs of today are not.")
def report_after_rollup_sensor(context: SensorEvaluationContext):
    since = datetime.fromtimestamp(float(context.cursor), UTC) if context.cursor else None
    records = context.instance.get_run_records(
        filters=RunsFilter(job_name=build_models_job.name, updated_after=since, statuses=[DagsterRunStatus.SUCCESS]),
        order_by="update_timestamp", ascending=True, limit=100)
    if not records:
        return SkipReason("no model build finished since the last evaluation")
    today = today_partition_key()
    requests = [request for record in records if (request := _report_request(record.dagster_run, today))]
    return SensorResult(run_requests=requests, cursor=str(records[-1].update_timestamp.timestamp()))


def _report_request(build_run, today: str) -> RunRequest | None:
    """The report of the build's days, up to yesterday; None for a build of today alone."""
    tags = build_run.tags
    run_key = f"report-after-{build_run.run_id}"
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
