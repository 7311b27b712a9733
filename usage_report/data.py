"""The report's figures, read from the marts in one read-only snapshot.

A report is for a scope (the agency: every client, or one client: its rows only, filtered in SQL so a
client's page never receives another client's data) and an `as_of` instant: the window is the
`window_days` UTC days up to the day holding the instant just before `as_of`; cycle to date runs from
the start of the client's cycle holding that instant up to `as_of`. Money stays Decimal from the driver on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

DEFAULT_WINDOW_DAYS = 30
TOP_N = 10
ANOMALY_ROWS = 100
COVERAGE_ROWS = 100
COVERAGE_RELATION = "marts.fct_coverage_daily"
UNATTRIBUTED = "unattributed"
SEVERITY_ORDER = {"error": 0, "warn": 1, "info": 2}


@dataclass(frozen=True)
class Client:
    client_id: str
    client_name: str | None

    @property
    def label(self) -> str:
        return self.client_name or self.client_id


@dataclass(frozen=True)
class DailyCost:
    usage_date: date
    provider: str
    cost_usd: Decimal | None  # settled costs only; None when every event of the day is unpriced
    events: int
    pending_events: int
    expired_events: int


@dataclass(frozen=True)
class ClientTotal:
    client_id: str
    cost_usd: Decimal | None
    events: int
    unpriced_events: int


@dataclass(frozen=True)
class CycleProvider:
    """One client's current cycle against its previous one, for one provider."""

    client_id: str
    provider: str
    to_date_usd: Decimal | None
    to_date_events: int
    to_date_unpriced: int
    previous_same_point_usd: Decimal | None
    previous_total_usd: Decimal | None
    status: str | None  # fct_cycle_usage's cycle_status of the current cycle (None: nothing stored yet)
    status_reason: str | None


@dataclass(frozen=True)
class ClientCycle:
    client_id: str
    cycle_id: str
    cycle_start: datetime
    cycle_end: datetime
    local_start_date: date
    local_end_date: date
    billing_timezone: str
    previous_cycle_id: str | None
    previous_local_start_date: date | None
    previous_status: str | None
    adjustments_billed_in_usd: Decimal | None  # fct_cycle_adjustments billed into the current cycle
    providers: list[CycleProvider] = field(default_factory=list)

    def total(self, attribute: str) -> Decimal | None:
        values = [getattr(p, attribute) for p in self.providers if getattr(p, attribute) is not None]
        return sum(values, Decimal(0)) if values else None


@dataclass(frozen=True)
class AgentCost:
    client_id: str
    agent_id: str | None  # None: client-level resources (a subaccount, a key) no agent is assigned
    agent_name: str | None
    cost_usd: Decimal | None
    events: int
    unpriced_events: int


@dataclass(frozen=True)
class ConversationCost:
    conversation_id: str
    client_id: str
    agent_id: str | None
    agent_name: str | None
    started_at: datetime
    retell_cost_usd: Decimal | None
    twilio_cost_usd: Decimal | None
    total_cost_usd: Decimal
    link_status: str
    price_pending: bool


@dataclass(frozen=True)
class Anomaly:
    kind: str
    severity: str
    usage_date: date
    client_id: str | None
    agent_id: str | None
    provider: str | None
    metric: str | None
    measure: str | None
    observed: Decimal | None
    expected: Decimal | None
    explanation: str | None


@dataclass(frozen=True)
class CoverageRow:
    provider: str
    account: str | None
    client_id: str | None
    usage_date: date
    category: str | None
    measure: str | None
    ours: Decimal | None
    theirs: Decimal | None
    ratio: Decimal | None
    status: str
    reason: str | None


