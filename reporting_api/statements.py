"""A client's billing cycles and the statement of one cycle, read from reporting.rpt_cycle_statements (one line
per cycle x provider x metric: usage, the adjustments billed into the cycle, pending counts, status and
coverage per provider), with the adjustments themselves (marts.fct_cycle_adjustments) and the coverage rows
that are not ok (marts.fct_coverage_daily).

A cycle is open while any provider's line is open, settling while any is settling, closed once all are. A
cycle without any line (no usage, no adjustment) takes its status from the clock, with the longest grace.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache

import yaml

from billing_usage.settings import PROJECT_ROOT
from reporting_api.problems import invalid
from reporting_api.render import cell, plain, plain_row

COVERAGE_RANK = {"not_measured": 0, "ok": 1, "not_yet_comparable": 2, "warn": 3, "error": 4}
CYCLE_COLUMNS = ("cycle_id", "client_id", "cycle_start", "cycle_end", "local_start_date", "local_end_date",
                 "billing_timezone", "status", "status_reason", "usage_cost_usd", "adjustments_cost_usd",
                 "total_cost_usd", "event_count", "pending_events", "expired_events", "coverage_status",
                 "data_refreshed_at")
LINE_COLUMNS = ("provider", "metric", "unit", "quantity", "cost_usd", "event_count", "pending_events",
                "expired_events", "adjustment_count", "adjustment_quantity", "adjustment_cost_usd", "total_cost_usd",
                "status", "status_reason", "closed_at", "coverage_status", "coverage_reason")
ADJUSTMENT_COLUMNS = ("adjustment_id", "adjusted_cycle_id", "provider", "metric", "delta_quantity",
                      "delta_cost_usd", "reason", "event_count", "booked_at")
COVERAGE_COLUMNS = ("provider", "account", "client_id", "usage_date", "category", "measure", "ours", "theirs",
                    "ratio", "status", "reason")
SHARED_FIGURES = ("ours", "theirs", "ratio")  # an account several clients share: its figures are not one client's


@cache
def grace_hours() -> int:
    """The longest settling grace (dbt var settling_grace_hours), for cycles without any line."""
    config = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text())
    return max(config["vars"]["settling_grace_hours"].values(), default=72)


_CYCLES = """
    with cycles as (
        select cycle_id, client_id, cycle_start, cycle_end, local_start_date, local_end_date, billing_timezone
        from marts.dim_billing_cycles
        where client_id = %(client_id)s and cycle_start < %(now)s {where}
    ),
    lines as (
        select cycle_id,
               case when bool_or(cycle_status = 'open') then 'open'
                    when bool_or(cycle_status = 'settling') then 'settling' else 'closed' end as status,
               string_agg(distinct provider || ': ' || status_reason, '; ') as status_reason,
               sum(cost_usd) as usage_cost_usd,
               sum(adjustment_cost_usd) as adjustments_cost_usd,
               sum(total_cost_usd) as total_cost_usd,
               sum(event_count)::bigint as event_count,
               sum(pending_events)::bigint as pending_events,
               sum(expired_events)::bigint as expired_events,
               (array_agg(coverage_status order by case coverage_status when 'error' then 4 when 'warn' then 3
                   when 'not_yet_comparable' then 2 when 'ok' then 1 else 0 end desc))[1] as coverage_status,
               min(data_refreshed_at) as data_refreshed_at
        from reporting.rpt_cycle_statements
        where client_id = %(client_id)s
        group by cycle_id
    )
    select cycles.cycle_id, cycles.client_id, cycles.cycle_start, cycles.cycle_end, cycles.local_start_date,
           cycles.local_end_date, cycles.billing_timezone,
           coalesce(lines.status, case when %(now)s < cycles.cycle_end then 'open'
                                       when %(now)s < cycles.cycle_end + %(grace)s then 'settling'
                                       else 'closed' end) as status,
           case when lines.status is not null then lines.status_reason
                when %(now)s < cycles.cycle_end then 'the cycle has not ended'
                when %(now)s < cycles.cycle_end + %(grace)s then 'grace period for late prices'
           end as status_reason,
           coalesce(lines.usage_cost_usd, 0) as usage_cost_usd,
           coalesce(lines.adjustments_cost_usd, 0) as adjustments_cost_usd,
           coalesce(lines.total_cost_usd, 0) as total_cost_usd,
           coalesce(lines.event_count, 0) as event_count,
           coalesce(lines.pending_events, 0) as pending_events,
           coalesce(lines.expired_events, 0) as expired_events,
           coalesce(lines.coverage_status, 'not_measured') as coverage_status,
           lines.data_refreshed_at
    from cycles
    left join lines on lines.cycle_id = cycles.cycle_id
    order by cycles.cycle_start desc, cycles.cycle_id desc
    {limit}"""


def _parameters(client_id: str, now: datetime, **extra) -> dict:
    return {"client_id": client_id, "now": now, "grace": timedelta(hours=grace_hours()), **extra}


def cycles(cursor, client_id: str, now: datetime, after: str | None, limit: int) -> list[dict]:
    """The client's started cycles, newest first, after the cycle `after` (its id)."""
    where = ""
    if after is not None:
        cursor.execute("select 1 from marts.dim_billing_cycles where cycle_id = %s and client_id = %s",
                       (after, client_id))
        if cursor.fetchone() is None:
            raise invalid("starting_after", "not a cycle of this client")
        where = """and (cycle_start, cycle_id) < (select cycle_start, cycle_id from marts.dim_billing_cycles
                                                  where cycle_id = %(after)s)"""
    cursor.execute(_CYCLES.format(where=where, limit="limit %(limit)s"),
                   _parameters(client_id, now, after=after, limit=limit))
    return [dict(zip(CYCLE_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def cycle(cursor, client_id: str, cycle_id: str, now: datetime) -> dict | None:
    cursor.execute(_CYCLES.format(where="and cycle_id = %(cycle_id)s", limit=""),
                   _parameters(client_id, now, cycle_id=cycle_id))
    row = cursor.fetchone()
    return dict(zip(CYCLE_COLUMNS, row, strict=True)) if row else None


def lines(cursor, cycle_id: str) -> list[dict]:
    cursor.execute(f"""
        select {', '.join(LINE_COLUMNS[:-5])}, cycle_status, status_reason, closed_at, coverage_status,
               coverage_reason
        from reporting.rpt_cycle_statements where cycle_id = %s order by provider, metric""", (cycle_id,))
    return [dict(zip(LINE_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def adjustments(cursor, cycle_id: str) -> list[dict]:
    """The corrections of closed cycles that bill into this one."""
    cursor.execute("""
        select adjustment_id, cycle_id, provider, metric, delta_quantity, delta_cost_usd, reason,
               cardinality(usage_event_ids), booked_at
        from marts.fct_cycle_adjustments where bills_into_cycle_id = %s
        order by booked_at, adjustment_id""", (cycle_id,))
    return [dict(zip(ADJUSTMENT_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def coverage_findings(cursor, client_id: str, cycle_start: datetime, cycle_end: datetime,
                      agency: bool) -> list[dict]:
    """The coverage rows that are not ok over the cycle's UTC days: the client's own, and those of accounts
    several clients share (client_id null), whose figures only an agency token sees."""
    cursor.execute(f"""
        select {', '.join(COVERAGE_COLUMNS)} from marts.fct_coverage_daily
        where (client_id = %(client_id)s or client_id is null) and status <> 'ok'
          and usage_date >= (%(start)s::timestamptz at time zone 'UTC')::date
          and usage_date <= ((%(end)s::timestamptz - interval '1 microsecond') at time zone 'UTC')::date
        order by usage_date, provider, account, category, measure""",
                   {"client_id": client_id, "start": cycle_start, "end": cycle_end})
    rows = [dict(zip(COVERAGE_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    if not agency:
        rows = [{**row, **dict.fromkeys(SHARED_FIGURES)} if row["client_id"] is None else row for row in rows]
    return rows


def statement(cursor, client: dict, cycle_row: dict, agency: bool) -> dict:
    """Everything a statement holds, as Python values."""
    cycle_lines = lines(cursor, cycle_row["cycle_id"])
    return {"client": client, "cycle": cycle_row, "lines": cycle_lines,
            "adjustments": adjustments(cursor, cycle_row["cycle_id"]),
            "findings": coverage_findings(cursor, client["client_id"], cycle_row["cycle_start"],
                                          cycle_row["cycle_end"], agency)}


def cycle_json(row: dict) -> dict:
    return {"id": row["cycle_id"], "client_id": row["client_id"], "start": plain(row["cycle_start"]),
            "end": plain(row["cycle_end"]), "local_start_date": plain(row["local_start_date"]),
            "local_end_date": plain(row["local_end_date"]), "billing_timezone": row["billing_timezone"],
            **plain_row(CYCLE_COLUMNS[7:-1], row)}


def totals(document: dict) -> dict:
    cycle_lines = document["lines"]
    return {"usage_cost_usd": sum((line["cost_usd"] for line in cycle_lines), Decimal(0)),
            "adjustments_cost_usd": sum((line["adjustment_cost_usd"] for line in cycle_lines), Decimal(0)),
            "total_cost_usd": sum((line["total_cost_usd"] for line in cycle_lines), Decimal(0)),
            "event_count": sum(line["event_count"] for line in cycle_lines),
            "pending_events": sum(line["pending_events"] for line in cycle_lines),
            "expired_events": sum(line["expired_events"] for line in cycle_lines)}


def as_json(document: dict, refreshed: datetime | None) -> dict:
    client, cycle_row = document["client"], document["cycle"]
    return {
        "object": "statement",
        "id": cycle_row["cycle_id"],
        "client": {"id": client["client_id"], "name": client["client_name"],
                   "billing_timezone": client["billing_timezone"],
                   "billing_anchor_day": client["billing_anchor_day"], "currency": client["currency"]},
        "cycle": cycle_json(cycle_row),
        "status": cycle_row["status"],
        "status_reason": cycle_row["status_reason"],
        "currency": "USD",
        "lines": [plain_row(LINE_COLUMNS, line) for line in document["lines"]],
        "adjustments": [plain_row(ADJUSTMENT_COLUMNS, item) for item in document["adjustments"]],
        "totals": {name: plain(value) for name, value in totals(document).items()},
        "coverage": {"status": cycle_row["coverage_status"],
                     "findings": [plain_row(COVERAGE_COLUMNS, row) for row in document["findings"]]},
        "data_refreshed_at": plain(refreshed),
    }


CSV_COLUMNS = ["line_type", "cycle_id", "client_id", "cycle_start", "cycle_end", "cycle_status", "provider",
               "metric", "unit", "quantity", "cost_usd", "event_count", "pending_events", "expired_events",
               "adjustment_count", "adjustment_quantity", "adjustment_cost_usd", "total_cost_usd", "status",
               "coverage_status", "adjustment_id", "adjusted_cycle_id", "reason", "booked_at", "data_refreshed_at"]


def csv_rows(document: dict, refreshed: datetime | None) -> list[list[str]]:
    """One row per line (line_type usage), per adjustment (line_type adjustment, the detail of the lines'
    adjustment figures) and a total; the cycle's columns on every row."""
    cycle_row = document["cycle"]
    common = {"cycle_id": cycle_row["cycle_id"], "client_id": cycle_row["client_id"],
              "cycle_start": cycle_row["cycle_start"], "cycle_end": cycle_row["cycle_end"],
              "cycle_status": cycle_row["status"], "data_refreshed_at": refreshed}
    empty = dict.fromkeys(CSV_COLUMNS)
    rows = [{**empty, **common, **line, "line_type": "usage"} for line in document["lines"]]
    rows += [{**empty, **common, "line_type": "adjustment", "provider": item["provider"], "metric": item["metric"],
              "adjustment_quantity": item["delta_quantity"], "adjustment_cost_usd": item["delta_cost_usd"],
              "event_count": item["event_count"], "adjustment_id": item["adjustment_id"],
              "adjusted_cycle_id": item["adjusted_cycle_id"], "reason": item["reason"],
              "booked_at": item["booked_at"]} for item in document["adjustments"]]
    figures = totals(document)
    rows.append({**empty, **common, "line_type": "total", "cost_usd": figures["usage_cost_usd"],
                 "adjustment_cost_usd": figures["adjustments_cost_usd"], "total_cost_usd": figures["total_cost_usd"],
                 "event_count": figures["event_count"], "pending_events": figures["pending_events"],
                 "expired_events": figures["expired_events"], "coverage_status": cycle_row["coverage_status"]})
    return [[cell(row[column]) for column in CSV_COLUMNS] for row in rows]
