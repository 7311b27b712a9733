"""dlt assets: each provider's raw tables, and the directory."""


from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime

import dlt
from dagster import AssetExecutionContext, AssetKey, AssetObservation, AssetSpec, Failure
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from billing_usage.collector_state import record_failure, record_success
from billing_usage.locks import advisory_lock
from billing_usage.raw_indexes import ensure_raw_indexes
from billing_usage.registry import RECEIVER, by_asset_key, owned_by, raw_tables
from billing_usage.settings import get_settings
from dagster_project.partitions import backfill_days, daily_partitions, single_run
from dagster_project.policies import OWNERS, POLLED
from dagster_project.resources import WarehouseResource
from dlt_sources.directory import directory_source
from dlt_sources.http_client import ProviderError
from dlt_sources.openrouter import openrouter_source
from dlt_sources.retell import retell_source
from dlt_sources.twilio import twilio_source


class RawTranslator(DagsterDltTranslator):
    """raw_<source>/<table> keys, matching meta.dagster.asset_key in the dbt sources; descriptions from
    the registry; polled tables must stay under 15 minutes behind the providers."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        spec = super().get_asset_spec(data)
        key = (f"raw_{data.resource.source_name}", data.resource.name)
        table = by_asset_key(key)
        return spec.replace_attributes(
            key=AssetKey(list(key)),
            group_name=key[0],
            deps=[],
            owners=OWNERS,
            description=table.description if table and table.description else spec.description,
            freshness_policy=POLLED if table and table.progress == "load" else None,
        )


def _template_pipeline(name: str) -> dlt.Pipeline:
    """Names the assets at definition time; runs use WarehouseResource.dlt_pipeline."""
    return dlt.pipeline(pipeline_name=name, destination="postgres", dataset_name=f"raw_{name}",
                        pipelines_dir=str(get_settings().local_dir / "dlt" / "definitions"))


def _provider_error(exc: BaseException) -> ProviderError | None:
    while exc is not None:
        if isinstance(exc, ProviderError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _locks(name: str) -> list[str]:
    """A pipeline runs alone; one that reloads a table whole (the directory) never overlaps a model build
    either, because the build reads that table's fingerprint while it renders."""
    reloaded_whole = any(table.progress == "content" for table in owned_by(name))
    return [f"dlt:{name}", *(["dbt:build"] if reloaded_whole else [])]


def _run(context: AssetExecutionContext, dlt_resource: DagsterDltResource, warehouse: WarehouseResource,
         name: str, source: dlt.sources.DltSource) -> Iterator:
    """Run one pipeline alone (advisory locks, a working folder per run) and record the outcome, per
    account, in ops.collector_state. If another run holds a lock longer than the lock wait, this one
    skips: it materializes nothing and says so."""
    with ExitStack() as held:
        for lock_name in _locks(name):
            lock = held.enter_context(advisory_lock(warehouse.warehouse, lock_name, context.run_id,
                                                    warehouse.settings.lock_wait_seconds, context.log.info))
            if not lock.acquired:
                context.log.warning(f"{name}: {lock.skip_message}")
                for key in context.selected_asset_keys:
                    yield AssetObservation(asset_key=key, metadata={"skipped": lock.skip_message})
                return
        with warehouse.dlt_pipeline(name, context.run_id) as pipeline:
            started_at = datetime.now(UTC)
            try:
                yield from dlt_resource.run(context=context, dlt_source=source, dlt_pipeline=pipeline)
            except Exception as exc:
                provider_error = _provider_error(exc)
                message = str(provider_error or exc)[:2000]
                record_failure(warehouse.warehouse, name, provider_error.account if provider_error else None,
                               message, context.run_id, started_at, datetime.now(UTC))
                if provider_error is not None:
                    raise Failure(description=message, metadata={"provider_status": provider_error.status}) from None
                raise
            loaded = record_success(warehouse.warehouse, name, pipeline, context.run_id, started_at,
                                    datetime.now(UTC))
    created = ensure_raw_indexes(warehouse.warehouse, name)
    context.log.info(f"{name}: {loaded} rows collected" + (f"; created indexes {created}" if created else ""))


PARTITIONED = {"partitions_def": daily_partitions, "backfill_policy": single_run}


def _backfill(context: AssetExecutionContext) -> dict:
    """backfill_start/backfill_end for a past partition range; nothing for today's regular run."""
    days = backfill_days(context)
    return {"backfill_start": days[0], "backfill_end": days[1]} if days else {}