@dataclass(frozen=True)
class Coverage:
    status_counts: dict[str, int]  # status -> rows in the window
    latest_by_provider: dict[str, tuple[date, str]]  # provider -> (latest compared day, its worst status)
    problems: list[CoverageRow]  # warn and error rows, newest first, at most COVERAGE_ROWS
    problem_count: int
    # a client's page: warn/error rows of accounts that are no one client's (a Twilio master account,
    # OpenRouter credits) on days the client used that provider, as (day, provider, category, status)
    provider_wide: list[tuple[date, str, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PendingPrices:
    provider: str
    client_id: str
    cost_status: str  # pending (priced later) or expired (never priced)
    events: int
    first_day: date
    last_day: date


@dataclass(frozen=True)
class ReportData:
    client: Client | None  # None: the agency page
    as_of: datetime
    window_start: date
    window_end: date  # inclusive
    data_refreshed_at: datetime | None  # newest provider observation the marts hold
    clients: list[Client]
    client_totals: list[ClientTotal]  # per client in the window, costliest first
    daily: list[DailyCost]
    cycles: list[ClientCycle]
    top_agents: list[AgentCost]
    top_conversations: list[ConversationCost]
    anomalies: list[Anomaly]  # open error and warn findings, at most ANOMALY_ROWS
    anomaly_counts: dict[tuple[str, str], int]  # (severity, kind) -> open findings in the window
    coverage: Coverage | None  # None: the coverage mart does not exist (coverage not measured)
    pending: list[PendingPrices]

    @property
    def days(self) -> list[date]:
        count = (self.window_end - self.window_start).days + 1
        return [self.window_start + timedelta(days=n) for n in range(count)]

    @property
    def client_names(self) -> dict[str, str]:
        return {c.client_id: c.label for c in self.clients}


class ReportError(RuntimeError):
    """The warehouse cannot give a report (e.g. the marts were never built)."""


REQUIRED_RELATIONS = ("marts.fct_daily_usage", "marts.fct_usage_events", "marts.fct_cycle_usage",
                      "marts.dim_billing_cycles", "marts.dim_clients", "marts.dim_agents", "marts.fct_calls",
                      "marts.fct_usage_anomalies", "marts.fct_cycle_adjustments")


def window_for(as_of: datetime, window_days: int = DEFAULT_WINDOW_DAYS) -> tuple[date, date]:
    """[start, end] UTC days: the `window_days` days ending on the day of the instant just before as_of."""
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    end = (as_of - timedelta(microseconds=1)).date()
    return end - timedelta(days=window_days - 1), end


def missing_relations(cursor) -> list[str]:
    cursor.execute("select name from unnest(%s::text[]) as name where to_regclass(name) is null",
                   (list(REQUIRED_RELATIONS),))
    return [row[0] for row in cursor.fetchall()]


def load_clients(cursor) -> list[Client]:
    cursor.execute("select client_id, client_name from marts.dim_clients where is_current order by client_id")
    return [Client(*row) for row in cursor.fetchall()]


def load_report(cursor, as_of: datetime, client: Client | None, clients: list[Client],
                window_days: int = DEFAULT_WINDOW_DAYS) -> ReportData:
    """Every figure of one page. `client` None: the agency's page."""
    window_start, window_end = window_for(as_of, window_days)
    params = {"as_of": as_of, "start": window_start, "end": window_end,
              "client_id": client.client_id if client else None}
    return ReportData(
        client=client,
        as_of=as_of,
        window_start=window_start,
        window_end=window_end,
        data_refreshed_at=_data_refreshed_at(cursor),
        clients=[client] if client else clients,
        client_totals=_client_totals(cursor, params),
        daily=_daily(cursor, params),
        cycles=_cycles(cursor, params),
        top_agents=_top_agents(cursor, params),
        top_conversations=_top_conversations(cursor, params),
        anomalies=_anomalies(cursor, params),
        anomaly_counts=_anomaly_counts(cursor, params),
        coverage=_coverage(cursor, params),
        pending=_pending(cursor, params),
    )


# The scope filter of every query: all rows for the agency, one client's rows for a client.
IN_SCOPE = "(%(client_id)s::text is null or client_id = %(client_id)s)"


def _rows(cursor, sql: str, params: dict) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall()


def _data_refreshed_at(cursor) -> datetime | None:
    cursor.execute("select max(last_observed_at) from marts.fct_usage_events")
    return cursor.fetchone()[0]


def _daily(cursor, params: dict) -> list[DailyCost]:
    rows = _rows(cursor, f"""
        select usage_date, provider, sum(cost_usd), sum(event_count), sum(pending_events), sum(expired_events)
        from marts.fct_daily_usage
        where usage_date between %(start)s and %(end)s and {IN_SCOPE}
        group by usage_date, provider
        order by usage_date, provider""", params)
    return [DailyCost(day, provider, cost, int(events), int(pending), int(expired))
            for day, provider, cost, events, pending, expired in rows]


def _client_totals(cursor, params: dict) -> list[ClientTotal]:
    rows = _rows(cursor, f"""
        select client_id, sum(cost_usd), sum(event_count), sum(pending_events + expired_events)
        from marts.fct_daily_usage
        where usage_date between %(start)s and %(end)s and {IN_SCOPE}
        group by client_id
        order by sum(cost_usd) desc nulls last, client_id""", params)
    return [ClientTotal(client_id, cost, int(events), int(unpriced)) for client_id, cost, events, unpriced in rows]


def _cycles(cursor, params: dict) -> list[ClientCycle]:
    cycles = _rows(cursor, """
        select current.client_id, current.cycle_id, current.cycle_start, current.cycle_end,
               current.local_start_date, current.local_end_date, current.billing_timezone,
               previous.cycle_id, previous.local_start_date,
               (select max(cycle_status) from marts.fct_cycle_usage as stored
                where stored.cycle_id = previous.cycle_id),
               (select sum(delta_cost_usd) from marts.fct_cycle_adjustments as adjustment
                where adjustment.bills_into_cycle_id = current.cycle_id)
        from marts.dim_billing_cycles as current
        left join marts.dim_billing_cycles as previous
            on previous.client_id = current.client_id and previous.cycle_end = current.cycle_start
        where current.cycle_start < %(as_of)s and current.cycle_end >= %(as_of)s
          and (%(client_id)s::text is null or current.client_id = %(client_id)s)
        order by current.client_id""", params)
    # Summed from events, so any as_of gives exact figures: to date = [cycle_start, as_of), the previous
    # cycle at the same point = the same elapsed time from its start, and its total = the whole cycle.
    totals = _rows(cursor, """
        with current_cycles as (
            select current.client_id, current.cycle_id, current.cycle_start,
                   previous.cycle_start as previous_start, previous.cycle_end as previous_end
            from marts.dim_billing_cycles as current
            left join marts.dim_billing_cycles as previous
                on previous.client_id = current.client_id and previous.cycle_end = current.cycle_start
            where current.cycle_start < %(as_of)s and current.cycle_end >= %(as_of)s
              and (%(client_id)s::text is null or current.client_id = %(client_id)s)
        ),
        sums as (
            select cycles.cycle_id, events.provider,
                   sum(events.cost_usd) filter (where events.occurred_at >= cycles.cycle_start) as to_date,
                   count(*) filter (where events.occurred_at >= cycles.cycle_start) as to_date_events,
                   count(*) filter (where events.occurred_at >= cycles.cycle_start
                                      and events.cost_status <> 'settled') as to_date_unpriced,
                   sum(events.cost_usd) filter (
                       where events.occurred_at >= cycles.previous_start
                         and events.occurred_at < cycles.previous_start + (%(as_of)s - cycles.cycle_start)
                         and events.occurred_at < cycles.previous_end) as previous_same_point,
                   sum(events.cost_usd) filter (
                       where events.occurred_at >= cycles.previous_start
                         and events.occurred_at < cycles.previous_end) as previous_total
            from current_cycles as cycles
            inner join marts.fct_usage_events as events
                on events.client_id = cycles.client_id
               and events.occurred_at >= coalesce(cycles.previous_start, cycles.cycle_start)
               and events.occurred_at < %(as_of)s
               -- the same bounds on the indexed UTC day
               and events.usage_date >= (coalesce(cycles.previous_start, cycles.cycle_start) at time zone 'UTC')::date
               and events.usage_date <= (%(as_of)s::timestamptz at time zone 'UTC')::date
            group by cycles.cycle_id, events.provider
        )
        select sums.cycle_id, sums.provider, sums.to_date, sums.to_date_events, sums.to_date_unpriced,
               sums.previous_same_point, sums.previous_total,
               status.cycle_status, status.status_reason
        from sums
        left join lateral (
            select cycle_status, status_reason from marts.fct_cycle_usage as stored
            where stored.cycle_id = sums.cycle_id and stored.provider = sums.provider
            order by case cycle_status when 'open' then 0 when 'settling' then 1 else 2 end
            limit 1
        ) as status on true
        order by sums.cycle_id, sums.provider""", params)
    by_cycle: dict[str, list[CycleProvider]] = {}
    client_of = {row[1]: row[0] for row in cycles}
    for (cycle_id, provider, to_date, to_date_events, unpriced, same_point, previous_total,
         status, reason) in totals:
        by_cycle.setdefault(cycle_id, []).append(CycleProvider(
            client_of[cycle_id], provider, to_date, int(to_date_events), int(unpriced), same_point,
            previous_total, status, reason))
    return [ClientCycle(client_id, cycle_id, start, end, local_start, local_end, timezone, previous_id,
                        previous_local_start, previous_status, adjustments, by_cycle.get(cycle_id, []))
            for (client_id, cycle_id, start, end, local_start, local_end, timezone, previous_id,
                 previous_local_start, previous_status, adjustments) in cycles]


def _top_agents(cursor, params: dict) -> list[AgentCost]:
    rows = _rows(cursor, f"""
        select usage.client_id, usage.agent_id, agents.agent_name, sum(usage.cost_usd), sum(usage.event_count),
               sum(usage.pending_events + usage.expired_events)
        from marts.fct_daily_usage as usage
        left join marts.dim_agents as agents on agents.agent_id = usage.agent_id and agents.is_current
        where usage.usage_date between %(start)s and %(end)s
          and (%(client_id)s::text is null or usage.client_id = %(client_id)s)
        group by usage.client_id, usage.agent_id, agents.agent_name
        order by sum(usage.cost_usd) desc nulls last, usage.client_id, usage.agent_id nulls last
        limit {TOP_N}""", params)
    return [AgentCost(client_id, agent_id, name, cost, int(events), int(unpriced))
            for client_id, agent_id, name, cost, events, unpriced in rows]


def _top_conversations(cursor, params: dict) -> list[ConversationCost]:
    rows = _rows(cursor, f"""
        select calls.conversation_id, calls.client_id, calls.agent_id, agents.agent_name, calls.started_at,
               calls.retell_cost_usd, calls.twilio_cost_usd, calls.total_cost_usd, calls.link_status,
               (calls.call_id is not null and calls.retell_cost_usd is null)
               or (calls.twilio_billed_minutes is not null and calls.twilio_cost_usd is null)
        from marts.fct_calls as calls
        left join marts.dim_agents as agents on agents.agent_id = calls.agent_id and agents.is_current
        where calls.started_at >= %(start)s::timestamp at time zone 'UTC'
          and calls.started_at < (%(end)s::date + 1)::timestamp at time zone 'UTC'
          and (%(client_id)s::text is null or calls.client_id = %(client_id)s)
        order by calls.total_cost_usd desc, calls.started_at, calls.conversation_id
        limit {TOP_N}""", params)
    return [ConversationCost(*row) for row in rows]


_OPEN_ANOMALIES = f"""
    from marts.fct_usage_anomalies
    where last_seen_at = (select max(last_seen_at) from marts.fct_usage_anomalies)
      and usage_date between %(start)s and %(end)s and {IN_SCOPE}"""


def _anomalies(cursor, params: dict) -> list[Anomaly]:
    rows = _rows(cursor, f"""
        select kind, severity, usage_date, client_id, agent_id, provider, metric, measure, observed, expected,
               explanation
        {_OPEN_ANOMALIES} and severity in ('error', 'warn')
        order by case severity when 'error' then 0 else 1 end, usage_date desc, kind, provider nulls first,
                 client_id nulls first, metric nulls first, measure
        limit {ANOMALY_ROWS}""", params)
    return [Anomaly(*row) for row in rows]


def _anomaly_counts(cursor, params: dict) -> dict[tuple[str, str], int]:
    rows = _rows(cursor, f"select severity, kind, count(*) {_OPEN_ANOMALIES} group by severity, kind", params)
    return {(severity, kind): int(count) for severity, kind, count in
            sorted(rows, key=lambda row: (SEVERITY_ORDER.get(row[0], 9), row[1]))}


def _coverage(cursor, params: dict) -> Coverage | None:
    cursor.execute("select to_regclass(%s)", (COVERAGE_RELATION,))
    if cursor.fetchone()[0] is None:
        return None
    scope = f"from {COVERAGE_RELATION} where usage_date between %(start)s and %(end)s and {IN_SCOPE}"
    counts = dict(_rows(cursor, f"select status, count(*) {scope} group by status order by status", params))
    latest = _rows(cursor, f"""
        select distinct on (provider) provider, usage_date,
               (array_agg(status order by case status when 'error' then 0 when 'warn' then 1
                                                      when 'ok' then 2 else 3 end))[1]
        {scope} and status <> 'not_yet_comparable'
        group by provider, usage_date
        order by provider, usage_date desc""", params)
    problems = _rows(cursor, f"""
        select provider, account, client_id, usage_date, category, measure, ours, theirs, ratio, status, reason
        {scope} and status in ('error', 'warn')
        order by usage_date desc, case status when 'error' then 0 else 1 end, provider, account nulls first,
                 client_id nulls first, category, measure
        limit {COVERAGE_ROWS}""", params)
    # only the status of such a row reaches a client's page: its figures are the whole account's
    provider_wide = [] if params["client_id"] is None else _rows(cursor, f"""
        select distinct coverage.usage_date, coverage.provider, coverage.category, coverage.status
        from {COVERAGE_RELATION} as coverage
        where coverage.usage_date between %(start)s and %(end)s and coverage.client_id is null
          and coverage.status in ('error', 'warn')
          and exists (select 1 from marts.fct_daily_usage as usage
                      where usage.client_id = %(client_id)s and usage.provider = coverage.provider
                        and usage.usage_date = coverage.usage_date)
        order by coverage.usage_date desc, coverage.provider, coverage.category, coverage.status""", params)
    return Coverage(status_counts={status: int(count) for status, count in counts.items()},
                    latest_by_provider={provider: (day, status) for provider, day, status in latest},
                    problems=[CoverageRow(*row) for row in problems],
                    problem_count=counts.get("error", 0) + counts.get("warn", 0),
                    provider_wide=[tuple(row) for row in provider_wide])


def _pending(cursor, params: dict) -> list[PendingPrices]:
    """From the daily aggregates' pending_events and expired_events (fct_usage_events.cost_status counted)."""
    rows = _rows(cursor, f"""
        select provider, client_id, cost_status, sum(events), min(usage_date), max(usage_date)
        from marts.fct_daily_usage
        cross join lateral (values ('pending', pending_events), ('expired', expired_events))
            as unpriced(cost_status, events)
        where events > 0 and usage_date <= %(end)s and {IN_SCOPE}
        group by provider, client_id, cost_status
        order by provider, client_id, cost_status""", params)
    return [PendingPrices(provider, client_id, status, int(events), first, last)
            for provider, client_id, status, events, first, last in rows]
