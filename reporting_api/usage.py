"""GET /v1/usage: usage per window x group, summed from the daily rollup where whole UTC days fit in one
window and from the events elsewhere (hour windows, local days, the edges of months and cycles).

Both sources carry the same columns; a UTC day is read from exactly one of them, so every event counts once
and the windows add up to the events of [from, to) to the cent.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from reporting_api.windows import split_days, window_edges

GROUPS = ("client", "agent", "provider", "metric")  # canonical order of the group columns
GROUP_COLUMNS = {"client": "client_id", "agent": "agent_id", "provider": "provider", "metric": "metric"}
FIGURES = ("quantity", "cost_usd", "event_count", "pending_events", "expired_events")
TEXT_FIGURES = ("quantity", "cost_usd")


@dataclass(frozen=True)
class UsageQuery:
    start: datetime
    end: datetime
    window_size: str | None     # hour | day | month | cycle | None (one window: the whole range)
    zone: ZoneInfo
    groups: tuple[str, ...]     # canonical order; "client" always present with cycle windows
    client_id: str | None       # a filter (always the token's client for a client token)
    after: tuple | None = None  # keyset position: (window_start, *group values)
    limit: int | None = None    # None: every row (CSV)

    @property
    def key_columns(self) -> list[str]:
        """Group columns of the rows, in order (cycle windows add cycle_id beside the client)."""
        columns = [GROUP_COLUMNS[group] for group in self.groups]
        return ["cycle_id", *columns] if self.window_size == "cycle" else columns

    @property
    def columns(self) -> list[str]:
        """Every column of a row, in order: the CSV header and the JSON keys."""
        unit = ["unit"] if "metric" in self.groups else []
        quantity = ["quantity"] if "metric" in self.groups else []  # units differ across metrics
        return ["window_start", "window_end", *self.key_columns, *unit, *quantity, "cost_usd", "event_count",
                "pending_events", "expired_events"]


def _dimensions(query: UsageQuery, alias: str) -> str:
    """Group columns as selected from a source; a missing agent is '' so it sorts and compares."""
    columns = []
    for group in query.groups:
        column = GROUP_COLUMNS[group]
        columns.append(f"coalesce({alias}.{column}, '') as {column}" if group == "agent" else f"{alias}.{column}")
    if "metric" in query.groups:
        columns.append(f"{alias}.unit")
    return "".join(f"{column}, " for column in columns)


def _group_list(query: UsageQuery) -> str:
    columns = [GROUP_COLUMNS[group] for group in query.groups] + (["unit"] if "metric" in query.groups else [])
    return "".join(f", {column}" for column in columns)


_AGGREGATES = """
        sum(quantity) as quantity,
        coalesce(sum(cost_usd), 0) as cost_usd,
        sum(event_count)::bigint as event_count,
        sum(pending_events)::bigint as pending_events,
        sum(expired_events)::bigint as expired_events"""

_EVENT_FIGURES = """quantity, cost_usd, 1 as event_count, (cost_status = 'pending')::int as pending_events,
               (cost_status = 'expired')::int as expired_events"""
_DAILY_FIGURES = "quantity, cost_usd, event_count, pending_events, expired_events"


def _calendar_sql(query: UsageQuery, parameters: dict) -> str:
    edges = window_edges(query.start, query.end, query.window_size, query.zone)
    whole_days, partial_days = split_days(edges)
    # the window of each whole day, found here once rather than per row
    whole_windows = [bisect_right(edges, datetime.combine(day, time(0), tzinfo=UTC)) for day in whole_days]
    parameters.update(edges=edges, whole_days=whole_days, whole_windows=whole_windows, partial_days=partial_days)
    client = "and {alias}.client_id = %(client_id)s" if query.client_id is not None else ""
    return f"""
    with parts as (
        select whole.window_index, {_dimensions(query, 'daily')}{_DAILY_FIGURES}
        from marts.fct_daily_usage as daily
        inner join unnest(%(whole_days)s::date[], %(whole_windows)s::int[]) as whole (usage_date, window_index)
            on whole.usage_date = daily.usage_date
        where true {client.format(alias='daily')}
        union all
        select width_bucket(events.occurred_at, %(edges)s::timestamptz[]) as window_index,
               {_dimensions(query, 'events')}{_EVENT_FIGURES}
        from marts.fct_usage_events as events
        where events.usage_date = any(%(partial_days)s::date[])
          and events.occurred_at >= %(start)s and events.occurred_at < %(end)s {client.format(alias='events')}
    )
    select (%(edges)s::timestamptz[])[window_index] as window_start,
           (%(edges)s::timestamptz[])[window_index + 1] as window_end{_group_list(query)},{_AGGREGATES}
    from parts
    group by window_index{_group_list(query)}"""


def _cycle_sql(query: UsageQuery, parameters: dict) -> str:
    """Each client's billing cycles (dim_billing_cycles) that overlap [from, to), clipped to it."""
    client = "and client_id = %(client_id)s" if query.client_id is not None else ""
    return f"""
    with windows as (
        select cycle_id, client_id, window_start, window_end,
               (window_start at time zone 'UTC')::date as first_day,
               ((window_end - interval '1 microsecond') at time zone 'UTC')::date as last_day,
               ((window_start - interval '1 microsecond') at time zone 'UTC')::date + 1 as whole_from,
               (window_end at time zone 'UTC')::date as whole_to
        from (
            select cycle_id, client_id, greatest(cycle_start, %(start)s) as window_start,
                   least(cycle_end, %(end)s) as window_end
            from marts.dim_billing_cycles
            where cycle_start < %(end)s and cycle_end > %(start)s {client}
              {"and greatest(cycle_start, %(start)s) >= %(after_0)s" if query.after is not None else ""}
        ) as clipped
    ),
    parts as (
        select windows.window_start, windows.window_end, windows.cycle_id,
               {_dimensions(query, 'daily')}{_DAILY_FIGURES}
        from windows
        inner join marts.fct_daily_usage as daily
            on daily.client_id = windows.client_id
            and daily.usage_date >= windows.whole_from and daily.usage_date < windows.whole_to
        union all
        select windows.window_start, windows.window_end, windows.cycle_id,
               {_dimensions(query, 'events')}{_EVENT_FIGURES}
        from windows
        inner join marts.fct_usage_events as events
            on events.client_id = windows.client_id
            and events.usage_date in (windows.first_day, windows.last_day)
            and not (events.usage_date >= windows.whole_from and events.usage_date < windows.whole_to)
            and events.occurred_at >= windows.window_start and events.occurred_at < windows.window_end
    )
    select window_start, window_end, cycle_id{_group_list(query)},{_AGGREGATES}
    from parts
    group by window_start, window_end, cycle_id{_group_list(query)}"""


