"""Webhook deliveries land outside Dagster, through the receiver: their tables as assets, and a sensor
that refreshes the day rollups after new deliveries."""

import json
import time

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

from billing_usage.registry import RECEIVER, RawTable, owned_by
from billing_usage.tables import ensure_tables
from dagster_project.jobs import refresh_day_rollups_job
from dagster_project.partitions import today_partition_key
from dagster_project.policies import OWNERS, WEBHOOK_PATH
from dagster_project.resources import WarehouseResource

DELIVERY_TABLES = [table for table in owned_by(RECEIVER) if table.progress == "received"]
HEARTBEAT_SECONDS = 240  # while the path works, the delivery tables are reported at least this often
WAITING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]

webhook_landing_assets = [
    AssetSpec(AssetKey(list(table.asset_key)), group_name="raw_webhooks", kinds={"postgres"}, owners=OWNERS,
              description=table.description or f"{table.relation}, written by the webhook receiver (make webhooks).",
              freshness_policy=WEBHOOK_PATH if table in DELIVERY_TABLES else None)
    for table in owned_by(RECEIVER)
]


def new_deliveries(connection, since: str | None) -> dict[RawTable, tuple[int, str]]:
    """Per delivery table: deliveries received after `since` (ISO timestamp) and the newest received_at."""
    found = {}
    with connection.cursor() as cursor:
        for table in DELIVERY_TABLES:
            cursor.execute(f"select count(*), max(received_at) from {table.relation} "
                           "where %s::timestamptz is null or received_at > %s::timestamptz", (since, since))
            count, newest = cursor.fetchone()
            if count:
                found[table] = (count, newest.isoformat())
    return found


def refresh_waiting(instance) -> bool:
    """Whether a refresh is queued and has not started: it will read what has arrived since."""
    return bool(instance.get_run_records(
        filters=RunsFilter(job_name=refresh_day_rollups_job.name, statuses=WAITING), limit=1))


@sensor(job=refresh_day_rollups_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="New webhook deliveries -> report raw_webhooks and refresh the day rollups (< 5 min behind), "
                    "unless a refresh is already waiting to start. With nothing new, it still reports the "
                    "delivery tables every few minutes: their 5-minute freshness then says whether the "
                    "receiver-to-Dagster path works.")
def webhook_deliveries_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource):
    state = json.loads(context.cursor) if context.cursor else {}
    with warehouse.warehouse.connect() as connection:
        ensure_tables(connection)
        found = new_deliveries(connection, state.get("received"))
    now = time.time()
    if found:
        newest = max(received for _, received in found.values())
        waiting = refresh_waiting(context.instance)
        return SensorResult(
            run_requests=[] if waiting else [RunRequest(run_key=f"webhooks-{newest}",
                                                        partition_key=today_partition_key())],
            asset_events=[AssetMaterialization(AssetKey(list(table.asset_key)), metadata={"new_deliveries": count})
                          for table, (count, _) in found.items()],
            cursor=json.dumps({"received": newest, "reported": now}),
        )
    if now - state.get("reported", 0) >= HEARTBEAT_SECONDS:
        return SensorResult(
            asset_events=[AssetMaterialization(AssetKey(list(table.asset_key)), metadata={"new_deliveries": 0})
                          for table in DELIVERY_TABLES],
            cursor=json.dumps({**state, "reported": now}),
        )
    return SkipReason("no new webhook deliveries")
