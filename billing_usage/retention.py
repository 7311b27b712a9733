"""Retention: purge detailed events (canonical and raw) of billing cycles that ended before the cutoff
(13 months by default), but only cycles that are closed, whose aggregates exist and reconcile with
their events and adjustments. Cycle aggregates and adjustments are kept forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from dateutil.relativedelta import relativedelta

from billing_usage.settings import utc_now
from billing_usage.warehouse import Warehouse

DEFAULT_MONTHS = 13

CYCLE_CHECKS = """
with eligible as (
    select * from marts.dim_billing_cycles
    where cycle_end <= %(cutoff)s and cycle_id not in (select cycle_id from ops.retention_purges)
),
events as (
    select c.cycle_id, e.provider, e.metric, sum(e.quantity) as quantity, sum(e.cost_usd) as cost_usd,
           count(*) as events
    from marts.fct_usage_events e
    join eligible c on c.client_id = e.client_id and e.occurred_at >= c.cycle_start and e.occurred_at < c.cycle_end
    group by 1, 2, 3
),
stored as (
    select cycle_id, provider, metric, quantity, cost_usd, cycle_status
    from marts.fct_cycle_usage where cycle_id in (select cycle_id from eligible)
),
adjusted as (
    select cycle_id, provider, metric, sum(delta_quantity) as quantity, sum(delta_cost_usd) as cost_usd
    from marts.fct_cycle_adjustments group by 1, 2, 3
),
compared as (
    select coalesce(events.cycle_id, stored.cycle_id) as cycle_id,
           stored.cycle_id is null as missing_aggregate,
           coalesce(stored.cycle_status, 'missing') <> 'closed' as not_closed,
           coalesce(events.cost_usd, 0) <> coalesce(stored.cost_usd, 0) + coalesce(adjusted.cost_usd, 0)
           or coalesce(events.quantity, 0) <> coalesce(stored.quantity, 0) + coalesce(adjusted.quantity, 0)
               as mismatch,
           coalesce(events.events, 0) as events, coalesce(events.cost_usd, 0) as cost_usd
    from events
    full outer join stored using (cycle_id, provider, metric)
    left join adjusted on adjusted.cycle_id = coalesce(events.cycle_id, stored.cycle_id)
        and adjusted.provider = coalesce(events.provider, stored.provider)
        and adjusted.metric = coalesce(events.metric, stored.metric)
)
select eligible.cycle_id, eligible.client_id, eligible.cycle_start, eligible.cycle_end,
       coalesce(sum(compared.events), 0), coalesce(sum(compared.cost_usd), 0),
       coalesce(bool_or(compared.missing_aggregate), false), coalesce(bool_or(compared.not_closed), false),
       coalesce(bool_or(compared.mismatch), false)
