"""Query parameters read and checked one by one, each error naming its parameter."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from starlette.requests import Request

from reporting_api.problems import Problem, invalid
from reporting_api.usage import GROUPS
from reporting_api.windows import CALENDAR_WINDOWS, count_windows

WINDOW_SIZES = (*CALENDAR_WINDOWS, "cycle")
FORMATS = ("json", "csv")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_WINDOWS = 50_000
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def reject_unknown(request: Request, known: tuple[str, ...]) -> None:
    for name in request.query_params:
        if name not in known:
            raise invalid(name, f"unknown parameter (expected one of: {', '.join(known)})")


def single(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise invalid(name, "given more than once")
    return values[0] if values else None


def time_zone(value: str | None) -> ZoneInfo:
    if value is None:
        return ZoneInfo("UTC")
    try:
        if not value or value.startswith(("/", ".")) or ".." in value:
            raise ValueError
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid("window_time_zone", f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None


def instant(name: str, value: str, zone: ZoneInfo) -> datetime:
    """An RFC 3339 timestamp; a date or a timestamp without offset is read in `zone`."""
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time(0))
        else:
            moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise invalid(name, f"{value!r} is not an RFC 3339 timestamp or a date (YYYY-MM-DD)") from None
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise invalid(name, "must lie between 1970 and 2100")
    return moment


def range_(request: Request, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    start_text, end_text = single(request, "from"), single(request, "to")
    if start_text is None:
        raise invalid("from", "required: the start of the range (RFC 3339 timestamp or date, inclusive)")
    start = instant("from", start_text, zone)
    end = instant("to", end_text, zone) if end_text is not None else end_of_day(now, zone)
    if end <= start:
        raise invalid("to", "must be after from")
    return start, end


def end_of_day(moment: datetime, zone: ZoneInfo) -> datetime:
    """The default `to`: the end of the current day in the windows' zone (stable all day, so ETags hold)."""
    return datetime.combine(moment.astimezone(zone).date() + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)


def window_size(value: str | None, start: datetime, end: datetime) -> str | None:
    if value is None:
        return None
    if value not in WINDOW_SIZES:
        raise invalid("window_size", f"{value!r} is not one of {', '.join(WINDOW_SIZES)}")
    if value != "cycle" and count_windows(start, end, value) > MAX_WINDOWS:
        raise invalid("window_size", f"more than {MAX_WINDOWS} {value} windows between from and to: "
                                     "narrow the range or use a larger window")
    return value


def group_by(request: Request) -> tuple[str, ...]:
    chosen = set()
    for value in request.query_params.getlist("group_by"):
        for group in value.split(","):
            if group.strip() not in GROUPS:
                raise invalid("group_by", f"{group.strip()!r} is not one of {', '.join(GROUPS)}")
            chosen.add(group.strip())
    return tuple(group for group in GROUPS if group in chosen)


def limit(request: Request, default: int | None = DEFAULT_LIMIT) -> int | None:
    value = single(request, "limit")
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(value)


def output_format(request: Request) -> str:
    """?format= wins; else the Accept header (text/csv preferred over JSON only when it ranks higher)."""
    value = single(request, "format")
    if value is not None:
        if value not in FORMATS:
            raise invalid("format", f"{value!r} is not one of {', '.join(FORMATS)}")
        return value
    best, best_quality = "json", -1.0
    for position, item in enumerate(request.headers.get("accept", "").split(",")):
        media, *options = (part.strip() for part in item.split(";"))
        quality = 1.0
        for option in options:
            if option.startswith("q="):
                try:
                    quality = float(option[2:])
                except ValueError:
                    quality = 0.0
        kind = {"text/csv": "csv", "application/json": "json", "application/*": "json", "*/*": "json"}.get(media)
        # an exact type beats a wildcard of the same quality; earlier beats later
        score = quality - (0.001 if media.endswith("*") else 0) - position * 1e-6
        if kind and quality > 0 and score > best_quality:
            best, best_quality = kind, score
    return best


def encode_position(values: list) -> str:
    """A row's keyset position as an opaque id (what starting_after takes)."""
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_position(value: str, length: int) -> list:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        decoded = None
    if not isinstance(decoded, list) or len(decoded) != length or not all(isinstance(v, str) for v in decoded):
        raise invalid("starting_after", "not the id of a row of this query (use a row id from the previous page)")
    return decoded


def usage_position(value: str | None, key_length: int, start: datetime, end: datetime) -> tuple | None:
    if value is None:
        return None
    window_start, *keys = decode_position(value, key_length + 1)
    try:
        moment = datetime.fromisoformat(window_start)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not start <= moment < end:
        raise invalid("starting_after", "not the id of a row of this query (its window lies outside from..to)")
    return (moment, *keys)


def require(condition: bool, problem: Problem) -> None:
    if not condition:
        raise problem
