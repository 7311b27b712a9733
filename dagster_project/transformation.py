"""dbt assets: staging, intermediate and marts, wired to the raw dlt assets through dbt sources."""


import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from dagster_project.partitions import backfill_days, daily_partitions, single_run
from dagster_project.resources import WarehouseResource
from dagster_project.warehouse import PROJECT_ROOT
from webhooks.landing import ensure_landing_tables

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))  # the one beside this interpreter
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()


def prepare_manifest() -> Path:
    """Write target/manifest.json with `dbt parse` (needs no database)."""
    subprocess.run([DBT_EXECUTABLE, "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
                    "--profiles-dir", str(DBT_PROJECT_DIR)], check=True)
    return dbt_project.manifest_path


def dbt_build_args(backfill: tuple[str, str] | None = None) -> list[str]:
    """`dbt build` for production runs (unit tests belong to the test suite); a backfill passes its
    days [start, end) so the daily aggregates recompute them."""
    args = ["build", "--exclude", "test_type:unit"]
    if backfill:
        args += ["--vars", json.dumps({"backfill_start": backfill[0], "backfill_end": backfill[1]})]
    return args


class LayerTranslator(DagsterDbtTranslator):
    """Groups models by layer folder: staging, intermediate, marts."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if dbt_resource_props["resource_type"] == "model" and len(fqn) > 2 else None


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=LayerTranslator(),
            partitions_def=daily_partitions, backfill_policy=single_run)
def billing_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    with warehouse.warehouse.connect() as connection:
        ensure_landing_tables(connection)  # the webhook sources exist before the receiver's first delivery
    yield from dbt.cli(dbt_build_args(backfill_days(context)), context=context).stream()
