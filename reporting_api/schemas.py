"""Response shapes, for the OpenAPI document (the endpoints write their bodies themselves)."""

from __future__ import annotations

from pydantic import BaseModel, Field

Money = str  # a decimal string, e.g. "12.3450"; never a float
REFRESHED = "When the marts were last built (the business clock of the latest build)."


class ProblemParam(BaseModel):
    name: str
    reason: str


class ProblemBody(BaseModel):
    """RFC 9457 problem details (application/problem+json)."""
    type: str
    title: str
    status: int
    detail: str
    parameter: str | None = Field(None, description="The query or path parameter at fault.")
    invalid_params: list[ProblemParam] | None = None


class UsageRow(BaseModel):
    id: str = Field(description="This row's keyset position: pass it as starting_after to read on.")
    window_start: str = Field(description="RFC 3339, in window_time_zone.")
    window_end: str
    cycle_id: str | None = Field(None, description="With window_size=cycle.")
    client_id: str | None = Field(None, description="With group_by client (or window_size=cycle).")
    agent_id: str | None = Field(None, description="With group_by agent; null for client-level resources.")
    provider: str | None = Field(None, description="With group_by provider.")
    metric: str | None = Field(None, description="With group_by metric.")
    unit: str | None = Field(None, description="With group_by metric.")
    quantity: Money | None = Field(None, description="With group_by metric (units differ across metrics).")
    cost_usd: Money = Field(description="Settled costs only; pending_events says how many are still unpriced.")
    event_count: int
    pending_events: int = Field(description="Events whose price has not settled yet (cost not included).")
    expired_events: int = Field(description="Events still unpriced after pending_max_age_days.")


class UsageQueryEcho(BaseModel):
    from_: str = Field(alias="from")
    to: str
    window_size: str | None
    window_time_zone: str
    group_by: list[str]
    client_id: str | None


class UsageList(BaseModel):
    object: str = "list"
    data: list[UsageRow]
    has_more: bool
    next_starting_after: str | None
    query: UsageQueryEcho
    data_refreshed_at: str | None = Field(description=REFRESHED)


class Client(BaseModel):
    id: str
    name: str | None
    billing_timezone: str | None
    billing_anchor_day: int | None
    currency: str | None


class ClientList(BaseModel):
    object: str = "list"
    data: list[Client]
    has_more: bool
    next_starting_after: str | None
    data_refreshed_at: str | None = Field(description=REFRESHED)


class Cycle(BaseModel):
    id: str
    client_id: str
    start: str = Field(description="Inclusive, RFC 3339 (UTC).")
    end: str = Field(description="Exclusive.")
    local_start_date: str
    local_end_date: str = Field(description="The next cycle's first local day (exclusive).")
    billing_timezone: str
    status: str = Field(description="open | settling | closed: open while any provider is, then settling while any "
                                    "is (grace period, pending prices), closed once all are.")
    status_reason: str | None
    usage_cost_usd: Money = Field(description="Settled cost of the cycle's own usage.")
    adjustments_cost_usd: Money = Field(description="Corrections of closed cycles billed into this one.")
    total_cost_usd: Money = Field(description="usage_cost_usd + adjustments_cost_usd.")
    event_count: int
    pending_events: int = Field(description="Events still waiting for a price (not in the costs).")
    expired_events: int
    coverage_status: str = Field(description="Worst of the providers: ok | not_yet_comparable | warn | error, "
                                             "not_measured without coverage rows.")


class CycleList(BaseModel):
    object: str = "list"
    data: list[Cycle]
    has_more: bool
    next_starting_after: str | None
    data_refreshed_at: str | None = Field(description=REFRESHED)


class StatementLine(BaseModel):
    """One provider x metric of the cycle (reporting.rpt_cycle_statements)."""
    provider: str
    metric: str
    unit: str | None
    quantity: Money
    cost_usd: Money
    event_count: int
    pending_events: int
    expired_events: int
    adjustment_count: int
    adjustment_quantity: Money
    adjustment_cost_usd: Money
    total_cost_usd: Money
    status: str
    status_reason: str | None
    closed_at: str | None
    coverage_status: str
    coverage_reason: str | None


class Adjustment(BaseModel):
    adjustment_id: str
    adjusted_cycle_id: str = Field(description="The closed cycle this corrects.")
    provider: str
    metric: str
    delta_quantity: Money
    delta_cost_usd: Money
    reason: str = Field(description="late_event | changed_after_close | removed_after_close")
    event_count: int
    booked_at: str


class CoverageFinding(BaseModel):
    """A coverage check of the cycle's days that is not ok (marts.fct_coverage_daily)."""
    provider: str
    account: str | None
    client_id: str | None = Field(description="null: an account several clients share (a client token does not "
                                               "see its figures).")
    usage_date: str
    category: str | None
    measure: str | None
    ours: Money | None
    theirs: Money | None
    ratio: Money | None
    status: str
    reason: str | None


class Coverage(BaseModel):
    status: str = Field(description="Worst of the cycle's providers: ok | not_yet_comparable | warn | error, "
                                    "not_measured without coverage rows.")
    findings: list[CoverageFinding] = Field(description="The checks of the cycle's days that are not ok.")


class StatementTotals(BaseModel):
    usage_cost_usd: Money
    adjustments_cost_usd: Money
    total_cost_usd: Money
    event_count: int
    pending_events: int
    expired_events: int


class Statement(BaseModel):
    object: str = "statement"
    id: str = Field(description="The cycle's id.")
    client: Client
    cycle: Cycle
    status: str
    status_reason: str | None
    currency: str = "USD"
    lines: list[StatementLine]
    adjustments: list[Adjustment]
    totals: StatementTotals
    coverage: Coverage
    data_refreshed_at: str | None = Field(description=REFRESHED)