from eligible
join compared using (cycle_id)
group by 1, 2, 3, 4
order by 3, 2
"""

# Raw rows of the purged events' objects: (table, key column, object kind, key expression over the raw row).
RAW_TABLES = (
    ("raw_retell.calls", "retell:call", "call_id"),
    ("raw_webhooks.retell_events", "retell:call", "call_id"),
    ("raw_twilio.calls", "twilio:call", "sid"),
    ("raw_twilio.messages", "twilio:message", "sid"),
    ("raw_webhooks.twilio_callbacks", "twilio:call", "sid"),
    ("raw_webhooks.twilio_callbacks", "twilio:message", "sid"),
    ("raw_openrouter.activity", "openrouter:activity",
     "md5(concat_ws(':', coalesce((date)::text, ''), coalesce((api_key_hash)::text, ''), "
     "coalesce((model_permaslug)::text, ''), coalesce((endpoint_id)::text, '')))"),
)


@dataclass
class CycleDecision:
    cycle_id: str
    client_id: str
    cycle_start: datetime
    cycle_end: datetime
    events: int
    cost_usd: Decimal
    refusals: list[str] = field(default_factory=list)


@dataclass
class RetentionReport:
    cutoff: datetime
    dry_run: bool
    purge: list[CycleDecision]
    refused: list[CycleDecision]
    rows_deleted: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        verb = "would purge" if self.dry_run else "purged"
        out = [f"retention cutoff {self.cutoff.isoformat()} ({'dry run' if self.dry_run else 'applied'})"]
        out += [f"  {verb} {c.client_id} cycle {c.cycle_start:%Y-%m-%d}..{c.cycle_end:%Y-%m-%d}: "
                f"{c.events} events, {c.cost_usd} USD" for c in self.purge]
        out += [f"  REFUSED {c.client_id} cycle {c.cycle_start:%Y-%m-%d}..{c.cycle_end:%Y-%m-%d}: "
                f"{', '.join(c.refusals)}" for c in self.refused]
        out += [f"  deleted {count} rows from {table}" for table, count in self.rows_deleted.items()]
        return out


def plan(connection, cutoff: datetime) -> tuple[list[CycleDecision], list[CycleDecision]]:
    with connection.cursor() as cursor:
        cursor.execute(CYCLE_CHECKS, {"cutoff": cutoff})
        decisions = []
        for cycle_id, client_id, start, end, events, cost, missing, not_closed, mismatch in cursor.fetchall():
            decision = CycleDecision(cycle_id, client_id, start, end, events, cost)
            decision.refusals += [reason for reason, failed in (("aggregate missing", missing),
                                                                 ("not closed", not_closed),
                                                                 ("does not reconcile", mismatch)) if failed]
            decisions.append(decision)
    return [d for d in decisions if not d.refusals], [d for d in decisions if d.refusals]


def _purge(connection, cycle: CycleDecision, cutoff: datetime, deleted: dict[str, int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("""create temp table purged_objects on commit drop as
                          select distinct provider || ':' || object_type as kind, external_id
                          from marts.fct_usage_events
                          where client_id = %s and occurred_at >= %s and occurred_at < %s""",
                       (cycle.client_id, cycle.cycle_start, cycle.cycle_end))
        for table, kind, key in RAW_TABLES:
            cursor.execute("select to_regclass(%s)", (table,))
            if cursor.fetchone()[0] is None:
                continue
            extra = " and resource = %(resource)s" if table.endswith("twilio_callbacks") else ""
            cursor.execute(f"delete from {table} where {key} in (select external_id from purged_objects "
                           f"where kind = %(kind)s){extra}", {"kind": kind, "resource": kind.split(":")[1]})
            deleted[table] = deleted.get(table, 0) + cursor.rowcount
        cursor.execute("""delete from marts.fct_usage_events
                          where client_id = %s and occurred_at >= %s and occurred_at < %s""",
                       (cycle.client_id, cycle.cycle_start, cycle.cycle_end))
        deleted["marts.fct_usage_events"] = deleted.get("marts.fct_usage_events", 0) + cursor.rowcount
        cursor.execute("""insert into ops.retention_purges (cycle_id, client_id, cycle_start, cycle_end, cutoff,
                                                            events_purged, cost_usd_purged)
                          values (%s, %s, %s, %s, %s, %s, %s)""",
                       (cycle.cycle_id, cycle.client_id, cycle.cycle_start, cycle.cycle_end, cutoff,
                        cycle.events, cycle.cost_usd))
    connection.commit()


def run_retention(warehouse: Warehouse, cutoff: datetime, dry_run: bool) -> RetentionReport:
    """Each approved cycle is purged in its own transaction; refused cycles are left untouched."""
    connection = warehouse.connect()
    try:
        purge, refused = plan(connection, cutoff)
        report = RetentionReport(cutoff, dry_run, purge, refused)
        if not dry_run:
            for cycle in purge:
                _purge(connection, cycle, cutoff, report.rows_deleted)
        return report
    finally:
        connection.close()


def default_cutoff(months: int = DEFAULT_MONTHS) -> datetime:
    return utc_now() - relativedelta(months=months)
