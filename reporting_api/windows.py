"""Window edges in a time zone: the instants where an hour, a local day or a local month begins.

Edges are computed with the zone's rules (zoneinfo), so a local day is 23 or 25 hours long across a DST
change and a local hour starts at :30 UTC in a +05:30 zone. The first and last windows are clipped to
[start, end), so the windows always cover exactly the requested range.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

CALENDAR_WINDOWS = ("hour", "day", "month")
QUARTER_HOUR = timedelta(minutes=15)  # every zone's offset has been a multiple of 15 minutes since 1970


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of a local day. A midnight skipped by DST resolves (fold=0, the offset before the
    change) to the instant of the change itself, which is where that day begins."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _hour_edges(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    edges = []
    moment = start.replace(minute=start.minute - start.minute % 15, second=0, microsecond=0)
    while moment < end:
        if moment > start and moment.astimezone(zone).minute == 0:
            edges.append(moment)
        moment += QUARTER_HOUR
    return edges


def _day_edges(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    edges, day = [], start.astimezone(zone).date()
    while (edge := _local_midnight(day, zone)) < end:
        if edge > start:
            edges.append(edge)
        day += timedelta(days=1)
    return edges


def _month_edges(start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    edges, first = [], start.astimezone(zone).date().replace(day=1)
    while (edge := _local_midnight(first, zone)) < end:
        if edge > start:
            edges.append(edge)
        first = (first + timedelta(days=32)).replace(day=1)
    return edges


def window_edges(start: datetime, end: datetime, size: str | None, zone: ZoneInfo) -> list[datetime]:
    """[start, e1, ..., end]: window i is [edges[i], edges[i+1]). No size: one window, the whole range."""
    inner = {"hour": _hour_edges, "day": _day_edges, "month": _month_edges}[size](start, end, zone) if size else []
    edges = [start]
    for edge in [*inner, end]:
        if edge > edges[-1]:  # a day a zone skipped whole (Samoa, 30 Dec 2011) is no window
            edges.append(edge)
    return edges


def count_windows(start: datetime, end: datetime, size: str | None) -> int:
    """An upper bound of the number of windows, computed without generating them."""
    if size is None:
        return 1
    span = (end - start).total_seconds()
    return int(span // {"hour": 3600, "day": 82800, "month": 2419200}[size]) + 2


def split_days(edges: list[datetime]) -> tuple[list[date], list[date]]:
    """The UTC days of [edges[0], edges[-1]): those lying whole inside one window (read from the daily
    rollup) and the others (read from the events)."""
    whole, partial = [], []
    day = edges[0].astimezone(UTC).date()
    while (day_start := datetime.combine(day, time(0), tzinfo=UTC)) < edges[-1]:
        day_end = day_start + timedelta(days=1)
        inside = day_start >= edges[0] and day_end <= edges[-1]
        # no edge strictly inside the day: it belongs to one window
        crossed = bisect_right(edges, day_start) < len(edges) and edges[bisect_right(edges, day_start)] < day_end
        (whole if inside and not crossed else partial).append(day)
        day += timedelta(days=1)
    return whole, partial
