"""Retention: delete what the dbt models ops.retention_cycles and ops.retention_raw_rows name.

dbt decides (a tested model): which cycles ended more than var('retention_months') before the last
build's as_of, and which of them may go (closed, aggregates plus adjustments equal to their events).
Here each cycle that may go is purged in one transaction: its raw rows, its canonical events, and a
row in ops.retention_purges. Cycle aggregates and adjustments are kept forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from billing_usage.registry import raw_tables
from billing_usage.warehouse import Warehouse

ROW_ID_COLUMNS = ("_dlt_id", "delivery_id")


@dataclass
class CycleDecision:
    cycle_id: str
    client_id: str
    cycle_start: datetime
    cycle_end: datetime
    cutoff: datetime
    events: int
    cost_usd: Decimal
    refusals: list[str] = field(default_factory=list)


@dataclass
class RetentionReport:
    dry_run: bool
    purge: list[CycleDecision]
    refused: list[CycleDecision]
    rows_deleted: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        verb = "would purge" if self.dry_run else "purged"
        cutoff = (self.purge + self.refused)[0].cutoff.isoformat() if self.purge or self.refused else "n/a"
        out = [f"retention cutoff {cutoff} ({'dry run' if self.dry_run else 'applied'})"]
        out += [f"  {verb} {c.client_id} cycle {c.cycle_start:%Y-%m-%d}..{c.cycle_end:%Y-%m-%d}: "
                f"{c.events} events, {c.cost_usd} USD" for c in self.purge]
        out += [f"  REFUSED {c.client_id} cycle {c.cycle_start:%Y-%m-%d}..{c.cycle_end:%Y-%m-%d}: "
                f"{', '.join(c.refusals)}" for c in self.refused]
        out += [f"  deleted {count} rows from {table}" for table, count in self.rows_deleted.items()]
        return out


def plan(connection) -> tuple[list[CycleDecision], list[CycleDecision]]:
    """The cycles the model says may go, and those it refuses, leaving out those purged since it was built."""
    with connection.cursor() as cursor:
        cursor.execute("""
            select cycle_id, client_id, cycle_start, cycle_end, cutoff, events, cost_usd, refused_because
            from ops.retention_cycles
            where cycle_id not in (select cycle_id from ops.retention_purges)
            order by cycle_start, client_id""")
        decisions = [CycleDecision(*row[:7], refusals=row[7].split(", ") if row[7] else [])
                     for row in cursor.fetchall()]
    return [d for d in decisions if not d.refusals], [d for d in decisions if d.refusals]


def _purge(connection, cycle: CycleDecision, deleted: dict[str, int]) -> None:
    known = {table.relation for table in raw_tables()}
    with connection.cursor() as cursor:
        cursor.execute("""select raw_table, row_id_column, array_agg(row_id) from ops.retention_raw_rows
                          where cycle_id = %s group by raw_table, row_id_column""", (cycle.cycle_id,))
        for raw_table, id_column, row_ids in cursor.fetchall():
            if raw_table not in known or id_column not in ROW_ID_COLUMNS:
                raise ValueError(f"retention_raw_rows names {raw_table}.{id_column}, which is not a registry table")
            schema, table = raw_table.split(".")
            cursor.execute(f'delete from {schema}."{table}" where "{id_column}"::text = any(%s)', (row_ids,))
            deleted[raw_table] = deleted.get(raw_table, 0) + cursor.rowcount
        cursor.execute("""delete from marts.fct_usage_events
                          where client_id = %s and occurred_at >= %s and occurred_at < %s""",
                       (cycle.client_id, cycle.cycle_start, cycle.cycle_end))
        deleted["marts.fct_usage_events"] = deleted.get("marts.fct_usage_events", 0) + cursor.rowcount
        cursor.execute("""insert into ops.retention_purges (cycle_id, client_id, cycle_start, cycle_end, cutoff,
                                                            events_purged, cost_usd_purged)
                          values (%s, %s, %s, %s, %s, %s, %s)""",
                       (cycle.cycle_id, cycle.client_id, cycle.cycle_start, cycle.cycle_end, cycle.cutoff,
                        cycle.events, cycle.cost_usd))
    connection.commit()


def run_retention(warehouse: Warehouse, dry_run: bool) -> RetentionReport:
    """Each approved cycle is purged in its own transaction; refused cycles are left untouched."""
    connection = warehouse.connect()
    try:
        purge, refused = plan(connection)
        report = RetentionReport(dry_run, purge, refused)
        if not dry_run:
            for cycle in purge:
                _purge(connection, cycle, report.rows_deleted)
        return report
    finally:
        connection.close()
