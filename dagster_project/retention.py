"""The retention asset and its schedule (02:30 UTC, after the daily rollup): the retention models decide,
then the asset purges what they name."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DefaultScheduleStatus,
    MaterializeResult,
    ScheduleDefinition,
    asset,
    define_asset_job,
)

from billing_usage.retention import run_retention
from dagster_project.resources import WarehouseResource
from dagster_project.transformation import retention_dbt_models


class RetentionConfig(Config):
    dry_run: bool = False


@asset(
    deps=[retention_dbt_models],
    group_name="ops",
    kinds={"postgres"},
    check_specs=[AssetCheckSpec("every_expired_cycle_reconciles", asset="usage_retention")],
    description="Purges the detailed events of the closed, reconciled cycles older than var('retention_months') "
                "that ops.retention_cycles names; cycle aggregates and adjustments stay.",
)
def usage_retention(context: AssetExecutionContext, config: RetentionConfig, warehouse: WarehouseResource):
    report = run_retention(warehouse.warehouse, config.dry_run)
    for line in report.lines():
        (context.log.error if "REFUSED" in line else context.log.info)(line)
    yield MaterializeResult(metadata={
        "report": "\n".join(report.lines()),
        "dry_run": report.dry_run,
        "cycles_purged": len(report.purge),
        "cycles_refused": len(report.refused),
        "rows_deleted": sum(report.rows_deleted.values()),
    })
    yield AssetCheckResult(
        check_name="every_expired_cycle_reconciles",
        passed=not report.refused,
        severity=AssetCheckSeverity.ERROR,
        metadata={"refused": "; ".join(f"{c.client_id} {c.cycle_start:%Y-%m-%d}: {', '.join(c.refusals)}"
                                       for c in report.refused) or "none"},
    )


retention_job = define_asset_job("retention", selection=[retention_dbt_models, usage_retention])
retention_schedule = ScheduleDefinition(job=retention_job, cron_schedule="30 2 * * *", execution_timezone="UTC",
                                        default_status=DefaultScheduleStatus.RUNNING)
