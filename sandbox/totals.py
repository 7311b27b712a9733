"""What the sandbox generated, summed exactly: the yardstick the pipeline's numbers must meet."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sandbox.agency import clients
from sandbox.config import SandboxConfig
from sandbox.usage import client_day, openrouter_activity


@dataclass
class Total:
    objects: int = 0
    cost_usd: Decimal = Decimal(0)

    def add(self, cost_usd: Decimal) -> None:
        self.objects += 1
        self.cost_usd += cost_usd


def iter_day_records(config: SandboxConfig) -> Iterator[tuple[date, str, str, dict]]:
    """Every generated billable object as (day generated for, provider, client_id, record), one client-day
    at a time."""
    for day in config.iter_days():
        for client in clients(config):
            usage = client_day(config, client.index, day)
            for call in usage.retell_calls:
                yield day, "retell", client.client_id, call
            for leg in usage.twilio_calls:
                yield day, "twilio", client.client_id, leg
            for message in usage.twilio_messages:
                yield day, "twilio", client.client_id, message
            for row in openrouter_activity(config, client.index, day):
                yield day, "openrouter", client.client_id, row
        client_day.cache_clear()


def iter_records(config: SandboxConfig) -> Iterator[tuple[str, str, dict]]:
    """Every generated billable object as (provider, client_id, record), one client-day at a time."""
    for _, provider, client_id, record in iter_day_records(config):
        yield provider, client_id, record


def record_cost_usd(provider: str, record: dict) -> Decimal:
    if provider == "retell":
        return Decimal(str(record["call_cost"]["combined_cost"])) / 100
    if provider == "twilio":
        return -Decimal(record["price"])
    return Decimal(str(record["usage"]))


def expected_totals(config: SandboxConfig) -> dict[tuple[str, str], Total]:
    """(provider, client_id) -> objects and exact USD cost generated."""
    totals: dict[tuple[str, str], Total] = defaultdict(Total)
    for provider, client_id, record in iter_records(config):
        totals[(provider, client_id)].add(record_cost_usd(provider, record))
    return dict(totals)


def daily_totals(config: SandboxConfig) -> dict[tuple[date, str, str], Total]:
    """(UTC day, provider, client_id) -> objects and exact USD cost generated: what planted scenarios
    (sandbox.scenarios) did to each day, for tests to derive their expectations from."""
    totals: dict[tuple[date, str, str], Total] = defaultdict(Total)
    for day, provider, client_id, record in iter_day_records(config):
        totals[(day, provider, client_id)].add(record_cost_usd(provider, record))
    return dict(totals)
