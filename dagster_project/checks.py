"""Asset checks beyond dbt's tests: collection health (ops.collector_state) and settling prices."""

from datetime import UTC, datetime, timedelta

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from billing_usage.registry import raw_tables
from billing_usage.settings import utc_now
from billing_usage.tables import ensure_tables
from dagster_project.resources import WarehouseResource

POLLING_FRESHNESS = timedelta(minutes=15)  # NFR: polling collection < 15 min behind the provider


def collection_health(rows: list[tuple], now: datetime, freshness: timedelta = POLLING_FRESHNESS) -> dict:
    """Accounts that are stale, failing, or lost data, from (account, last_success_at, last_error_at, warning)."""
    return {
        "stale": sorted(a for a, success, _, _ in rows if success is None or now - success > freshness),
        "failing": sorted(a for a, success, error_at, _ in rows
                          if error_at and (success is None or error_at > success)),
        "lost_data": sorted(a for a, _, _, warning in rows if warning),
    }


def _collection_check(source: str, key: AssetKey):
    @asset_check(asset=key, name="collection_fresh", blocking=False,
                 description=f"Every {source} account collected within {POLLING_FRESHNESS}, without errors or "
                             "data lost beyond the provider's retention.")
    def check(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.warehouse.connect() as connection:
            ensure_tables(connection)
            with connection.cursor() as cursor:
                cursor.execute("select account, last_success_at, last_error_at, warning from ops.collector_state "
                               "where source = %s", (source,))
                rows = cursor.fetchall()
        health = collection_health(rows, datetime.now(UTC))
        problems = any(health.values()) or not rows
        severe = bool(health["failing"] or health["lost_data"])
        return AssetCheckResult(
            passed=not problems,
            severity=AssetCheckSeverity.ERROR if severe else AssetCheckSeverity.WARN,
            metadata={"accounts": len(rows), **{name: ", ".join(accounts) or "none" for name, accounts in
                                                health.items()}},
        )

    return check


collection_checks = [_collection_check(table.owner, AssetKey(list(table.asset_key)))
                     for table in raw_tables() if table.collection_check]


STUCK_AFTER = timedelta(days=3)  # past the collectors' look-back: only the by-id re-fetch can settle it

PENDING_SQL = """
    select count(*) filter (where cost_status = 'pending'),
           count(*) filter (where cost_status = 'pending' and occurred_at < %(stuck_before)s),
           count(*) filter (where cost_status = 'expired'),
           min(occurred_at) filter (where cost_status = 'pending')
    from marts.fct_usage_events
"""
WORST_PENDING_SQL = """
    select client_id, provider, count(*), min(occurred_at)
    from marts.fct_usage_events where cost_status <> 'settled'
    group by client_id, provider order by count(*) desc, client_id limit 5
"""


@asset_check(asset=AssetKey(["marts", "fct_usage_events"]), name="prices_settle", blocking=False,
             description="No price stays pending past the collectors' look-back (WARN: it is being fetched again "
                         "by id) and none expired unpriced (ERROR). A null cost is never summed as zero.")
def prices_settle(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(PENDING_SQL, {"stuck_before": utc_now() - STUCK_AFTER})
        pending, stuck, expired, oldest = cursor.fetchone()
        cursor.execute(WORST_PENDING_SQL)
        worst = cursor.fetchall()
    return AssetCheckResult(
        passed=not stuck and not expired,
        severity=AssetCheckSeverity.ERROR if expired else AssetCheckSeverity.WARN,
        metadata={
            "pending": pending, "pending_past_lookback": stuck, "expired": expired,
            "oldest_pending": oldest.isoformat() if oldest else "none",
            "worst": "; ".join(f"{client} {provider}: {count} since {since:%Y-%m-%d}"
                               for client, provider, count, since in worst) or "none",
        },
    )
