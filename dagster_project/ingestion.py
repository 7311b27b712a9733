"""dlt assets: each provider's raw tables, and the directory."""


from collections.abc import Iterator

import dlt
from dagster import AssetExecutionContext, AssetKey, AssetSpec
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from dagster_project.local_env import ensure_provider_config
from dagster_project.resources import WarehouseResource
from dagster_project.warehouse import LOCAL_DIR
from dlt_sources.directory import directory_source
from dlt_sources.openrouter import openrouter_source
from dlt_sources.retell import retell_source
from dlt_sources.twilio import twilio_source


class RawTranslator(DagsterDltTranslator):
    """raw_<source>/<table> keys, matching meta.dagster.asset_key in the dbt sources."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        spec = super().get_asset_spec(data)
        source = data.resource.source_name
        return spec.replace_attributes(
            key=AssetKey([f"raw_{source}", data.resource.name]),
            group_name=f"raw_{source}",
            deps=[],
        )


def _template_pipeline(name: str) -> dlt.Pipeline:
    """Names the assets at definition time; runs use WarehouseResource.dlt_pipeline."""
    return dlt.pipeline(pipeline_name=name, destination="postgres", dataset_name=f"raw_{name}",
                        pipelines_dir=str(LOCAL_DIR / "dlt" / "definitions"))


def _run(context: AssetExecutionContext, dlt_resource: DagsterDltResource, warehouse: WarehouseResource,
         name: str, source: dlt.sources.DltSource) -> Iterator:
    yield from dlt_resource.run(context=context, dlt_source=source, dlt_pipeline=warehouse.dlt_pipeline(name))


@dlt_assets(dlt_source=retell_source(workspaces=[]), dlt_pipeline=_template_pipeline("retell"),
            name="retell", dagster_dlt_translator=RawTranslator())
def retell_raw(context: AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource):
    ensure_provider_config()
    yield from _run(context, dlt, warehouse, "retell", retell_source())


@dlt_assets(dlt_source=twilio_source(accounts=[]), dlt_pipeline=_template_pipeline("twilio"),
            name="twilio", dagster_dlt_translator=RawTranslator())
def twilio_raw(context: AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource):
    ensure_provider_config()
    yield from _run(context, dlt, warehouse, "twilio", twilio_source())


@dlt_assets(dlt_source=openrouter_source(accounts=[]), dlt_pipeline=_template_pipeline("openrouter"),
            name="openrouter", dagster_dlt_translator=RawTranslator())
def openrouter_raw(context: AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource):
    ensure_provider_config()
    yield from _run(context, dlt, warehouse, "openrouter", openrouter_source())


@dlt_assets(dlt_source=directory_source(path="unused-at-definition-time"),
            dlt_pipeline=_template_pipeline("directory"), name="directory", dagster_dlt_translator=RawTranslator())
def directory_raw(context: AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource):
    ensure_provider_config()
    yield from _run(context, dlt, warehouse, "directory", directory_source())


raw_assets = [retell_raw, twilio_raw, openrouter_raw, directory_raw]
