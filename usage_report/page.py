"""One HTML page from a ReportData: inline CSS and SVG, no script, every value escaped.

A Content-Security-Policy of default-src 'none' keeps the browser from fetching anything at all. Money
cells carry class "money" and data-value (the exact Decimal), with data-* attributes naming what they
are, so tests and scrapers read the figures without parsing the formatted text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from html import escape

from usage_report.charts import BarGroup, DayStack, daily_cost_chart, grouped_bar_chart, money
from usage_report.data import UNATTRIBUTED, ClientCycle, ReportData

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CYCLE_SERIES = ("this cycle to date", "previous cycle, same point", "previous cycle, whole")
STATUS_CLASS = {"open": "info", "settling": "warn", "closed": "ok"}
NO_USAGE = "no usage"

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#f6f7f9}
header{background:#1f2d3d;color:#fff;padding:18px 28px}
header h1{margin:0 0 6px;font-size:22px}
header p{margin:2px 0;color:#cfd8e3;font-size:13px}
main{padding:8px 28px 40px;max-width:1100px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:14px 18px;margin:16px 0;overflow-x:auto}
h2{font-size:17px;margin:0 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:6px;padding:10px 14px;min-width:170px}
.card b{display:block;font-size:18px;margin-top:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0;width:100%}
th,td{border-bottom:1px solid #eceef1;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600}
td.money,td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.note{color:#555;font-size:13px}
.badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;font-weight:600}
.error{background:#fde2e1;color:#a4161a}.warn{background:#fff3cd;color:#7a5600}
.info{background:#e7f0fb;color:#1d4f91}.ok{background:#e3f4e6;color:#1e6b2f}
.not_yet_comparable{background:#eee;color:#444}
details summary{cursor:pointer;color:#1d4f91;font-size:13px;margin:6px 0}
nav a{margin-right:12px;font-size:13px}
td.explain{min-width:320px}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _plain(value: Decimal | None) -> str:
    """A non-money number, exact: 0.3 not 0.30000, 12 not 1.2E+1."""
    if value is None:
        return "—"
    normal = value.normalize()
    return f"{normal:f}" if normal.as_tuple().exponent <= 0 else f"{value:f}"


def _money_cell(value: Decimal | None, missing: str = "unpriced", **data: str) -> str:
    """`missing`: what a None means here: every event unpriced, or no usage at all."""
    attributes = "".join(f' data-{name.replace("_", "-")}="{_e(v)}"' for name, v in data.items())
    exact = "" if value is None else f' data-value="{value}"'
    return f'<td class="money"{attributes}{exact}>{_e(money(value) if value is not None else missing)}</td>'


def _num_cell(value: int | Decimal | None) -> str:
    return f'<td class="num">{_e(_plain(value) if isinstance(value, Decimal) else value)}</td>'


def _table(head: Iterable[str], rows: Iterable[str], numeric_from: int | None = None) -> str:
    numeric = ' class="num"'
    cells = "".join(f'<th{numeric if numeric_from is not None and i >= numeric_from else ""}>{_e(h)}</th>'
                    for i, h in enumerate(head))
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _sum(values: Iterable[Decimal | None]) -> Decimal | None:
    present = [v for v in values if v is not None]
    return sum(present, Decimal(0)) if present else None


def render_page(data: ReportData, client_links: Mapping[str, str] | None = None) -> str:
    """The page of `data` (the agency's when data.client is None). `client_links`: client id -> relative
    URL of its page, listed on the agency page only."""
    agency = data.client is None
    scope = "Agency (all clients)" if agency else data.client.label
    names = data.client_names
    sections = [
        _daily_section(data),
        _cycle_section(data, names),
        _agents_section(data, names),
        _conversations_section(data, names),
        _anomalies_section(data, names),
        _coverage_section(data, names),
        _pending_section(data, names),
    ]
    if agency:
        sections.insert(0, _clients_section(data, names, client_links or {}))
    head = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,">'
            f'<title>Usage report — {_e(scope)} — {data.window_start} to {data.window_end}</title>'
            f'<style>{STYLE}</style></head>')
    header = (f'<header data-scope="{"agency" if agency else "client"}"><h1>Usage report — {_e(scope)}</h1>'
              f'<p>UTC days {data.window_start} to {data.window_end} · as of {_utc(data.as_of)} · provider data '
              f'observed up to {_utc(data.data_refreshed_at)}</p>'
              f'<p>Amounts are provider costs in USD, exact to the provider\'s precision (never rounded); '
              f'events whose price has not come are counted, never guessed.</p></header>')
    nav = "<nav>" + "".join(f'<a href="#{anchor}">{_e(label)}</a>' for anchor, label in (
        ("daily-cost", "Daily cost"), ("cycle", "Cycle"), ("top-agents", "Agents"),
        ("top-conversations", "Conversations"), ("anomalies", "Anomalies"), ("coverage", "Coverage"),
        ("pending", "Pending prices"))) + "</nav>"
    return (f"{head}<body>{header}<main>{_cards(data)}{nav}{''.join(sections)}"
            f'<p class="note">Generated from the marts (fct_daily_usage, fct_usage_events, fct_cycle_usage, '
            f'dim_billing_cycles, fct_calls, fct_usage_anomalies, fct_coverage_daily). See docs/report.md.</p>'
            f"</main></body></html>\n")


def _cards(data: ReportData) -> str:
    window_cost = _sum(d.cost_usd for d in data.daily)
    unpriced = sum(d.pending_events + d.expired_events for d in data.daily)
    to_date = _sum(c.total("to_date_usd") for c in data.cycles)
    open_problems = sum(n for (severity, _), n in data.anomaly_counts.items() if severity in ("error", "warn"))
    coverage = "not measured" if data.coverage is None else \
        f"{data.coverage.problem_count} warn/error row(s)" if data.coverage.problem_count else "no problems"
    cards = [("Cost in the window", money(window_cost), "window-cost"),
             ("Cycle to date" if data.client else "Cycles to date, all clients", money(to_date), "cycle-to-date"),
             ("Events not priced yet", str(unpriced), "unpriced"),
             ("Open anomalies (error/warn)", str(open_problems), "open-anomalies"),
             ("Coverage", coverage, "coverage")]
    return '<div class="cards">' + "".join(
        f'<div class="card" data-card="{key}">{_e(label)}<b>{_e(value)}</b></div>' for label, value, key in cards
    ) + "</div>"


def _clients_section(data: ReportData, names: Mapping[str, str], links: Mapping[str, str]) -> str:
    rows = []
    for total in data.client_totals:
        link = links.get(total.client_id)
        name = _e(names.get(total.client_id, total.client_id))
        cell = f'<a href="{_e(link)}">{name}</a>' if link else name
        rows.append(f'<tr data-client="{_e(total.client_id)}"><td>{_e(total.client_id)}</td><td>{cell}</td>'
                    f'{_money_cell(total.cost_usd, client=total.client_id, field="window_cost")}'
                    f'{_num_cell(total.events)}{_num_cell(total.unpriced_events)}</tr>')
    listed = {t.client_id for t in data.client_totals}
    for client in data.clients:
        if client.client_id not in listed and client.client_id in links:
            rows.append(f'<tr data-client="{_e(client.client_id)}"><td>{_e(client.client_id)}</td>'
                        f'<td><a href="{_e(links[client.client_id])}">{_e(client.label)}</a></td>'
                        f'<td class="money">no usage</td><td class="num">0</td><td class="num">0</td></tr>')
    return ('<section id="clients"><h2>Clients</h2><p class="note">Each client\'s own page holds its rows '
            f'only. "{UNATTRIBUTED}" is usage no client could be found for.</p>'
            + _table(("Client id", "Client", "Cost in the window", "Events", "Not priced yet"), rows, 2)
            + "</section>")


def _daily_section(data: ReportData) -> str:
    providers = sorted({d.provider for d in data.daily})
    by_day: dict[date, dict[str, Decimal]] = {}
    unpriced: dict[date, int] = {}
    for d in data.daily:
        if d.cost_usd is not None:
            by_day.setdefault(d.usage_date, {})[d.provider] = d.cost_usd
        unpriced[d.usage_date] = unpriced.get(d.usage_date, 0) + d.pending_events + d.expired_events
    stacks = [DayStack(day, by_day.get(day, {}), unpriced.get(day, 0)) for day in data.days]
    chart = daily_cost_chart(stacks, providers, f"Cost per provider per UTC day, {data.window_start} to "
                                                f"{data.window_end}")
    cells = {(d.usage_date, d.provider): d for d in data.daily}
    rows = []
    for day in data.days:
        if day not in unpriced:
            continue
        row = [f"<td>{day}</td>"]
        for provider in providers:
            cell = cells.get((day, provider))
            row.append(_money_cell(cell.cost_usd if cell else None, day=day.isoformat(), provider=provider)
                       if cell else '<td class="money">—</td>')
        row.append(_money_cell(_sum(by_day.get(day, {}).values()), day=day.isoformat(), provider="total"))
        row.append(_num_cell(unpriced[day]))
        rows.append(f'<tr data-day="{day}">{"".join(row)}</tr>')
    table = _table(("UTC day", *providers, "Total", "Not priced yet"), rows, 1)
    return ('<section id="daily-cost"><h2>Cost per provider per day</h2>' + chart
            + '<p class="note">Settled costs only: a day marked ▼ has events whose price has not come yet '
              '(pending) or never came (expired), counted in the table.</p>'
            + f"<details><summary>Table</summary>{table}</details></section>")


def _cycle_section(data: ReportData, names: Mapping[str, str]) -> str:
    agency = data.client is None
    if not data.cycles:
        return ('<section id="cycle"><h2>Cycle to date against the previous cycle</h2>'
                '<p class="note">No billing cycle holds this date.</p></section>')
    if agency:
        groups = [BarGroup(names.get(c.client_id, c.client_id),
                           (c.total("to_date_usd"), c.total("previous_same_point_usd"),
                            c.total("previous_total_usd"))) for c in data.cycles]
    else:
        cycle = data.cycles[0]
        groups = [BarGroup(p.provider, (p.to_date_usd, p.previous_same_point_usd, p.previous_total_usd))
                  for p in cycle.providers]
    chart = grouped_bar_chart("cycle-comparison", groups, CYCLE_SERIES,
                              "This billing cycle to date against the previous cycle")
    rows = [row for cycle in data.cycles for row in _cycle_rows(cycle, names, agency)]
    table = _table(("Client" if agency else "Provider", "Cycle (local dates)", "Status", "To date",
                    "Not priced yet", "Previous, same point", "Change", "Previous, whole"), rows, 3)
    return ('<section id="cycle"><h2>Cycle to date against the previous cycle</h2>' + chart
            + '<p class="note">To date: from the start of the client\'s current billing cycle up to the report\'s '
              '"as of". Same point: the previous cycle over the same elapsed time from its start. Statuses are '
              'fct_cycle_usage\'s (open, settling, closed).</p>' + table + "</section>")


def _none(events: int) -> str:
    """What a missing amount means: events without a price, or no event at all."""
    return "unpriced" if events else NO_USAGE


def _change(now: Decimal | None, before: Decimal | None, unpriced: int) -> str:
    """The change against the previous cycle at the same point; none while prices are missing from `now`."""
    if unpriced:
        return "prices pending"
    if now is None or before is None or before == 0:
        return "—"
    change = (now - before) / before * 100
    return f"{change:+.1f} %"


def _cycle_figures(client: str, provider: str, to_date: Decimal | None, events: int, unpriced: int,
                   same: Decimal | None, whole: Decimal | None) -> str:
    return (_money_cell(to_date, _none(events), client=client, provider=provider, field="to_date")
            + _num_cell(unpriced)
            + _money_cell(same, NO_USAGE, client=client, provider=provider, field="previous_same_point")
            + f'<td class="num">{_e(_change(to_date, same, unpriced))}</td>'
            + _money_cell(whole, NO_USAGE, client=client, provider=provider, field="previous_total"))


def _cycle_rows(cycle: ClientCycle, names: Mapping[str, str], agency: bool) -> list[str]:
    """Per provider on a client's page, then the cycle's total (the only row per client on the agency's)."""
    period = f"{cycle.local_start_date} to {cycle.local_end_date} ({cycle.billing_timezone})"
    rows = []
    for p in [] if agency else cycle.providers:
        status = f'<span class="badge {STATUS_CLASS.get(p.status, "")}">{_e(p.status or "not stored yet")}</span>' \
            + (f'<br><span class="note">{_e(p.status_reason)}</span>' if p.status_reason else "")
        rows.append(f'<tr data-client="{_e(cycle.client_id)}" data-provider="{_e(p.provider)}">'
                    f"<td>{_e(p.provider)}</td><td>{_e(period)}</td><td>{status}</td>"
                    + _cycle_figures(cycle.client_id, p.provider, p.to_date_usd, p.to_date_events, p.to_date_unpriced,
                                     p.previous_same_point_usd, p.previous_total_usd) + "</tr>")
    statuses = sorted({p.status for p in cycle.providers if p.status})
    adjustments = "" if cycle.adjustments_billed_in_usd is None else \
        f'<br><span class="note">adjustments billed into this cycle: {_e(money(cycle.adjustments_billed_in_usd))}' \
        f'</span>'
    label = names.get(cycle.client_id, cycle.client_id) if agency else "all providers"
    rows.append(f'<tr data-client="{_e(cycle.client_id)}" data-provider="all"><td><b>{_e(label)}</b></td>'
                f"<td>{_e(period)}</td><td>{_e(', '.join(statuses) or 'not stored yet')}{adjustments}</td>"
                + _cycle_figures(cycle.client_id, "all", cycle.total("to_date_usd"),
                                 sum(p.to_date_events for p in cycle.providers),
                                 sum(p.to_date_unpriced for p in cycle.providers),
                                 cycle.total("previous_same_point_usd"), cycle.total("previous_total_usd"))
                + "</tr>")
    return rows


def _agent_label(agent_id: str | None, agent_name: str | None) -> str:
    if agent_id is None:
        return "no agent (client-level resources)"
    return f"{agent_name} ({agent_id})" if agent_name else agent_id


def _agents_section(data: ReportData, names: Mapping[str, str]) -> str:
    agency = data.client is None
    groups = [BarGroup(a.agent_name or a.agent_id if a.agent_id else
                       f"{names.get(a.client_id, a.client_id)}: no agent" if agency else "no agent", (a.cost_usd,))
              for a in data.top_agents]
    chart = grouped_bar_chart("top-agents", groups, ("cost in the window",),
                              f"Top agents by cost, {data.window_start} to {data.window_end}")
    rows = [f'<tr data-client="{_e(a.client_id)}" data-agent="{_e(a.agent_id or "")}">'
            + (f"<td>{_e(names.get(a.client_id, a.client_id))}</td>" if agency else "")
            + f"<td>{_e(_agent_label(a.agent_id, a.agent_name))}</td>"
            + _money_cell(a.cost_usd, agent=a.agent_id or "", field="agent_cost")
            + _num_cell(a.events) + _num_cell(a.unpriced_events) + "</tr>"
            for a in data.top_agents]
    head = (*(("Client",) if agency else ()), "Agent", "Cost", "Events", "Not priced yet")
    return ('<section id="top-agents"><h2>Top agents by cost</h2>' + chart
            + _table(head, rows, 2 if agency else 1) + "</section>")


def _conversations_section(data: ReportData, names: Mapping[str, str]) -> str:
    agency = data.client is None
    rows = [f'<tr data-conversation="{_e(c.conversation_id)}" data-client="{_e(c.client_id)}">'
            + f"<td>{_e(c.conversation_id)}</td><td>{_utc(c.started_at)}</td>"
            + (f"<td>{_e(names.get(c.client_id, c.client_id))}</td>" if agency else "")
            + f"<td>{_e(_agent_label(c.agent_id, c.agent_name))}</td><td>{_e(c.link_status)}"
            + (' <span class="badge warn">price pending</span>' if c.price_pending else "") + "</td>"
            + _money_cell(c.retell_cost_usd, conversation=c.conversation_id, field="retell")
            + _money_cell(c.twilio_cost_usd, conversation=c.conversation_id, field="twilio")
            + _money_cell(c.total_cost_usd, conversation=c.conversation_id, field="total") + "</tr>"
            for c in data.top_conversations]
    head = ("Conversation", "Started", *(("Client",) if agency else ()), "Agent", "Link", "Retell (incl. LLM)",
            "Twilio", "Total")
    body = _table(head, rows, 6 if agency else 5) if rows else \
        '<p class="note">No conversation started in this window.</p>'
    return ('<section id="top-conversations"><h2>Top conversations by cost</h2>'
            '<p class="note">A conversation is a Retell call with its Twilio leg (fct_calls); the LLM cost is '
            'inside Retell\'s.</p>' + body + "</section>")


def _anomalies_section(data: ReportData, names: Mapping[str, str]) -> str:
    agency = data.client is None
    counts = "".join(f'<span class="badge {_e(severity)}" data-severity="{_e(severity)}" data-kind="{_e(kind)}" '
                     f'data-count="{count}">{_e(severity)} {_e(kind)}: {count}</span> '
                     for (severity, kind), count in data.anomaly_counts.items())
    rows = [f'<tr data-anomaly="{_e(a.kind)}" data-severity="{_e(a.severity)}" data-day="{a.usage_date}">'
            f'<td><span class="badge {_e(a.severity)}">{_e(a.severity)}</span></td><td>{_e(a.kind)}</td>'
            f"<td>{a.usage_date}</td>"
            + (f"<td>{_e(names.get(a.client_id, a.client_id) if a.client_id else 'all clients')}</td>"
               if agency else "")
            + f"<td>{_e(a.provider or '—')}</td><td>{_e(a.metric or '—')}</td><td>{_e(a.measure)}</td>"
            + f'{_num_cell(a.observed)}{_num_cell(a.expected)}<td class="explain">{_e(a.explanation)}</td></tr>'
            for a in data.anomalies]
    head = ("Severity", "Kind", "Day", *(("Client",) if agency else ()), "Provider", "Metric", "Measure",
            "Observed", "Expected", "Explanation")
    shown = sum(n for (severity, _), n in data.anomaly_counts.items() if severity in ("error", "warn"))
    more = f'<p class="note">{shown - len(rows)} more not listed.</p>' if shown > len(rows) else ""
    body = (_table(head, rows) + more) if rows else '<p class="note">No open error or warning.</p>'
    return ('<section id="anomalies"><h2>Open anomalies</h2><p class="note">Findings of the latest model build '
            '(fct_usage_anomalies) on days of this window; info findings are counted, not listed.</p>'
            f'<p>{counts or "No open finding."}</p>{body}</section>')


def _coverage_section(data: ReportData, names: Mapping[str, str]) -> str:
    coverage = data.coverage
    if coverage is None:
        return ('<section id="coverage" data-coverage="not-measured"><h2>Coverage</h2>'
                '<p class="note">Coverage not measured: this warehouse has no marts.fct_coverage_daily, the '
                'comparison of what we collected with the providers\' own totals.</p></section>')
    counts = "".join(f'<span class="badge {_e(status)}" data-status="{_e(status)}" data-count="{count}">'
                     f"{_e(status)}: {count}</span> " for status, count in coverage.status_counts.items())
    latest = "".join(f'<li data-provider="{_e(provider)}" data-status="{_e(status)}">{_e(provider)}: '
                     f'<span class="badge {_e(status)}">{_e(status)}</span> on {day}</li>'
                     for provider, (day, status) in sorted(coverage.latest_by_provider.items()))
    rows = [f'<tr data-coverage-status="{_e(r.status)}" data-provider="{_e(r.provider)}" data-day="{r.usage_date}">'
            f'<td>{r.usage_date}</td><td>{_e(r.provider)}</td><td>{_e(r.account or "—")}</td>'
            + (f"<td>{_e(names.get(r.client_id, r.client_id) if r.client_id else '—')}</td>"
               if data.client is None else "")
            + f"<td>{_e(r.category)}</td><td>{_e(r.measure)}</td>{_num_cell(r.ours)}{_num_cell(r.theirs)}"
            + f'{_num_cell(r.ratio)}<td><span class="badge {_e(r.status)}">{_e(r.status)}</span></td>'
            + f"<td>{_e(r.reason)}</td></tr>"
            for r in coverage.problems]
    head = ("Day", "Provider", "Account", *(("Client",) if data.client is None else ()), "Category", "Measure",
            "Ours", "Theirs", "Ratio", "Status", "Reason")
    more = f'<p class="note">{coverage.problem_count - len(rows)} more not listed.</p>' \
        if coverage.problem_count > len(rows) else ""
    body = (_table(head, rows) + more) if rows else '<p class="note">No warn or error row in this window.</p>'
    if coverage.provider_wide:
        body += ('<p>Checks of whole provider accounts (not broken down by client) on days this client used '
                 'them:</p><ul>'
                 + "".join(f'<li data-provider-wide="{_e(status)}" data-provider="{_e(provider)}" data-day="{day}">'
                           f'{day} {_e(provider)} {_e(category)}: <span class="badge {_e(status)}">{_e(status)}'
                           f"</span></li>" for day, provider, category, status in coverage.provider_wide)
                 + "</ul>")
    if not coverage.status_counts and not coverage.provider_wide:
        return ('<section id="coverage" data-coverage="empty"><h2>Coverage</h2><p class="note">No coverage row '
                'in this window.</p></section>')
    return ('<section id="coverage" data-coverage="measured"><h2>Coverage</h2><p class="note">What we collected '
            'against the providers\' own totals (fct_coverage_daily), rows in this window:</p>'
            f"<p>{counts}</p><p>Latest compared day per provider:</p><ul>{latest}</ul>{body}</section>")


def _pending_section(data: ReportData, names: Mapping[str, str]) -> str:
    agency = data.client is None
    rows = [f'<tr data-provider="{_e(p.provider)}" data-client="{_e(p.client_id)}" data-status="{_e(p.cost_status)}">'
            f"<td>{_e(p.provider)}</td>"
            + (f"<td>{_e(names.get(p.client_id, p.client_id))}</td>" if agency else "")
            + f'<td><span class="badge {"warn" if p.cost_status == "pending" else "error"}">{_e(p.cost_status)}'
            + f'</span></td><td class="num" data-events="{p.events}">{p.events}</td>'
            + f"<td>{p.first_day}</td><td>{p.last_day}</td></tr>"
            for p in data.pending]
    head = ("Provider", *(("Client",) if agency else ()), "Price", "Events", "First day", "Last day")
    body = _table(head, rows) if rows else '<p class="note">Every event up to this date is priced.</p>'
    return ('<section id="pending"><h2>Pending prices</h2><p class="note">Events the provider has not priced '
            'yet (pending: fetched again until the price comes) or never priced (expired). Their cost is in no '
            'figure above until it settles.</p>' + body + "</section>")
