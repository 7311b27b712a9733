"""GET /v1/usage: usage per window x group.

Windows are computed first (calendar windows in the requested zone, or each client's billing cycles), then
split into ranges each source serves (reporting_api/windows.py): whole UTC days from marts.fct_daily_usage
(marts.fct_daily_client_usage without agents), whole UTC hours from marts.fct_hourly_usage (without agents
only: it has none), the rest from marts.fct_usage_events. Every instant of a window is read from exactly one
source, so the windows add up to the events of [from, to) to the cent.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from reporting_api.windows import Window, segments, window_edges

GROUPS = ("client", "agent", "provider", "metric")  # canonical order of the group columns
GROUP_COLUMNS = {"client": "client_id", "agent": "agent_id", "provider": "provider", "metric": "metric"}
WINDOW_COLUMNS = ("window_start", "window_end", "cycle_id")


@dataclass(frozen=True)
class UsageQuery:
    start: datetime
    end: datetime
    window_size: str | None     # hour | day | month | cycle | None (one window: the whole range)
    zone: ZoneInfo
    groups: tuple[str, ...]     # canonical order; "client" always present with cycle windows
    client_id: str | None       # a filter (always the token's client for a client token)
    after: tuple | None = None  # keyset position: (window_start, *key column values)
    limit: int | None = None    # None: every row (CSV)

    @property
    def key_columns(self) -> list[str]:
        """Group columns of the rows, in order (cycle windows add cycle_id before the client)."""
        columns = [GROUP_COLUMNS[group] for group in self.groups]
        return ["cycle_id", *columns] if self.window_size == "cycle" else columns

    @property
    def columns(self) -> list[str]:
        """Every column of a row, in order: the CSV header and the JSON keys."""
        unit = ["unit"] if "metric" in self.groups else []
        quantity = ["quantity"] if "metric" in self.groups else []  # units differ across metrics
        return ["window_start", "window_end", *self.key_columns, *unit, *quantity, "cost_usd", "event_count",
                "pending_events", "expired_events"]

    @property
    def sql_columns(self) -> list[str]:
        """The columns the SQL reads; the window's bounds and cycle come from its number."""
        return [column for column in self.columns if column not in WINDOW_COLUMNS]


def windows(cursor, query: UsageQuery) -> list[Window]:
    """The query's windows in keyset order: by start (and cycle id)."""
    if query.window_size != "cycle":
        edges = window_edges(query.start, query.end, query.window_size, query.zone)
        return [Window(start, end) for start, end in zip(edges, edges[1:], strict=False)]
    cursor.execute("""
        select greatest(cycle_start, %(start)s) as window_start, least(cycle_end, %(end)s), client_id, cycle_id
        from marts.dim_billing_cycles
        where cycle_start < %(end)s and cycle_end > %(start)s
          and (%(client_id)s::text is null or client_id = %(client_id)s)
        order by window_start, cycle_id collate "C"
    """, {"start": query.start, "end": query.end, "client_id": query.client_id})
    return [Window(*row) for row in cursor.fetchall()]


def _dimensions(query: UsageQuery, alias: str) -> str:
    """Group columns as selected from a source, in byte order ("C": fast to sort, the same on every server, and
    what the keyset compares with); a missing agent is '' so it sorts and compares."""
    columns = []
    for group in query.groups:
        column = GROUP_COLUMNS[group]
        value = f"coalesce({alias}.{column}, '')" if group == "agent" else f"{alias}.{column}"
        columns.append(f'{value}::text collate "C" as {column}')
    if "metric" in query.groups:
        columns.append(f"{alias}.unit")
    return "".join(f"{column}, " for column in columns)


def _group_list(query: UsageQuery) -> str:
    columns = [GROUP_COLUMNS[group] for group in query.groups] + (["unit"] if "metric" in query.groups else [])
    return "".join(f", {column}" for column in columns)


_EVENT_FIGURES = """events.quantity, events.cost_usd, 1 as event_count,
               (events.cost_status = 'pending')::int as pending_events,
               (events.cost_status = 'expired')::int as expired_events"""
_SOURCES = {
    # source: (relation, alias, the time column a segment's range selects on, figures)
    "days": ("marts.fct_daily_usage", "daily", "usage_date",
             "daily.quantity, daily.cost_usd, daily.event_count, daily.pending_events, daily.expired_events"),
    "client_days": ("marts.fct_daily_client_usage", "daily", "usage_date",
                    "daily.quantity, daily.cost_usd, daily.event_count, daily.pending_events, daily.expired_events"),
    "hours": ("marts.fct_hourly_usage", "hourly", "usage_hour",
              "hourly.quantity, hourly.cost_usd, hourly.event_count, hourly.pending_events, hourly.expired_events"),
    "events": ("marts.fct_usage_events", "events", "occurred_at", _EVENT_FIGURES),
}


def _range(source: str, alias: str, column: str, per_client: bool) -> str:
    """The segment's rows. A cycle's segment reads one client: as a (client_id, time) range, which the
    rollups' (client_id, time) indexes serve directly; the events' partial hours use the time index."""
    if per_client and source != "events":
        return (f"({alias}.client_id, {alias}.{column}) >= (segment.client_id, segment.range_from) "
                f"and ({alias}.client_id, {alias}.{column}) < (segment.client_id, segment.range_to)")
    condition = f"{alias}.{column} >= segment.range_from and {alias}.{column} < segment.range_to"
    return condition + (f" and {alias}.client_id = segment.client_id" if per_client else "")


