"""One client's cycle statement as a JSON document and as CSV rows carrying the same figures: money and
quantities as exact decimal strings (never floats, never rounded), so both reconcile to the cent, and
beyond, with fct_cycle_usage + the adjustments billed into the cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache

import yaml

from billing_usage.exports.data import Cycle, CycleData, ExportError
from billing_usage.exports.focus import decimal_text
from billing_usage.settings import PROJECT_ROOT

CURRENCY = "USD"  # cost_usd: costs in another currency are never converted (docs/money-and-units.md)
STATUS_ORDER = ("open", "settling", "closed")  # a statement is as final as its least final provider

# the figures of a line, in the JSON line objects and the CSV columns alike
LINE_FIELDS = ("provider", "metric", "unit", "quantity", "cost_usd", "event_count", "pending_events",
               "expired_events", "adjustment_count", "adjustment_quantity", "adjustment_cost_usd", "total_cost_usd",
               "cycle_status", "status_reason", "coverage_status", "coverage_reason", "data_refreshed_at")
STATEMENT_FIELDS = ("statement_id", "client_id", "client_name", "cycle_start", "cycle_end", "local_start_date",
                    "local_end_date", "billing_timezone", "currency")
CSV_COLUMNS = STATEMENT_FIELDS + LINE_FIELDS + ("adjustment_ids",)
MONEY_TOTALS = ("cost_usd", "adjustment_cost_usd", "total_cost_usd")
COUNT_TOTALS = ("event_count", "pending_events", "expired_events", "adjustment_count")


def instant_text(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _text(value) -> str | int | None:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return instant_text(value)
    if value is None or isinstance(value, int | str):
        return value
    return str(value)  # dates


@dataclass
class Statement:
    data: CycleData
    document: dict
    csv_rows: list[dict]
    total_cost_usd: Decimal
    status: str
    blocked_by: list[str] = field(default_factory=list)  # coverage errors, one line per provider

    @property
    def cycle(self):
        return self.data.cycle


def build_statement(data: CycleData, now: datetime) -> Statement:
    """The statement of data.cycle; raises ExportError when its lines do not reconcile with the marts."""
    cycle = data.cycle
    header = {"statement_id": cycle.cycle_id, "client_id": cycle.client_id, "client_name": cycle.client_name,
              "cycle_start": instant_text(cycle.cycle_start), "cycle_end": instant_text(cycle.cycle_end),
              "local_start_date": _text(cycle.local_start_date), "local_end_date": _text(cycle.local_end_date),
              "billing_timezone": cycle.billing_timezone, "currency": CURRENCY}
    lines = [{name: _text(line[name]) for name in LINE_FIELDS} | {"adjustment_ids": list(line["adjustment_ids"])}
             for line in data.lines]
    totals = {name: decimal_text(sum((line[name] for line in data.lines), Decimal(0))) for name in MONEY_TOTALS}
    totals |= {name: sum(line[name] for line in data.lines) for name in COUNT_TOTALS}
    total = sum((line["total_cost_usd"] for line in data.lines), Decimal(0))
    _reconcile(data, total)

    providers = {}
    for line in data.lines:  # one status, coverage and freshness per provider (the same on each of its lines)
        providers.setdefault(line["provider"], {
            "provider": line["provider"], "cycle_status": line["cycle_status"], "status_reason": line["status_reason"],
            "closed_at": instant_text(line["closed_at"]), "coverage_status": line["coverage_status"],
            "coverage_reason": line["coverage_reason"], "data_refreshed_at": instant_text(line["data_refreshed_at"])})
    statuses = [provider["cycle_status"] for provider in providers.values()]
    status = min(statuses, key=STATUS_ORDER.index) if statuses else _status_without_usage(cycle, now)
    refreshed = [line["data_refreshed_at"] for line in data.lines if line["data_refreshed_at"]]
    computed = [line["computed_at"] for line in data.lines]
    blocked_by = [f"{provider['provider']}: {provider['coverage_reason'] or 'coverage error'}"
                  for provider in providers.values() if provider["coverage_status"] == "error"]

    document = header | {
        "cycle_status": status,
        "data_refreshed_at": instant_text(min(refreshed)) if refreshed else None,
        "computed_at": instant_text(max(computed)) if computed else None,
        "totals": totals,
        "providers": sorted(providers.values(), key=lambda provider: provider["provider"]),
        "lines": lines,
        "adjustments": [{"adjustment_id": row["adjustment_id"], "corrects_cycle_id": row["cycle_id"],
                         "provider": row["provider"], "metric": row["metric"],
                         "delta_quantity": _text(row["delta_quantity"]), "delta_cost_usd": _text(row["delta_cost_usd"]),
                         "reason": row["reason"], "booked_at": instant_text(row["booked_at"])}
                        for row in data.adjustments],
    }
    csv_rows = [header | line | {"adjustment_ids": " ".join(line["adjustment_ids"])} for line in lines]
    return Statement(data=data, document=document, csv_rows=csv_rows, total_cost_usd=total, status=status,
                     blocked_by=blocked_by)


@cache
def _longest_grace() -> timedelta:
    """The longest settling grace period of dbt_project.yml (vars.settling_grace_hours; 72 h when unlisted)."""
    project = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text())
    return timedelta(hours=max([72, *project["vars"].get("settling_grace_hours", {}).values()]))


def _status_without_usage(cycle: Cycle, now: datetime) -> str:
    """A cycle without statement lines follows the calendar: open, settling through the grace period, closed."""
    if now < cycle.cycle_end:
        return "open"
    return "settling" if now < cycle.cycle_end + _longest_grace() else "closed"


def _reconcile(data: CycleData, total: Decimal) -> None:
    """Σ lines = Σ fct_cycle_usage + Σ adjustments billed into the cycle, read from the marts themselves."""
    expected = data.marts_usage_cost + data.marts_adjustment_cost
    if total != expected:
        raise ExportError(f"the statement of cycle {data.cycle.cycle_id} ({data.cycle.client_id}) totals "
                          f"{decimal_text(total)} USD but fct_cycle_usage + adjustments give {decimal_text(expected)}: "
                          "rebuild the models (reporting.rpt_cycle_statements is behind the marts)")
