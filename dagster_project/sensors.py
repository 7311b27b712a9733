"""Sensors: a build after every finished collection run, and a build after new webhook deliveries
(which land outside Dagster, through the receiver)."""

from datetime import UTC, datetime

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from dagster_project.partitions import today_partition_key
from dagster_project.resources import WarehouseResource
from dagster_project.schedules import build_models_job, collect_usage_job
from webhooks.landing import TABLES, ensure_landing_tables

WEBHOOK_TABLES = {provider: AssetKey(["raw_webhooks", table.split(".")[1]]) for provider, (table, _) in TABLES.items()}
RANGE_TAGS = (ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG)

webhook_landing_assets = [
    AssetSpec(key, group_name="raw_webhooks", kinds={"postgres"},
              description=f"{provider.title()} webhook deliveries written by the receiver (make webhooks).")
    for provider, key in WEBHOOK_TABLES.items()
]


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


def new_deliveries(connection, since: str | None) -> dict[str, tuple[int, str]]:
    """Per provider: deliveries received after `since` (ISO timestamp) and the newest received_at."""
    found = {}
    with connection.cursor() as cursor:
        for provider, (table, _) in TABLES.items():
            cursor.execute(f"select count(*), max(received_at) from {table} "
                           "where %s::timestamptz is null or received_at > %s::timestamptz", (since, since))
            count, newest = cursor.fetchone()
            if count:
                found[provider] = (count, newest.isoformat())
    return found


@sensor(job=build_models_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="New webhook deliveries -> observe raw_webhooks and rebuild the models (< 5 min behind).")
def webhook_deliveries_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    with warehouse.warehouse.connect() as connection:
        ensure_landing_tables(connection)
        found = new_deliveries(connection, context.cursor)
    if not found:
        return SkipReason("no new webhook deliveries")
    newest = max(received for _, received in found.values())
    return SensorResult(
        run_requests=[RunRequest(run_key=f"webhooks-{newest}", partition_key=today_partition_key())],
        asset_events=[AssetMaterialization(WEBHOOK_TABLES[provider], metadata={"new_deliveries": count})
                      for provider, (count, _) in found.items()],
        cursor=newest,
    )
