"""Cycle statements and the FOCUS export as Dagster assets, written after a completed UTC day has been rebuilt
(the daily rollup at 00:15, or a backfill) by the export_cycles job its sensor starts.

For a partition's days they export the cycles that overlap those days, every cycle not closed yet, those
closed within the last week (their final statement) and those a coverage ERROR held back last time. A
coverage ERROR blocks a statement: it is not written, the step logs why, and the asset check
statements_not_blocked fails (ERROR) with the count and the reasons.
"""

from datetime import date

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    define_asset_job,
)

from billing_usage.exports import ExportError, default_exports_dir, export_cycles, read_cycles
from billing_usage.exports.files import blocked_cycle_ids
from billing_usage.settings import utc_now
from dagster_project.jobs import after_rollup_sensor
from dagster_project.partitions import daily_partitions, single_run
from dagster_project.policies import OWNERS
from dagster_project.resources import WarehouseResource

STATEMENTS = AssetKey(["exports", "cycle_statements"])
FOCUS = AssetKey(["exports", "focus_cost_and_usage"])
SOURCES = [AssetKey(["reporting", "rpt_cycle_statements"])] + [
    AssetKey(["marts", name]) for name in ("fct_cycle_usage", "fct_cycle_usage_by_agent", "fct_cycle_adjustments",
                                           "dim_billing_cycles", "dim_clients", "dim_agents")]


def _export(context: AssetExecutionContext, warehouse: WarehouseResource, statements: bool):
    first, last = (date.fromisoformat(key) for key in (context.partition_key_range.start,
                                                       context.partition_key_range.end))
    out_dir, now = default_exports_dir(), utc_now()
    retry = blocked_cycle_ids(out_dir)
    try:
        cycles = read_cycles(warehouse.warehouse, lambda reader: reader.cycles_to_refresh(first, last, now, retry),
                             f"run {context.run_id}", warehouse.settings.lock_wait_seconds)
        report = export_cycles(cycles, out_dir, now, statements=statements, focus_files=not statements)
    except ExportError as exc:
        raise Failure(description=str(exc)) from None
    for line in report.lines():
        (context.log.warning if "BLOCKED" in line else context.log.info)(line)
    return report


@asset(
    key=STATEMENTS,
    deps=SOURCES,
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    group_name="reporting",
    kinds={"csv", "json"},
    owners=OWNERS,
    check_specs=[AssetCheckSpec("statements_not_blocked", asset=STATEMENTS,
                                description="No cycle statement is held back by a coverage ERROR.")],
    description="Each client's cycle statement as CSV and JSON (same figures, reconciled to the cent with "
                "fct_cycle_usage + adjustments), under BILLING_USAGE_EXPORTS_DIR/statements. A coverage ERROR "
                "blocks a statement. See docs/reporting.md.",
)
def cycle_statements(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    report = _export(context, warehouse, statements=True)
    blocked = report.blocked_lines()
    return MaterializeResult(
        metadata={"directory": MetadataValue.path(str(report.out_dir / "statements")),
                  "statements_written": len(report.written), "statements_blocked": len(blocked),
                  "cycles": MetadataValue.md("\n".join(f"- {line.strip()}" for line in report.lines()[1:]))},
        check_results=[AssetCheckResult(
            check_name="statements_not_blocked", passed=not blocked, severity=AssetCheckSeverity.ERROR,
            metadata={"blocked": len(blocked), "reasons": MetadataValue.md("\n".join(f"- {b}" for b in blocked)
                                                                           or "none")})],
    )


@asset(
    key=FOCUS,
    deps=SOURCES,
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    group_name="reporting",
    kinds={"csv"},
    owners=OWNERS,
    description="FinOps FOCUS 1.2 cost-and-usage files, one per client cycle (one row per cycle x agent x "
                "provider x metric, plus the corrections billed into the cycle), validated against the "
                "specification's columns and types before they are written. See docs/reporting.md.",
)
def focus_cost_and_usage(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    report = _export(context, warehouse, statements=False)
    return MaterializeResult(metadata={
        "directory": MetadataValue.path(str(report.out_dir / "focus")), "files": len(report.focus_files),
        "charges": report.focus_rows, "billed_cost_usd": str(report.focus_billed_cost)})


export_assets = [cycle_statements, focus_cost_and_usage]

export_cycles_job = define_asset_job(
    "export_cycles", selection=export_assets, partitions_def=daily_partitions,
    description="Write the cycle statements and FOCUS files of the cycles the partitions' days touch.")


exports_after_rollup_sensor = after_rollup_sensor(export_cycles_job, "exports_after_rollup_sensor", "the exports",
                                                  run_key_prefix="exports-after")
