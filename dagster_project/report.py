"""The usage report as a Dagster asset: the agency's page and one per client, written after a completed
UTC day has been rebuilt (the daily rollup at 00:15, or a backfill), one folder per day."""

from datetime import UTC, date, datetime, time, timedelta

from dagster import (
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)

from billing_usage.settings import utc_now
from dagster_project.jobs import after_rollup_sensor
from dagster_project.partitions import daily_partitions, single_run
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


report_after_rollup_sensor = after_rollup_sensor(usage_report_job, "report_after_rollup_sensor", "the usage report",
                                                 run_key_prefix="report-after")
