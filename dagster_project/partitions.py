"""Daily UTC partitions: today's partition is the regular, cursor-driven run; any other range is a
backfill that collects exactly those days again and recomputes what they touch."""

import os
from datetime import UTC, date, datetime, timedelta

from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition

PARTITIONS_START = os.environ.get("BILLING_USAGE_PARTITIONS_START", "2025-10-01")

daily_partitions = DailyPartitionsDefinition(start_date=PARTITIONS_START, end_offset=1, timezone="UTC")
single_run = BackfillPolicy.single_run()


def today_partition_key() -> str:
    return datetime.now(UTC).date().isoformat()


def backfill_days(context: AssetExecutionContext) -> tuple[str, str] | None:
    """[start, end) of the days to re-collect, or None for the regular run of today's partition."""
    if not context.has_partition_key_range:
        return None
    keys = context.partition_key_range
    if keys.start == keys.end == today_partition_key():
        return None
    return keys.start, (date.fromisoformat(keys.end) + timedelta(days=1)).isoformat()