def usage_sql(query: UsageQuery, text_figures: bool = False) -> tuple[str, dict]:
    """The rows of `query` (query.columns) in keyset order (window_start, then the group columns), after
    `query.after`. text_figures: quantities and costs as PostgreSQL writes numerics (plain notation, their own
    scale: the text the JSON carries), for CSV."""
    parameters: dict = {"start": query.start, "end": query.end, "client_id": query.client_id}
    if query.after is not None and query.window_size != "cycle":
        # windows before the position are past: start there (it is a window edge, so edges stay the same)
        query = replace(query, start=max(query.start, query.after[0]))
        parameters["start"] = query.start
    rows = _cycle_sql(query, parameters) if query.window_size == "cycle" else _calendar_sql(query, parameters)
    # byte order ("C"): fast, and the same on every server, for the sort and the keyset comparison alike
    key = ["window_start", *(f'{column} collate "C"' for column in query.key_columns)]
    where = ""
    if query.after is not None:
        parameters.update({f"after_{n}": value for n, value in enumerate(query.after)})
        where = f"where ({', '.join(key)}) > ({', '.join(f'%(after_{n})s' for n in range(len(key)))})"
    limit = "limit %(limit)s" if query.limit is not None else ""
    parameters["limit"] = query.limit
    columns = [f"{column}::text" if text_figures and column in TEXT_FIGURES else column for column in query.columns]
    return (f"select {', '.join(columns)} from ({rows}\n) as usage_rows {where} order by {', '.join(key)} "
            f"{limit}", parameters)