def _part(query: UsageQuery, source: str, parameters: dict, rows: list[tuple]) -> str:
    """One source's rows, each tagged with its window number. LATERAL: one index range scan per segment
    (time range, and the cycle's client), whatever the planner guesses of the segment list's size."""
    # without the agent, whole days come from the client-grain rollup (a tenth of the rows, or less)
    relation, alias, column, figures = _SOURCES["client_days" if source == "days" and "agent" not in query.groups
                                                else source]
    numbers, clients, starts, ends = (list(column) for column in zip(*rows, strict=True))
    cast = "date" if source == "days" else "timestamptz"
    parameters.update({f"{source}_window": numbers, f"{source}_client": clients, f"{source}_from": starts,
                       f"{source}_to": ends})
    scope = f"and {alias}.client_id = %(client_id)s" if query.client_id is not None else ""
    # a billing cycle's segments read its client's rows; calendar segments every client's
    condition = _range(source, alias, column, per_client=query.window_size == "cycle")
    return f"""
        select segment.window_index, picked.*
        from unnest(%({source}_window)s::int[], %({source}_client)s::text[], %({source}_from)s::{cast}[],
                    %({source}_to)s::{cast}[]) as segment (window_index, client_id, range_from, range_to)
        cross join lateral (
            select {_dimensions(query, alias)}{figures}
            from {relation} as {alias}
            where {condition} {scope}
            offset 0  -- kept a subquery (not pulled up into a join): one index scan per segment
        ) as picked"""


_AGGREGATES = """
            sum(quantity) as quantity,
            coalesce(sum(cost_usd), 0) as cost_usd,
            sum(event_count)::bigint as event_count,
            sum(pending_events)::bigint as pending_events,
            sum(expired_events)::bigint as expired_events"""


def _position(query: UsageQuery, found: list[Window]) -> tuple[int, tuple | None]:
    """The first window still to read, and the group values to read on after in it (None: all of it)."""
    if query.after is None:
        return 1, None
    keys = [(window.start, window.cycle_id or "") for window in found]
    wanted = (query.after[0], query.after[1] if query.window_size == "cycle" else "")
    index = bisect_left(keys, wanted)
    if index < len(keys) and keys[index] == wanted:
        return index + 1, tuple(query.after[2:] if query.window_size == "cycle" else query.after[1:])
    return index + 1, None  # that window is gone (cycles rebuilt): go on from the next one


def _csv_field(column: str) -> str:
    """A column as the csv module writes it: null empty, numbers as PostgreSQL writes them (the text JSON
    carries), text quoted when it holds a comma, a quote or a line break."""
    if column in ("client_id", "agent_id", "provider", "metric", "unit"):
        return (f"""coalesce(case when {column} ~ '[",\r\n]' then '"' || replace({column}, '"', '""') || '"' """
                f"else {column} end, '')")
    return f"coalesce({column}::text, '')"


def usage_sql(query: UsageQuery, found: list[Window], csv_lines: bool = False) -> UsageStatement | None:
    """The rows of `query` over the windows `found`: the window's number (1 = found[0]) then query.sql_columns,
    in keyset order (window, then the group columns), after `query.after`; None when no window is left.
    csv_lines: the window's number then the rest of the row as one CSV text, written by PostgreSQL."""
    first, after_groups = _position(query, found)
    if first > len(found):
        return None
    parameters: dict = {"client_id": query.client_id, "limit": query.limit, "first": first}
    split = segments(found, hourly="agent" not in query.groups)
    parts = [_part(query, source, parameters, [row for row in rows if row[0] >= first])
             for source, rows in (("days", split.days), ("hours", split.hours), ("events", split.events))
             if any(row[0] >= first for row in rows)]
    if not parts:
        return None
    groups = [GROUP_COLUMNS[group] for group in query.groups]
    key = ["window_index", *groups]
    where = "where window_index >= %(first)s"
    if after_groups is not None and not groups:
        where = "where window_index > %(first)s"
    elif after_groups is not None:
        parameters.update({f"after_{n}": value for n, value in enumerate(after_groups)})
        where += f" and ({', '.join(key)}) > (%(first)s, {', '.join(f'%(after_{n})s' for n in range(len(groups)))})"
    columns = query.sql_columns
    if csv_lines:
        columns = [" || ',' || ".join(_csv_field(column) for column in columns) + " as line"]
    sql = f"""
    with parts as ({' union all'.join(parts)}
    )
    select window_index, {', '.join(columns)}
    from (
        select window_index{_group_list(query)},{_AGGREGATES}
        from parts
        group by window_index{_group_list(query)}
    ) as totals
    {where}
    order by {', '.join(key)}
    {"limit %(limit)s" if query.limit is not None else ""}"""
    # Rows of the daily rollup at its own grain (every agent) barely aggregate: sorting them once, in the
    # output's order, beats hashing each into its own group and sorting after (about twice as fast).
    sort_groups = "agent" in query.groups and not split.hours and not any(row[0] >= first for row in split.events)
    return UsageStatement(sql, parameters, sort_groups)


@dataclass(frozen=True)
class UsageStatement:
    sql: str
    parameters: dict
    sort_groups: bool  # group by sorting rather than hashing (see usage_sql)

    def execute(self, cursor, setup_cursor=None) -> None:
        """Run it; `setup_cursor`: a plain cursor of the same connection when `cursor` is a named one."""
        if self.sort_groups:
            (setup_cursor or cursor).execute("set local enable_hashagg = off")  # this transaction only
        cursor.execute(self.sql, self.parameters)
