"""A client's billing cycles and the statement of one cycle: its lines (provider x metric), the adjustments
that bill into it, pending counts, status and coverage."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import yaml

from billing_usage.settings import PROJECT_ROOT
from reporting_api.problems import invalid
from reporting_api.render import plain, plain_row

STATUS_RANK = {"open": 0, "settling": 1, "closed": 2}
COVERAGE_RANK = {"ok": 0, "not_yet_comparable": 1, "warn": 2, "error": 3}
CYCLE_COLUMNS = ("cycle_id", "client_id", "cycle_start", "cycle_end", "local_start_date", "local_end_date",
                 "billing_timezone", "status", "status_reason", "usage_cost_usd", "adjustments_cost_usd",
                 "event_count", "pending_events", "expired_events")
LINE_COLUMNS = ("provider", "metric", "unit", "quantity", "cost_usd", "event_count", "pending_events",
                "expired_events", "status", "status_reason")
ADJUSTMENT_COLUMNS = ("adjustment_id", "adjusted_cycle_id", "provider", "metric", "delta_quantity",
                      "delta_cost_usd", "reason", "event_count", "booked_at")
COVERAGE_COLUMNS = ("provider", "account", "usage_date", "category", "measure", "ours", "theirs", "ratio",
                    "status", "reason")


def grace_hours() -> int:
    """The longest settling grace (dbt var settling_grace_hours): a cycle without usage rows settles that long."""
    config = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text())
    return max(config["vars"]["settling_grace_hours"].values(), default=72)


_CYCLES = """
    with cycles as (
        select cycle_id, client_id, cycle_start, cycle_end, local_start_date, local_end_date, billing_timezone
        from marts.dim_billing_cycles
        where client_id = %(client_id)s and cycle_start < %(as_of)s {where}
    ),
    usage as (
        select cycle_id,
               case when bool_or(cycle_status = 'open') then 'open'
                    when bool_or(cycle_status = 'settling') then 'settling' else 'closed' end as status,
               string_agg(distinct provider || ': ' || status_reason, '; ' order by provider || ': ' || status_reason)
                   as status_reason,
               coalesce(sum(cost_usd), 0) as cost_usd,
               sum(event_count)::bigint as event_count,
               sum(pending_events)::bigint as pending_events,
               sum(expired_events)::bigint as expired_events
        from marts.fct_cycle_usage
        where client_id = %(client_id)s
        group by cycle_id
    ),
    adjustments as (
        select bills_into_cycle_id as cycle_id, sum(delta_cost_usd) as cost_usd
        from marts.fct_cycle_adjustments
        where client_id = %(client_id)s
        group by bills_into_cycle_id
    )
    select cycles.cycle_id, cycles.client_id, cycles.cycle_start, cycles.cycle_end, cycles.local_start_date,
           cycles.local_end_date, cycles.billing_timezone,
           coalesce(usage.status, case when %(as_of)s < cycles.cycle_end then 'open'
                                       when %(as_of)s < cycles.cycle_end + %(grace)s then 'settling'
                                       else 'closed' end) as status,
           case when usage.status is not null then usage.status_reason
                when %(as_of)s < cycles.cycle_end then 'the cycle has not ended'
                when %(as_of)s < cycles.cycle_end + %(grace)s then 'grace period for late prices'
           end as status_reason,
           coalesce(usage.cost_usd, 0) as usage_cost_usd,
           coalesce(adjustments.cost_usd, 0) as adjustments_cost_usd,
           coalesce(usage.event_count, 0) as event_count,
           coalesce(usage.pending_events, 0) as pending_events,
           coalesce(usage.expired_events, 0) as expired_events
    from cycles
    left join usage on usage.cycle_id = cycles.cycle_id
    left join adjustments on adjustments.cycle_id = cycles.cycle_id
    order by cycles.cycle_start desc, cycles.cycle_id desc
    {limit}"""


def cycles(cursor, client_id: str, now: datetime, after: str | None, limit: int | None) -> list[dict]:
    """The client's started cycles, newest first, after the cycle `after` (its id)."""
    parameters = {"client_id": client_id, "as_of": now, "grace": timedelta(hours=grace_hours()),
                  "after": after, "limit": limit}
    where = ""
    if after is not None:
        cursor.execute("select 1 from marts.dim_billing_cycles where cycle_id = %s and client_id = %s",
                       (after, client_id))
        if cursor.fetchone() is None:
            raise invalid("starting_after", "not a cycle of this client")
        where = """and (cycle_start, cycle_id) < (select cycle_start, cycle_id from marts.dim_billing_cycles
                                                  where cycle_id = %(after)s)"""
    cursor.execute(_CYCLES.format(where=where, limit="limit %(limit)s" if limit else ""), parameters)
    return [dict(zip(CYCLE_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def cycle(cursor, client_id: str, cycle_id: str, now: datetime) -> dict | None:
    parameters = {"client_id": client_id, "as_of": now, "grace": timedelta(hours=grace_hours()),
                  "cycle_id": cycle_id}
    cursor.execute(_CYCLES.format(where="and cycle_id = %(cycle_id)s", limit=""), parameters)
    row = cursor.fetchone()
    return dict(zip(CYCLE_COLUMNS, row, strict=True)) if row else None


def lines(cursor, cycle_id: str) -> list[dict]:
    cursor.execute(f"""
        select {', '.join(LINE_COLUMNS[:-2])}, cycle_status, status_reason
        from marts.fct_cycle_usage where cycle_id = %s order by provider, metric""", (cycle_id,))
    return [dict(zip(LINE_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def adjustments(cursor, cycle_id: str) -> list[dict]:
    """The corrections of closed cycles that bill into this one."""
    cursor.execute("""
        select adjustment_id, cycle_id, provider, metric, delta_quantity, delta_cost_usd, reason,
               cardinality(usage_event_ids), booked_at
        from marts.fct_cycle_adjustments where bills_into_cycle_id = %s
        order by booked_at, adjustment_id""", (cycle_id,))
    return [dict(zip(ADJUSTMENT_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def coverage(cursor, client_id: str, cycle_start: datetime, cycle_end: datetime) -> dict:
    """The coverage checks of the cycle's UTC days for this client (marts.fct_coverage_daily): the worst status
    and the rows that are not ok. 'unavailable' while that model has not been built."""
    cursor.execute("select to_regclass('marts.fct_coverage_daily') is not null")
    if not cursor.fetchone()[0]:
        return {"status": "unavailable", "checked_days": 0, "findings": []}
    cursor.execute(f"""
        select {', '.join(COVERAGE_COLUMNS)} from marts.fct_coverage_daily
        where client_id = %s
          and usage_date >= (%s::timestamptz at time zone 'UTC')::date
          and usage_date <= ((%s::timestamptz - interval '1 microsecond') at time zone 'UTC')::date
        order by usage_date, provider, account, category, measure""", (client_id, cycle_start, cycle_end))
    rows = [dict(zip(COVERAGE_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    worst = max((row["status"] for row in rows), key=lambda status: COVERAGE_RANK.get(status, 3), default=None)
    return {"status": worst or "not_yet_comparable", "checked_days": len({row["usage_date"] for row in rows}),
            "findings": [row for row in rows if row["status"] != "ok"]}


def totals(cycle_lines: list[dict], cycle_adjustments: list[dict]) -> dict:
    usage = sum((line["cost_usd"] or Decimal(0) for line in cycle_lines), Decimal(0))
    adjusted = sum((item["delta_cost_usd"] or Decimal(0) for item in cycle_adjustments), Decimal(0))
    return {"usage_cost_usd": usage, "adjustments_cost_usd": adjusted, "total_cost_usd": usage + adjusted,
            "event_count": sum(line["event_count"] for line in cycle_lines),
            "pending_events": sum(line["pending_events"] for line in cycle_lines),
            "expired_events": sum(line["expired_events"] for line in cycle_lines)}


def cycle_json(row: dict) -> dict:
    return {"id": row["cycle_id"], "client_id": row["client_id"], "start": plain(row["cycle_start"]),
            "end": plain(row["cycle_end"]), "local_start_date": plain(row["local_start_date"]),
            "local_end_date": plain(row["local_end_date"]), "billing_timezone": row["billing_timezone"],
            "status": row["status"], "status_reason": row["status_reason"],
            "usage_cost_usd": plain(row["usage_cost_usd"]), "adjustments_cost_usd": plain(row["adjustments_cost_usd"]),
            "total_cost_usd": plain(row["usage_cost_usd"] + row["adjustments_cost_usd"]),
            "event_count": row["event_count"], "pending_events": row["pending_events"],
            "expired_events": row["expired_events"]}


def statement(cursor, client: dict, cycle_row: dict) -> dict:
    """Everything a statement holds, as Python values."""
    cycle_lines = lines(cursor, cycle_row["cycle_id"])
    cycle_adjustments = adjustments(cursor, cycle_row["cycle_id"])
    return {"client": client, "cycle": cycle_row, "lines": cycle_lines, "adjustments": cycle_adjustments,
            "totals": totals(cycle_lines, cycle_adjustments),
            "coverage": coverage(cursor, client["client_id"], cycle_row["cycle_start"], cycle_row["cycle_end"])}


def as_json(document: dict) -> dict:
    client = document["client"]
    return {
        "object": "statement",
        "client": {"id": client["client_id"], "name": client["client_name"],
                   "billing_timezone": client["billing_timezone"],
                   "billing_anchor_day": client["billing_anchor_day"], "currency": client["currency"]},
        "cycle": cycle_json(document["cycle"]),
        "status": document["cycle"]["status"],
        "currency": "USD",
        "lines": [plain_row(LINE_COLUMNS, line) for line in document["lines"]],
        "adjustments": [plain_row(ADJUSTMENT_COLUMNS, item) for item in document["adjustments"]],
        "totals": plain_row(document["totals"], document["totals"]),
        "coverage": {**document["coverage"],
                     "findings": [plain_row(COVERAGE_COLUMNS, row) for row in document["coverage"]["findings"]]},
        "data_refreshed_at": plain(document["data_refreshed_at"]),
    }


CSV_COLUMNS = ["line_type", "cycle_id", "client_id", "cycle_start", "cycle_end", "cycle_status", "provider",
               "metric", "unit", "quantity", "cost_usd", "event_count", "pending_events", "expired_events",
               "status", "adjustment_id", "adjusted_cycle_id", "reason", "booked_at", "coverage_status",
               "data_refreshed_at"]


def csv_rows(document: dict) -> list[dict]:
    """usage lines, then adjustment lines, then one total line; the cycle's columns on every row."""
    cycle_row = document["cycle"]
    common = {"cycle_id": cycle_row["cycle_id"], "client_id": cycle_row["client_id"],
              "cycle_start": cycle_row["cycle_start"], "cycle_end": cycle_row["cycle_end"],
              "cycle_status": cycle_row["status"], "coverage_status": document["coverage"]["status"],
              "data_refreshed_at": document["data_refreshed_at"]}
    empty = dict.fromkeys(CSV_COLUMNS)
    rows = [{**empty, **common, **line, "line_type": "usage"} for line in document["lines"]]
    rows += [{**empty, **common, "line_type": "adjustment", "provider": item["provider"], "metric": item["metric"],
              "quantity": item["delta_quantity"], "cost_usd": item["delta_cost_usd"],
              "event_count": item["event_count"], "adjustment_id": item["adjustment_id"],
              "adjusted_cycle_id": item["adjusted_cycle_id"], "reason": item["reason"],
              "booked_at": item["booked_at"]} for item in document["adjustments"]]
    figures = document["totals"]
    rows.append({**empty, **common, "line_type": "total", "cost_usd": figures["total_cost_usd"],
                 "event_count": figures["event_count"], "pending_events": figures["pending_events"],
                 "expired_events": figures["expired_events"]})
    return rows
