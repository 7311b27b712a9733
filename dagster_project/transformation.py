"""dbt assets: staging, intermediate and marts, wired to the raw dlt assets through dbt sources; the
retention models, built by the retention job alone."""


import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetObservation, Failure
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from billing_usage.locks import advisory_lock
from billing_usage.settings import PROJECT_ROOT, utc_now
from billing_usage.tables import ensure_tables, store_pii_salt
from dagster_project.partitions import backfill_days, daily_partitions, single_run
from dagster_project.policies import DAILY_ROLLUP, OWNERS
from dagster_project.resources import WarehouseResource

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))  # the one beside this interpreter
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
# Which expired cycles may be purged: a full check of their events, built right before each purge rather
# than by every build (it reads every event of every expired cycle not purged yet).
RETENTION_MODELS = "path:models/retention"


def dbt_build_args(as_of: str, backfill: tuple[str, str] | None = None) -> list[str]:
    """`dbt build` for production runs (unit tests belong to the test suite), with cycle statuses
    computed for `as_of`; a backfill passes its days [start, end) so the daily aggregates recompute them."""
    build_vars = {"as_of": as_of}
    if backfill:
        build_vars |= {"backfill_start": backfill[0], "backfill_end": backfill[1]}
    return ["build", "--exclude", "test_type:unit", "--vars", json.dumps(build_vars)]


class LayerTranslator(DagsterDbtTranslator):
    """Groups models by layer folder (staging, intermediate, marts, retention) and snapshots in their own
    group; the dbt description alone (never the raw SQL); one owner; the rollup's 01:00 UTC deadline."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        if dbt_resource_props["resource_type"] == "snapshot":
            return "snapshots"
        return fqn[1] if dbt_resource_props["resource_type"] == "model" and len(fqn) > 2 else None

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return (dbt_resource_props.get("description") or "").strip() or \
            f"dbt {dbt_resource_props['resource_type']} {dbt_resource_props['name']}"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return OWNERS

    def get_asset_spec(self, manifest, unique_id, project):
        spec = super().get_asset_spec(manifest, unique_id, project)
        return spec.replace_attributes(freshness_policy=DAILY_ROLLUP) if unique_id.endswith(".fct_daily_usage") \
            else spec


TRANSLATOR = LayerTranslator(settings=DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True))


def _locked_build(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource,
                  backfill: tuple[str, str] | None = None, fail_when_busy: bool = False):
    """One dbt build at a time per warehouse: concurrent builds collide on view and table swaps. A build
    that waited too long is skipped, or fails when what follows must not act on older models."""
    with advisory_lock(warehouse.warehouse, "dbt:build", context.run_id, warehouse.settings.lock_wait_seconds,
                       context.log.info) as lock:
        if not lock.acquired and fail_when_busy:
            raise Failure(f"dbt build {lock.skip_message}")
        if not lock.acquired:
            context.log.warning(f"dbt build {lock.skip_message}")
            for key in context.selected_asset_keys:
                yield AssetObservation(asset_key=key, metadata={"skipped": lock.skip_message})
            return
        with warehouse.warehouse.connect() as connection:
            ensure_tables(connection)  # the webhook sources exist before the receiver's first delivery
            store_pii_salt(connection, warehouse.settings.pii_salt)
        yield from dbt.cli(dbt_build_args(utc_now().isoformat(), backfill), context=context).stream()


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=TRANSLATOR,
            exclude=RETENTION_MODELS, partitions_def=daily_partitions, backfill_policy=single_run,
            pool="dbt_warehouse")
def billing_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    yield from _locked_build(context, dbt, warehouse, backfill_days(context))


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=TRANSLATOR,
            select=RETENTION_MODELS, pool="dbt_warehouse")
def retention_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    """Never skipped: the purge that follows must decide on what the models hold now."""
    yield from _locked_build(context, dbt, warehouse, fail_when_busy=True)