PENDING_SQL = """
    select distinct object_type, external_id, attributes ->> 'workspace', attributes ->> 'account_sid'
    from marts.fct_usage_events
    where provider = %s and cost_status = 'pending'
"""
# A Retell call picked from its webhook carries no workspace; a poll of it may have recorded one.
POLLED_WORKSPACE_SQL = "select call_id, workspace from raw_retell.calls where call_id = any(%s)"


def pending_objects(warehouse: WarehouseResource, provider: str) -> list[tuple[str, str, str | None, str | None]]:
    """(object_type, id, Retell workspace, Twilio account) of the objects the canonical events still hold
    as pending a price; past var('pending_max_age_days') the build marks them expired and they drop out."""
    with warehouse.warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select 1 from information_schema.columns where table_schema = 'marts' "
                       "and table_name = 'fct_usage_events' and column_name = 'cost_status'")
        if cursor.fetchone() is None:  # no build yet
            return []
        cursor.execute(PENDING_SQL, (provider,))
        return cursor.fetchall()


def _retell_options(context: AssetExecutionContext, warehouse: WarehouseResource) -> dict:
    if backfill_days(context):
        return _backfill(context)
    pending = {call_id: workspace for _, call_id, workspace, _ in pending_objects(warehouse, "retell")}
    unknown = [call_id for call_id, workspace in pending.items() if not workspace]
    if unknown:
        with warehouse.warehouse.connect() as connection, connection.cursor() as cursor:
            cursor.execute("select to_regclass('raw_retell.calls') is not null")
            if cursor.fetchone()[0]:
                cursor.execute(POLLED_WORKSPACE_SQL, (unknown,))
                pending.update(cursor.fetchall())
    return {"pending_calls": [{"workspace": workspace, "call_id": call_id}
                              for call_id, workspace in pending.items() if workspace]}


def _twilio_options(context: AssetExecutionContext, warehouse: WarehouseResource) -> dict:
    if backfill_days(context):
        return _backfill(context)
    return {"pending_records": [{"account_sid": account, "sid": sid}
                                for _, sid, _, account in pending_objects(warehouse, "twilio") if account]}


@dlt_assets(dlt_source=retell_source(workspaces=[]), dlt_pipeline=_template_pipeline("retell"),
            name="retell", dagster_dlt_translator=RawTranslator(), pool="dlt_retell", **PARTITIONED)
def retell_raw(context: AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource):
    yield from _run(context, dlt, warehouse, "retell", retell_source(**_retell_options(context, warehouse)))


@dlt_assets(dlt_source=twilio_source(accounts=[]), dlt_pipeline=_template_pipeline("twilio"),
            name="twilio", dagster_dlt_translator=RawTranslator(), pool="dlt_twilio", **PARTITIONED)
def twilio_raw(context: AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource):
    yield from _run(context, dlt, warehouse, "twilio", twilio_source(**_twilio_options(context, warehouse)))


@dlt_assets(dlt_source=openrouter_source(accounts=[]), dlt_pipeline=_template_pipeline("openrouter"),
            name="openrouter", dagster_dlt_translator=RawTranslator(), pool="dlt_openrouter", **PARTITIONED)
def openrouter_raw(context: AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource):
    yield from _run(context, dlt, warehouse, "openrouter", openrouter_source(**_backfill(context)))


@dlt_assets(dlt_source=directory_source(path="unused-at-definition-time", sql_url=None),
            dlt_pipeline=_template_pipeline("directory"), name="directory", dagster_dlt_translator=RawTranslator(),
            pool="dlt_directory")
def directory_raw(context: AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource):
    yield from _run(context, dlt, warehouse, "directory", directory_source())


raw_assets = [retell_raw, twilio_raw, openrouter_raw, directory_raw]

# Records without a key are written by the same dlt resource to <table>_quarantine (see
# dlt_sources/quarantine.py); these specs put those tables in the lineage, downstream of the resource.
collector_quarantine_assets = [
    AssetSpec(AssetKey(list(table.asset_key)), deps=[AssetKey([table.schema, table.quarantine_of])],
              group_name=table.schema, kinds={"dlt", "postgres"}, owners=OWNERS,
              description=table.description or f"{table.schema}.{table.quarantine_of} records the collector could "
                                                "not key.")
    for table in raw_tables() if table.role == "quarantine" and table.owner != RECEIVER
]
