"""Where the listing endpoints get their records: generated on every request, or rendered once and kept.

`GeneratedRecords` is the plain path: each request asks sandbox.usage for the client-days it needs (a small LRU
in front of the generator) and the server encodes the page with json.dumps.

`RenderedRecords` keeps every client-day it has generated, each listed record as its JSON text next to the few
fields the listings sort and filter on (a `Listed`), with the day's Twilio usage totals; OpenRouter's activity
rows are kept as they are. A page is then spliced from those texts (see `encoded_parts`): nothing is generated or
encoded again on the request path, and `prerender()` can fill the store before the first request. A text is exactly
json.dumps(record, separators=(",", ":")) of the generated record, so a page is byte for byte what the plain path
answers; records leave the store only as texts, and `materialized()` turns a page back into plain records for
what must change them (sandbox.hidden, sandbox.pending). Memory: about 2 KB per listed record.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from operator import attrgetter

from sandbox.agency import clients
from sandbox.config import SandboxConfig
from sandbox.usage import ClientDay, client_day, openrouter_activity, usage_totals

ENCODER = json.JSONEncoder(separators=(",", ":"))  # what json.dumps(..., separators=(",", ":")) uses
# The fields the listings read from a record (sort keys and filters), per list of a ClientDay.
LISTED_FIELDS = {
    "retell_calls": ("start_timestamp", "call_id", "agent_id"),
    "twilio_calls": ("uri", "status", "sid"),
    "twilio_messages": ("uri", "sid"),
}
MERGED_KEPT = 64  # merged day listings (Retell: every client of a workspace) kept for the following pages


_TEXT = attrgetter("json")


class Listed(dict):
    """A listed record as the listings see it: only its sort and filter fields, and `json`, the whole record's
    text. Never encode it as a dict: `encoded_parts` splices its text."""

    __slots__ = ("json",)


def listed(record: dict, fields: tuple[str, ...]) -> Listed:
    item = Listed({name: record[name] for name in fields if name in record})
    item.json = ENCODER.encode(record).encode()
    return item


def _is_listed(value: object) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], Listed)


def encoded_parts(body: object) -> list[bytes]:
    """The response body as json.dumps(body, separators=(",", ":")).encode() writes it, in parts to send one
    after the other: `Listed` items are spliced from their texts, and a page of them is copied only once."""
    if not (isinstance(body, dict) and any(_is_listed(value) for value in body.values())):
        return [ENCODER.encode(body).encode()]
    parts, tail = [], b"{"
    for n, (key, value) in enumerate(body.items()):
        tail += (b"," if n else b"") + ENCODER.encode(key).encode() + b":"
        if _is_listed(value):
            parts += [tail + b"[", b",".join(map(_TEXT, value))]
            tail = b"]"
        else:
            tail += ENCODER.encode(value).encode()
    return [*parts, tail + b"}"]


def encode(body: object) -> bytes:
    return b"".join(encoded_parts(body))


def materialized(body: object) -> object:
    """A copy of the body with `Listed` items turned back into the plain records they were rendered from."""
    if isinstance(body, dict) and any(_is_listed(value) for value in body.values()):
        return {key: [json.loads(item.json) for item in value] if _is_listed(value) else value
                for key, value in body.items()}
    return body


class GeneratedRecords:
    """The plain path: generated on demand, nothing kept beyond sandbox.usage's LRU."""

    def __init__(self, config: SandboxConfig):
        self.config = config

    def client_day(self, index: int, day: date, generate: Callable = client_day) -> ClientDay:
        """What `generate` (sandbox.usage.client_day, or a test's stand-in for it) makes of the client-day."""
        return generate(self.config, index, day)

    def usage_totals(self, index: int, day: date) -> dict[str, tuple[int, Decimal, Decimal]]:
        return usage_totals(client_day(self.config, index, day))

    def openrouter_activity(self, index: int, day: date) -> list[dict]:
        return openrouter_activity(self.config, index, day)

    def merged(self, key: Hashable, compute: Callable[[], list]) -> list:
        """A listing's records of one day across clients (`key` names the listing and the day)."""
        return compute()


@dataclass(frozen=True)
class _RenderedDay:
    listed: ClientDay  # of Listed
    usage_totals: dict[str, tuple[int, Decimal, Decimal]]


class RenderedRecords(GeneratedRecords):
    """Every client-day generated once and kept rendered; safe to share between request threads."""

    def __init__(self, config: SandboxConfig):
        super().__init__(config)
        self._days: dict[tuple[int, date], _RenderedDay] = {}
        self._activity: dict[tuple[int, date], list[dict]] = {}  # OpenRouter's: no need to render the day
        self._merged: OrderedDict[Hashable, list] = OrderedDict()
        self._lock = threading.Lock()

    def _day(self, index: int, day: date) -> _RenderedDay:
        rendered = self._days.get((index, day))
        if rendered is None:
            with self._lock:  # one thread renders a client-day; the others wait for it
                rendered = self._days.get((index, day))
                if rendered is None:
                    rendered = self._days[(index, day)] = self._render(index, day)
        return rendered

    def _render(self, index: int, day: date) -> _RenderedDay:
        # Past the LRU: that one serves fetches by id, and a full store would only churn it.
        usage = client_day.__wrapped__(self.config, index, day)
        kept = ClientDay(*([listed(record, LISTED_FIELDS[name]) for record in getattr(usage, name)]
                           for name in ("retell_calls", "twilio_calls", "twilio_messages")))
        return _RenderedDay(kept, usage_totals(usage))

    def client_day(self, index: int, day: date, generate: Callable = client_day) -> ClientDay:
        if generate is not client_day:  # a stand-in is served as it generates, never kept
            return generate(self.config, index, day)
        return self._day(index, day).listed

    def usage_totals(self, index: int, day: date) -> dict[str, tuple[int, Decimal, Decimal]]:
        return self._day(index, day).usage_totals

    def openrouter_activity(self, index: int, day: date) -> list[dict]:
        rows = self._activity.get((index, day))
        if rows is None:
            rows = self._activity.setdefault((index, day), openrouter_activity(self.config, index, day))
        return rows

    def merged(self, key: Hashable, compute: Callable[[], list]) -> list:
        with self._lock:
            if key in self._merged:
                self._merged.move_to_end(key)
                return self._merged[key]
        result = compute()
        with self._lock:
            self._merged[key] = result
            while len(self._merged) > MERGED_KEPT:
                self._merged.popitem(last=False)
        return result

    def prerender(self) -> int:
        """Render every client-day now; the number of listed records kept."""
        for day in self.config.iter_days():
            for client in clients(self.config):
                self._day(client.index, day)
                self.openrouter_activity(client.index, day)
        return self.size()

    def size(self) -> int:
        return sum(len(d.listed.retell_calls) + len(d.listed.twilio_calls) + len(d.listed.twilio_messages)
                   for d in list(self._days.values()))
