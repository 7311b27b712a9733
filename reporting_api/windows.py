"""Window edges in a time zone: the instants where an hour, a local day or a local month begins.

Edges are computed with the zone's rules (zoneinfo), so a local day is 23 or 25 hours long across a DST
change and a local hour starts at :30 UTC in a +05:30 zone. The first and last windows are clipped to
[start, end), so the windows always cover exactly the requested range.

Each window is then split into the ranges each source serves (segments()): whole UTC days from the daily
rollup, whole UTC hours from the hourly one, the rest from the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

CALENDAR_WINDOWS = ("hour", "day", "month")
QUARTER_HOUR = timedelta(minutes=15)  # every zone's offset has been a multiple of 15 minutes since 1970
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    client_id: str | None = None  # a billing cycle's client: its segments read only that client's rows
    cycle_id: str | None = None


@dataclass
class Segments:
    """Where each window's figures are read, every instant exactly once: (window number, client or None,
    from, to) ranges of whole UTC days (daily rollup), of whole UTC hours (hourly rollup) and the rest
    (events)."""
    days: list[tuple] = field(default_factory=list)
    hours: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)


def _ceil(moment: datetime, unit: timedelta) -> datetime:
    floor = _floor(moment, unit)
    return floor if floor == moment else floor + unit


def _floor(moment: datetime, unit: timedelta) -> datetime:
    seconds = (moment - EPOCH) // timedelta(microseconds=1) // (unit // timedelta(microseconds=1))
    return EPOCH + seconds * unit


def segments(windows: list[Window], hourly: bool) -> Segments:
    """Split windows (numbered from 1) into whole UTC days, then whole UTC hours (when the hourly rollup can
    serve, i.e. without the agent), then what is left, read from the events."""
    found = Segments()
    for number, window in enumerate(windows, start=1):
        first_midnight, last_midnight = _ceil(window.start, DAY), _floor(window.end, DAY)
        rest = [(window.start, window.end)]
        if first_midnight < last_midnight:
            found.days.append((number, window.client_id, first_midnight.date(), last_midnight.date()))
            rest = [(window.start, first_midnight), (last_midnight, window.end)]
        for start, end in rest:
            first_hour, last_hour = _ceil(start, HOUR), _floor(end, HOUR)
            if hourly and first_hour < last_hour:
                found.hours.append((number, window.client_id, first_hour, last_hour))
                pieces = [(start, first_hour), (last_hour, end)]
            else:
                pieces = [(start, end)]
            found.events += [(number, window.client_id, a, b) for a, b in pieces if a < b]
    return found
