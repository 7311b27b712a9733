"""What `make demo` prints after its run: the warehouse's figures next to what the sandbox generated.

Per provider, every generated object is either billed (marts.fct_usage_events) or quarantined with a
reason (marts.quarantine); damaged records (SandboxConfig.corrupt_rate) belong in quarantine, so a damaged
sandbox passes when billed + quarantined = generated. Then coverage, open anomalies and pending prices.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from billing_usage.warehouse import Warehouse
from sandbox.config import SandboxConfig
from sandbox.totals import iter_records, record_cost_usd

BILLED_SQL = """
    select provider, client_id, count(distinct object_type || ':' || external_id), coalesce(sum(cost_usd), 0),
           count(*) filter (where cost_status = 'pending'), count(*) filter (where cost_status = 'expired')
    from marts.fct_usage_events
    group by provider, client_id
"""
# An object is quarantined once, whatever number of its events normalization rejected; a row the
# collector could not load has no external id and counts on its own.
QUARANTINED_SQL = """
    select provider, count(distinct coalesce(object_type || ':' || external_id, quarantine_id)),
           count(distinct object_type || ':' || external_id) filter (where external_id in (
               select external_id from marts.fct_usage_events billed where billed.provider = quarantine.provider))
    from marts.quarantine
    group by provider
"""
COVERAGE_SQL = """
    select provider, count(*) filter (where status <> 'not_yet_comparable'), min(ratio) filter (
               where status <> 'not_yet_comparable'), max(ratio) filter (where status <> 'not_yet_comparable'),
           count(*) filter (where status = 'warn'), count(*) filter (where status = 'error'),
           count(*) filter (where status = 'not_yet_comparable')
    from marts.fct_coverage_daily
    group by provider order by provider
"""
OPEN_ANOMALIES_SQL = """
    select severity, kind, usage_date, explanation
    from marts.fct_usage_anomalies
    where last_seen_at = (select max(last_seen_at) from marts.fct_usage_anomalies) and severity in ('error', 'warn')
    order by severity = 'error' desc, usage_date desc, kind
"""


@dataclass
class ProviderFigures:
    generated: int = 0
    damaged: int = 0
    generated_cost: Decimal = Decimal(0)  # of the undamaged records: what must be billed
    billed: int = 0
    billed_cost: Decimal = Decimal(0)
    quarantined: int = 0
    both: int = 0  # objects partly billed, partly quarantined
    pending: int = 0
    expired: int = 0
    clients: dict = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        objects = self.billed + self.quarantined - self.both == self.generated
        return objects and self.quarantined >= self.damaged and (
            self.billed_cost == self.generated_cost or (self.pending and self.billed_cost < self.generated_cost))


def generated_figures(config: SandboxConfig) -> dict[str, ProviderFigures]:
    figures: dict[str, ProviderFigures] = defaultdict(ProviderFigures)
    for provider, client_id, record in iter_records(config):
        entry = figures[provider]
        entry.generated += 1
        client = entry.clients.setdefault(client_id, [0, Decimal(0), 0, Decimal(0)])  # generated, cost, billed, cost
        if "_sandbox_corruption" in record:
            entry.damaged += 1
            continue
        cost = record_cost_usd(provider, record)
        entry.generated_cost += cost
        client[0] += 1
        client[1] += cost
    return figures


def _relation_exists(cursor, relation: str) -> bool:
    cursor.execute("select to_regclass(%s) is not null", (relation,))
    return cursor.fetchone()[0]


def collect_figures(warehouse: Warehouse, config: SandboxConfig) -> tuple[dict, list, list]:
    figures = generated_figures(config)
    coverage, anomalies = [], []
    with warehouse.connect() as connection, connection.cursor() as cursor:
        if _relation_exists(cursor, "marts.fct_usage_events"):
            cursor.execute(BILLED_SQL)
            for provider, client_id, objects, cost, pending, expired in cursor.fetchall():
                entry = figures[provider]
                entry.billed += objects
                entry.billed_cost += cost
                entry.pending += pending
                entry.expired += expired
                client = entry.clients.setdefault(client_id or "unattributed", [0, Decimal(0), 0, Decimal(0)])
                client[2] += objects
                client[3] += cost
        if _relation_exists(cursor, "marts.quarantine"):
            cursor.execute(QUARANTINED_SQL)
            for provider, quarantined, both in cursor.fetchall():
                figures[provider].quarantined, figures[provider].both = quarantined, both
        if _relation_exists(cursor, "marts.fct_coverage_daily"):
            cursor.execute(COVERAGE_SQL)
            coverage = cursor.fetchall()
        if _relation_exists(cursor, "marts.fct_usage_anomalies"):
            cursor.execute(OPEN_ANOMALIES_SQL)
            anomalies = cursor.fetchall()
    return dict(figures), coverage, anomalies


def _usd(amount: Decimal) -> str:
    return f"{amount.normalize():f}" if amount else "0"


def _percent(ratio) -> str:
    return "-" if ratio is None else f"{ratio * 100:.2f} %"


def print_summary(config: SandboxConfig, figures: dict[str, ProviderFigures], coverage: list, anomalies: list) -> bool:
    print(f"\nSandbox: {config.clients} clients x {config.agents_per_client} agents, {config.days} days "
          f"({config.start_date} .. {config.end_date}), seed {config.seed}, corrupt rate {config.corrupt_rate}")
    print("\nEvery generated object billed or quarantined (marts.fct_usage_events, marts.quarantine)")
    print(f"  {'provider':<11} {'generated':>9} {'damaged':>8} {'billed':>8} {'quarant.':>8} {'pending':>8} "
          f"{'expired':>8} {'billed USD':>14} {'generated USD':>14}")
    all_reconcile = True
    for provider, entry in sorted(figures.items()):
        all_reconcile &= entry.reconciles
        print(f"  {provider:<11} {entry.generated:>9} {entry.damaged:>8} {entry.billed:>8} {entry.quarantined:>8} "
              f"{entry.pending:>8} {entry.expired:>8} {_usd(entry.billed_cost):>14} {_usd(entry.generated_cost):>14}"
              f"  {'ok' if entry.reconciles else 'MISMATCH'}")
    print("\nPer client, billed against the undamaged records generated")
    for provider, entry in sorted(figures.items()):
        for client_id, (objects, cost, billed, billed_cost) in sorted(entry.clients.items()):
            status = "ok" if (objects, cost) == (billed, billed_cost) else "differs"
            print(f"  {provider:<11} {client_id:<13} {billed:>7} of {objects:<7} {_usd(billed_cost):>14} of "
                  f"{_usd(cost):<14} {status}")
    print("\nCoverage against the providers' own totals (marts.fct_coverage_daily)")
    if not coverage:
        print("  not measured")
    for provider, scored, lowest, highest, warn, error, waiting in coverage:
        print(f"  {provider:<11} {scored:>4} figures scored, {_percent(lowest)} .. {_percent(highest)}; "
              f"{error} error, {warn} warn; {waiting} not yet comparable")
    errors = sum(1 for severity, *_ in anomalies if severity == "error")
    print(f"\nOpen anomalies (marts.fct_usage_anomalies): {errors} error, {len(anomalies) - errors} warn")
    for severity, kind, usage_date, explanation in anomalies[:8]:
        print(f"  {severity.upper():<5} {usage_date} {kind:<20} {explanation}")
    if len(anomalies) > 8:
        print(f"  ... and {len(anomalies) - 8} more")
    print("\nBilled + quarantined = generated for every provider." if all_reconcile
          else "\nBILLED + QUARANTINED DIFFER from what the sandbox generated.")
    return all_reconcile
