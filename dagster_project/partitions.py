"""Daily UTC partitions: today's partition is the regular, cursor-driven run; any other range is a
backfill that collects exactly those days again and recomputes what they touch."""

from datetime import date, timedelta

from dagster import AssetExecutionContext, BackfillPolicy, DailyPartitionsDefinition

from billing_usage.settings import get_settings, utc_now

daily_partitions = DailyPartitionsDefinition(start_date=get_settings().partitions_start, end_offset=1,
                                             timezone="UTC")
single_run = BackfillPolicy.single_run()


def today_partition_key() -> str:
    return utc_now().date().isoformat()


def backfill_days(context: AssetExecutionContext) -> tuple[str, str] | None:
    """[start, end) of the days to re-collect, or None for the regular run of today's partition."""
    if not context.has_partition_key_range:
        return None
    keys = context.partition_key_range
    if keys.start == keys.end == today_partition_key():
        return None
    return keys.start, (date.fromisoformat(keys.end) + timedelta(days=1)).isoformat()
