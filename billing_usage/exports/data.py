"""What the exports read, all in one read-only snapshot of the warehouse: the cycles to export, their
statement lines (reporting.rpt_cycle_statements), the adjustments billed into them, the per-agent usage the
FOCUS rows come from, and the marts' own totals the figures must reconcile with."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import psycopg2.extensions
import psycopg2.extras
from psycopg2 import errors

# a cycle that closed this recently is exported again by the scheduled runs, so its final statement is written
RECENTLY_CLOSED = timedelta(days=7)


class ExportError(RuntimeError):
    """The export cannot be made as asked (unknown cycle, warehouse not built, figures that do not reconcile)."""


@dataclass(frozen=True)
class Cycle:
    cycle_id: str
    client_id: str
    client_name: str | None
    cycle_start: datetime
    cycle_end: datetime
    billing_timezone: str | None
    local_start_date: date
    local_end_date: date | None


@dataclass
class CycleData:
    """Everything one cycle's exports need."""

    cycle: Cycle
    lines: list[dict]  # rpt_cycle_statements rows, by provider and metric
    adjustments: list[dict]  # fct_cycle_adjustments rows billed into the cycle, with the corrected cycle's bounds
    agent_usage: list[dict]  # fct_cycle_usage_by_agent rows of the cycle, with the agent's name
    marts_usage_cost: Decimal  # Σ fct_cycle_usage.cost_usd of the cycle
    marts_adjustment_cost: Decimal  # Σ fct_cycle_adjustments.delta_cost_usd billed into it


_CYCLES = """
    with cycles as (
        select cycle_id, client_id::text, cycle_start, cycle_end, billing_timezone::text, local_start_date,
               local_end_date
        from marts.dim_billing_cycles
        union
        -- cycles older than dim_billing_cycles keeps still have their frozen statement lines
        select distinct cycle_id, client_id::text, cycle_start, cycle_end, billing_timezone::text,
               coalesce(local_start_date, (cycle_start at time zone 'UTC')::date), local_end_date
        from reporting.rpt_cycle_statements as lines
        where not exists (select 1 from marts.dim_billing_cycles as known where known.cycle_id = lines.cycle_id)
    )
    select cycles.cycle_id, cycles.client_id, clients.client_name, cycles.cycle_start, cycles.cycle_end,
           cycles.billing_timezone, cycles.local_start_date, cycles.local_end_date
    from cycles
    left join marts.dim_clients as clients on clients.client_id = cycles.client_id and clients.is_current
"""


class ExportReader:
    """Reads from one REPEATABLE READ, read-only transaction, so every figure comes from the same state."""

    def __init__(self, connection):
        self.connection = connection
        connection.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        self.cursor = connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        try:
            self.cursor.execute("select 1 from reporting.rpt_cycle_statements limit 1")
        except errors.UndefinedTable:
            raise ExportError("reporting.rpt_cycle_statements does not exist: build the models first "
                              "(make demo, or the build_models job)") from None

    def _cycles(self, condition: str, params: tuple) -> list[Cycle]:
        self.cursor.execute(f"select * from ({_CYCLES}) as cycles where {condition} order by client_id, cycle_start",
                            params)
        return [Cycle(**row) for row in self.cursor.fetchall()]

    def cycles_starting_in_month(self, month: date, now: datetime) -> list[Cycle]:
        """Every client's cycle(s) whose local start date falls in `month`, if started by `now`."""
        following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
        return self._cycles("local_start_date >= %s and local_start_date < %s and cycle_start <= %s",
                            (month, following, now))

    def cycle(self, cycle_id: str) -> Cycle:
        cycles = self._cycles("cycle_id = %s", (cycle_id,))
        if not cycles:
            raise ExportError(f"no billing cycle has the id {cycle_id}")
        return cycles[0]

    def cycles_to_refresh(self, first_day: date, last_day: date, now: datetime,
                          also: tuple[str, ...] = ()) -> list[Cycle]:
        """For the scheduled exports of UTC days first_day..last_day: the started cycles that overlap them,
        every cycle not closed yet, those closed within RECENTLY_CLOSED (their final statement), and `also`."""
        start = datetime.combine(first_day, time.min, UTC)
        end = datetime.combine(last_day + timedelta(days=1), time.min, UTC)
        self.cursor.execute("""
            select cycle_id from reporting.rpt_cycle_statements
            group by cycle_id
            having bool_or(cycle_status <> 'closed') or max(closed_at) >= %s
        """, (now - RECENTLY_CLOSED,))
        unfinished = [row["cycle_id"] for row in self.cursor.fetchall()]
        return self._cycles("cycle_start <= %s and ((cycle_start < %s and cycle_end > %s) or cycle_id = any(%s))",
                            (now, end, start, [*unfinished, *also]))

    def read(self, cycles: list[Cycle]) -> list[CycleData]:
        ids = [cycle.cycle_id for cycle in cycles]
        lines, adjustments, agent_usage = defaultdict(list), defaultdict(list), defaultdict(list)
        self.cursor.execute("select * from reporting.rpt_cycle_statements where cycle_id = any(%s) "
                            "order by cycle_id, provider, metric", (ids,))
        for row in self.cursor.fetchall():
            lines[row["cycle_id"]].append(row)
        self.cursor.execute("""
            select adjustments.*, corrected.cycle_start as corrected_cycle_start,
                   corrected.cycle_end as corrected_cycle_end
            from marts.fct_cycle_adjustments as adjustments
            left join (select distinct cycle_id, cycle_start, cycle_end from marts.fct_cycle_usage) as corrected
                on corrected.cycle_id = adjustments.cycle_id
            where adjustments.bills_into_cycle_id = any(%s)
            order by adjustments.booked_at, adjustments.adjustment_id
        """, (ids,))
        for row in self.cursor.fetchall():
            adjustments[row["bills_into_cycle_id"]].append(row)
        self.cursor.execute("""
            select usage.*, agents.agent_name
            from marts.fct_cycle_usage_by_agent as usage
            left join marts.dim_agents as agents on agents.agent_id = usage.agent_id and agents.is_current
            where usage.cycle_id = any(%s)
            order by usage.cycle_id, usage.provider, usage.metric, usage.agent_id nulls first
        """, (ids,))
        for row in self.cursor.fetchall():
            agent_usage[row["cycle_id"]].append(row)
        self.cursor.execute("select cycle_id, coalesce(sum(cost_usd), 0) as cost from marts.fct_cycle_usage "
                            "where cycle_id = any(%s) group by cycle_id", (ids,))
        usage_cost = {row["cycle_id"]: row["cost"] for row in self.cursor.fetchall()}
        self.cursor.execute("select bills_into_cycle_id as cycle_id, coalesce(sum(delta_cost_usd), 0) as cost "
                            "from marts.fct_cycle_adjustments where bills_into_cycle_id = any(%s) "
                            "group by bills_into_cycle_id", (ids,))
        adjustment_cost = {row["cycle_id"]: row["cost"] for row in self.cursor.fetchall()}
        return [CycleData(cycle=cycle, lines=lines[cycle.cycle_id], adjustments=adjustments[cycle.cycle_id],
                          agent_usage=agent_usage[cycle.cycle_id],
                          marts_usage_cost=usage_cost.get(cycle.cycle_id, Decimal(0)),
                          marts_adjustment_cost=adjustment_cost.get(cycle.cycle_id, Decimal(0)))
                for cycle in cycles]
