"""What every asset shares: its owner, and the freshness the NFRs ask of it (shown in the UI)."""

from datetime import timedelta

from dagster import FreshnessPolicy

OWNERS = ["team:billing-data"]

# Polling runs every 10 minutes and must stay under 15 minutes behind the providers.
POLLED = FreshnessPolicy.time_window(fail_window=timedelta(minutes=15), warn_window=timedelta(minutes=11))
# The webhook sensor reports the landing tables at least every few minutes while the path works.
WEBHOOK_PATH = FreshnessPolicy.time_window(fail_window=timedelta(minutes=5))
# The previous day's rollup is complete by 01:00 UTC.
DAILY_ROLLUP = FreshnessPolicy.cron(deadline_cron="0 1 * * *", lower_bound_delta=timedelta(hours=1), timezone="UTC")
