"""Asset checks beyond dbt's tests: collection health (ops.collector_state), settling prices, coverage against
the providers' own totals (fct_coverage_daily) and open anomaly findings (fct_usage_anomalies)."""

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


STUCK_AFTER = timedelta(days=3)  # prices settle within hours; the collectors keep fetching it by id

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
             description="No price stays pending more than 3 days (WARN: it is being fetched again "
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


WORST = 5  # offenders listed in a check's metadata

COVERAGE_STATUS_SQL = "select status, count(*) from marts.fct_coverage_daily group by status"
COVERAGE_OFFENDERS_SQL = """
    select provider, account, client_id, usage_date, category, measure, ours, theirs, ratio, status, reason
    from marts.fct_coverage_daily
    where status in ('error', 'warn') and {side}
    order by {order}, usage_date, provider, account, category, measure
    limit %(worst)s
"""
# below 100 %: the lowest ratios first; above it (or a provider that counts nothing): the highest first
OFFENDER_SIDES = {"lowest": ("ratio < 1", "ratio asc"),
                  "highest": ("(ratio > 1 or ratio is null)", "ratio desc nulls first")}
COVERAGE_BY_PROVIDER_SQL = """
    select provider, category, measure, sum(ours), sum(theirs), count(*)
    from marts.fct_coverage_daily
    where status <> 'not_yet_comparable'
    group by provider, category, measure order by provider, category, measure
"""


def _coverage_offender(row: tuple) -> str:
    provider, account, client_id, day, category, measure, ours, theirs, ratio, status, reason = row
    share = "no provider figure" if ratio is None else f"{ratio * 100:.2f} %"
    return (f"{status.upper()} {provider} {account}{f' ({client_id})' if client_id else ''} {day:%Y-%m-%d} "
            f"{category} {measure}: {ours} of {theirs} ({share}{f', {reason}' if reason else ''})")


def _ratio_text(ours, theirs) -> str:
    if not theirs:
        return "100.00 %" if not ours else "no provider figure"
    return f"{ours / theirs * 100:.2f} %"


@asset_check(asset=AssetKey(["marts", "fct_coverage_daily"]), name="coverage", blocking=False,
             description="Our usage against the providers' own totals on settled days: ERROR below 95 % or above "
                         "100.5 % (duplicates), WARN below 99.5 % (vars.coverage_thresholds). A coverage ERROR "
                         "also keeps the client's billing cycle settling.")
def coverage_check(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(COVERAGE_STATUS_SQL)
        statuses = dict(cursor.fetchall())
        offenders = {}
        for name, (side, order) in OFFENDER_SIDES.items():
            cursor.execute(COVERAGE_OFFENDERS_SQL.format(side=side, order=order), {"worst": WORST})
            offenders[name] = cursor.fetchall()
        cursor.execute(COVERAGE_BY_PROVIDER_SQL)
        by_provider = cursor.fetchall()
    errors, warnings = statuses.get("error", 0), statuses.get("warn", 0)
    return AssetCheckResult(
        passed=not errors and not warnings,
        severity=AssetCheckSeverity.ERROR if errors else AssetCheckSeverity.WARN,
        metadata={
            **{status: statuses.get(status, 0) for status in ("ok", "warn", "error", "not_yet_comparable")},
            **{f"worst_{name}": "; ".join(_coverage_offender(row) for row in rows) or "none"
               for name, rows in offenders.items()},
            "coverage_by_provider": "; ".join(
                f"{provider} {category} {measure}: {_ratio_text(ours, theirs)} over {rows} row(s)"
                for provider, category, measure, ours, theirs, rows in by_provider) or "none",
        },
    )


ANOMALY_COUNTS_SQL = """
    select kind, severity, count(*)
    from marts.fct_usage_anomalies
    where last_seen_at = (select max(last_seen_at) from marts.fct_usage_anomalies) and severity in ('error', 'warn')
    group by kind, severity order by kind, severity
"""
ANOMALY_OFFENDERS_SQL = """
    select severity, kind, usage_date, explanation
    from marts.fct_usage_anomalies
    where last_seen_at = (select max(last_seen_at) from marts.fct_usage_anomalies) and severity in ('error', 'warn')
    order by severity = 'error' desc, abs(coalesce(score, 0)) desc, usage_date desc, anomaly_id
    limit %(worst)s
"""


@asset_check(asset=AssetKey(["marts", "fct_usage_anomalies"]), name="anomalies", blocking=False,
             description="No open anomaly finding (made by the latest build) of severity error (ERROR) or warn "
                         "(WARN): spikes, drops, missing data, coverage gaps, expired prices, unattributed "
                         "cost, unit-cost drift, quarantine growth, orphan calls.")
def anomalies_check(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(ANOMALY_COUNTS_SQL)
        counts = cursor.fetchall()
        cursor.execute(ANOMALY_OFFENDERS_SQL, {"worst": WORST})
        worst = cursor.fetchall()
    errors = sum(count for _, severity, count in counts if severity == "error")
    warnings = sum(count for _, severity, count in counts if severity == "warn")
    return AssetCheckResult(
        passed=not errors and not warnings,
        severity=AssetCheckSeverity.ERROR if errors else AssetCheckSeverity.WARN,
        metadata={
            "open_errors": errors, "open_warnings": warnings,
            "by_kind": "; ".join(f"{kind} {severity}: {count}" for kind, severity, count in counts) or "none",
            "worst": "; ".join(f"{severity.upper()} {kind} {day:%Y-%m-%d}: {explanation}"
                               for severity, kind, day, explanation in worst) or "none",
        },
    )
