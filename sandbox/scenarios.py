"""Planted anomalies: deterministic departures from the agency's normal usage, for the anomaly rules to find.

`SandboxConfig.scenarios` is a tuple of plain tuples, so a config stays frozen, hashable and JSON-friendly;
it is empty by default, and then every record is exactly what it was without this module. Days are ISO
strings (a `date` is accepted and stored as one), clients are 0-based indexes:

    ("spike", client, day, factor)                 every call of the client that day lasts `factor` times as
                                                   long, and its OpenRouter key makes `factor` times the
                                                   requests: cost and quantity scale together (a factor
                                                   below 1 plants a drop)
    ("silent_client", client, first_day, last_day) the client uses nothing at any provider, days inclusive
    ("silent_provider", provider, day)             retell | twilio | openrouter reports nothing that day, for
                                                   every client; a silent Retell leaves the Twilio legs of its
                                                   calls (and the other way round), as orphans
    ("unit_price_change", "provider:metric", from_day, factor)
                                                   the metric's unit prices times `factor` from that day on:
                                                   retell:voice_seconds, twilio:voice_minutes,
                                                   twilio:sms_segments, twilio:mms_messages, openrouter:llm_tokens
    ("unregistered_agent", client, day, n)         the client's first n calls that day are handled by a Retell
                                                   agent (with its own number) the directory does not know:
                                                   Retell cost unattributed, the Twilio legs attributed to the
                                                   client through its subaccount
    ("corrupt_day", day, rate)                     that share of the day's records is damaged (see
                                                   sandbox.corruption), for every client; quarantined downstream

Ids never change: a planted call keeps the id it would have had, so fetch-by-id still finds it (or, for a
silenced day, finds nothing, as the list endpoints do). Provider totals (Twilio usage records, OpenRouter
credits and key usage) are computed from the same generated records, so they agree with the plants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache

PROVIDERS = ("retell", "twilio", "openrouter")
PRICED_METRICS = ("retell:voice_seconds", "twilio:voice_minutes", "twilio:sms_segments", "twilio:mms_messages",
                  "openrouter:llm_tokens")
# kind -> the type of each argument after the kind
SIGNATURES: dict[str, tuple[str, ...]] = {
    "spike": ("client", "day", "factor"),
    "silent_client": ("client", "day", "day"),
    "silent_provider": ("provider", "day"),
    "unit_price_change": ("priced_metric", "day", "factor"),
    "unregistered_agent": ("client", "day", "count"),
    "corrupt_day": ("day", "rate"),
}


def _argument(kind: str, type_: str, value: object) -> object:
    if type_ == "day":
        if isinstance(value, date):
            return value.isoformat()
        return date.fromisoformat(str(value)).isoformat()
    if type_ in ("client", "count"):
        if isinstance(value, bool) or int(value) != float(value) or int(value) < 0:
            raise ValueError(f"{kind}: {type_} must be a non-negative integer, not {value!r}")
        return int(value)
    if type_ == "factor":
        factor = float(value)
        if not factor > 0:
            raise ValueError(f"{kind}: factor must be positive, not {value!r}")
        return factor
    if type_ == "rate":
        rate = float(value)
        if not 0 < rate <= 1:
            raise ValueError(f"{kind}: rate must be in (0, 1], not {value!r}")
        return rate
    if type_ == "provider":
        if value not in PROVIDERS:
            raise ValueError(f"{kind}: provider must be one of {PROVIDERS}, not {value!r}")
        return value
    if type_ == "priced_metric":
        if value not in PRICED_METRICS:
            raise ValueError(f"{kind}: metric must be one of {PRICED_METRICS}, not {value!r}")
        return value
    raise AssertionError(type_)


def normalize(scenarios: Iterable[Iterable[object]]) -> tuple[tuple, ...]:
    """Scenarios as tuples of (kind, *arguments) with ISO days, ints and floats; raises ValueError on
    an unknown kind or a bad argument. Lists (from JSON) become tuples."""
    result = []
    for entry in scenarios or ():
        entry = tuple(entry)
        if not entry or entry[0] not in SIGNATURES:
            raise ValueError(f"unknown scenario {entry!r}; kinds: {sorted(SIGNATURES)}")
        kind, arguments = entry[0], entry[1:]
        signature = SIGNATURES[kind]
        if len(arguments) != len(signature):
            raise ValueError(f"{kind} takes {', '.join(signature)}; got {arguments!r}")
        result.append((kind, *(_argument(kind, t, v) for t, v in zip(signature, arguments, strict=True))))
    normalized = tuple(result)
    for kind, *arguments in normalized:
        if kind == "silent_client" and arguments[2] < arguments[1]:
            raise ValueError(f"silent_client: last day {arguments[2]} is before first day {arguments[1]}")
    return normalized


def parse(text: str) -> tuple:
    """One scenario from the command line: comma-separated, e.g. `spike,0,2026-03-10,4`."""
    kind, *arguments = (part.strip() for part in text.split(","))
    return normalize([(kind, *arguments)])[0]


@dataclass(frozen=True)
class Plan:
    """The scenarios of one config, asked per client, provider and day by sandbox.usage."""

    usage_factors: dict[tuple[int, date], float] = field(default_factory=dict)
    silent_clients: frozenset[tuple[int, date, date]] = frozenset()
    silent_providers: frozenset[tuple[str, date]] = frozenset()
    price_changes: tuple[tuple[str, date, Decimal], ...] = ()
    unregistered_calls: dict[tuple[int, date], int] = field(default_factory=dict)
    corrupt_rates: dict[date, float] = field(default_factory=dict)

    def usage_factor(self, client: int, day: date) -> float:
        return self.usage_factors.get((client, day), 1.0)

    def client_silent(self, client: int, day: date) -> bool:
        return any(index == client and first <= day <= last for index, first, last in self.silent_clients)

    def provider_silent(self, provider: str, day: date) -> bool:
        return (provider, day) in self.silent_providers

    def price_factor(self, priced_metric: str, day: date) -> Decimal:
        """Product of the changes in force on `day`; exactly 1 when none is."""
        factor = Decimal(1)
        for metric, since, change in self.price_changes:
            if metric == priced_metric and day >= since:
                factor *= change
        return factor

    def unregistered(self, client: int, day: date) -> int:
        return self.unregistered_calls.get((client, day), 0)

    def corrupt_rate(self, day: date) -> float | None:
        return self.corrupt_rates.get(day)


NO_PLAN = Plan()


@lru_cache(maxsize=64)
def plan(scenarios: tuple[tuple, ...]) -> Plan:
    if not scenarios:
        return NO_PLAN
    usage_factors: dict[tuple[int, date], float] = {}
    silent_clients, silent_providers, price_changes = set(), set(), []
    unregistered: dict[tuple[int, date], int] = {}
    corrupt_rates: dict[date, float] = {}
    for kind, *arguments in normalize(scenarios):
        if kind == "spike":
            client, day, factor = arguments
            key = (client, date.fromisoformat(day))
            usage_factors[key] = usage_factors.get(key, 1.0) * factor
        elif kind == "silent_client":
            client, first, last = arguments
            silent_clients.add((client, date.fromisoformat(first), date.fromisoformat(last)))
        elif kind == "silent_provider":
            provider, day = arguments
            silent_providers.add((provider, date.fromisoformat(day)))
        elif kind == "unit_price_change":
            metric, since, factor = arguments
            price_changes.append((metric, date.fromisoformat(since), Decimal(str(factor))))
        elif kind == "unregistered_agent":
            client, day, count = arguments
            key = (client, date.fromisoformat(day))
            unregistered[key] = unregistered.get(key, 0) + count
        elif kind == "corrupt_day":
            day, rate = arguments
            corrupt_rates[date.fromisoformat(day)] = rate
    return Plan(usage_factors, frozenset(silent_clients), frozenset(silent_providers), tuple(price_changes),
                unregistered, corrupt_rates)
