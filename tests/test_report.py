"""The usage report: built by the usage_report asset after the daily rollup of a real pipeline run on the
sandbox; every figure checked against the marts, a client's page holding nothing of another client's, and
both kinds of page drawn by Debian's headless Chromium without a console error, a request or a missing chart."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from dagster import AssetKey, DagsterInstance, SkipReason, build_sensor_context

from billing_usage.settings import DATABASE_URL_ENV, get_settings
from cli import report as report_cli
from dagster_project.definitions import defs
from dagster_project.report import REPORT_MARTS, report_after_rollup_sensor
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.usage import client_day
from tests.conftest import TEST_END_DATE, pipeline_environment, run_pipeline
from usage_report.charts import money
from usage_report.data import Client, ReportData
from usage_report.page import render_page
from usage_report.writer import REPORT_DIR_ENV

pytestmark = pytest.mark.integration

# 40 days, so the previous cycles hold data; a Retell agent the directory does not know on the day before
# the last (an unattributed share); the last day's Retell and Twilio prices held back (pending); two SMS of
# the first client left out of Twilio's listings five days before the end (a coverage gap).
CONFIG = SandboxConfig(seed=7, clients=3, agents_per_client=2, days=40, calls_per_agent_per_day=2,
                       end_date=TEST_END_DATE,
                       scenarios=(("unregistered_agent", 1, (TEST_END_DATE - timedelta(days=1)).isoformat(), 3),))
# five days before the end or, if the first client sent no SMS that day, the latest earlier day it did
GAP_DAY = next(day for day in (TEST_END_DATE - timedelta(days=n) for n in range(5, 29))
               if client_day(CONFIG, 0, day).twilio_messages)
AS_OF = datetime.combine(TEST_END_DATE + timedelta(days=1), time.min, UTC)  # the end of the rollup's day
WINDOW_START, WINDOW_END = TEST_END_DATE - timedelta(days=29), TEST_END_DATE
CHARTS = ("daily-cost", "cycle-comparison", "top-agents")
CHROMIUM = Path("/usr/bin/chromium")
CLIENT = "client_002"  # the client whose page the browser draws


def _query(warehouse, sql: str, params=None) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class _DataElements(HTMLParser):
    """Every element carrying data-* attributes, with its attributes and text."""

    def __init__(self):
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if any(name.startswith("data-") for name in attributes):
            element = {"tag": tag, "attrs": attributes, "text": ""}
            self.elements.append(element)
            self._open.append(element)

    def handle_startendtag(self, tag, attrs):
        attributes = dict(attrs)
        if any(name.startswith("data-") for name in attributes):
            self.elements.append({"tag": tag, "attrs": attributes, "text": ""})

    def handle_endtag(self, tag):
        if self._open and self._open[-1]["tag"] == tag:
            self._open.pop()

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data


def _elements(html: str) -> list[dict]:
    parser = _DataElements()
    parser.feed(html)
    return parser.elements


def _find(elements: list[dict], tag: str | None = None, **attrs: str) -> list[dict]:
    wanted = {f"data-{name.replace('_', '-')}": value for name, value in attrs.items()}
    return [e for e in elements if (tag is None or e["tag"] == tag)
            and all(e["attrs"].get(name) == value for name, value in wanted.items())]


def _value(element: dict) -> Decimal | None:
    value = element["attrs"].get("data-value")
    return None if value is None else Decimal(value)


def _section(html: str, section_id: str) -> str:
    start = html.index(f'<section id="{section_id}"')
    return html[start:html.index("</section>", start)]


@pytest.fixture(scope="module")
def built(database_factory, tmp_path_factory):
    """The pipeline as production runs it (the 10-minute run of today, then the 00:15 rollup of the last
    day), the sensor's answer to those builds, and the report job it asks for."""
    warehouse = database_factory("report")
    sandbox = start_in_thread(CONFIG)
    report_dir = tmp_path_factory.mktemp("reports")
    instance = DagsterInstance.ephemeral()
    try:
        with pipeline_environment(warehouse, sandbox, tmp_path_factory.mktemp("dir") / "directory.yaml"), \
                pytest.MonkeyPatch.context() as env:
            env.setenv(REPORT_DIR_ENV, str(report_dir))
            requests.post(f"{sandbox.base_url}/_sandbox/pending", json={"days": 1}, timeout=5).raise_for_status()
            hidden = [message["sid"] for message in client_day(CONFIG, 0, GAP_DAY).twilio_messages][:2]
            assert hidden
            requests.post(f"{sandbox.base_url}/_sandbox/hidden", json={"ids": hidden}, timeout=5).raise_for_status()
            today_run = run_pipeline(instance)
            rollup = run_pipeline(instance, TEST_END_DATE.isoformat())
            context = build_sensor_context(instance=instance)
            evaluation = report_after_rollup_sensor(context)
            again = report_after_rollup_sensor(build_sensor_context(instance=instance, cursor=evaluation.cursor))
            requests_made = evaluation.run_requests
            report_run = defs.resolve_job_def("write_usage_report").execute_in_process(
                instance=instance, partition_key=requests_made[0].partition_key)
    finally:
        sandbox.shutdown()
    assert today_run.success and rollup.success, (today_run.summary_lines(), rollup.summary_lines())
    assert report_run.success
    (materialization,) = report_run.get_asset_materialization_events()
    directory = report_dir / TEST_END_DATE.isoformat()
    clients = [row[0] for row in _query(warehouse, "select client_id from marts.dim_clients where is_current "
                                                   "order by 1")]
    return {"warehouse": warehouse, "report_dir": report_dir, "directory": directory, "rollup": rollup,
            "requests": requests_made, "again": again, "materialization": materialization.materialization,
            "clients": clients,
            "agency": (directory / "agency.html").read_text(),
            "pages": {c: (directory / "clients" / f"{c}.html").read_text() for c in clients}}


# --- the asset and its sensor --------------------------------------------------------------------------


def test_the_rollup_build_and_only_it_asks_for_the_report_of_its_day(built):
    (request,) = built["requests"]  # the build of today's partition asks for nothing
    assert request.partition_key == TEST_END_DATE.isoformat()
    assert request.run_key == f"report-after-{built['rollup'].build.run_id}"
    assert isinstance(built["again"], SkipReason)


def test_the_asset_writes_the_pages_and_names_them_in_its_metadata(built):
    metadata = built["materialization"].metadata
    assert built["materialization"].partition == TEST_END_DATE.isoformat()
    assert metadata["path"].value == str(built["directory"] / "agency.html")
    assert metadata["client_pages"].value == len(built["clients"]) == 3
    assert metadata["window"].value == f"{WINDOW_START} to {WINDOW_END}"
    assert metadata["as_of"].value == AS_OF.isoformat()
    assert sorted(p.name for p in (built["directory"] / "clients").iterdir()) == [f"{c}.html" for c in built["clients"]]


def test_the_asset_reads_only_marts_the_build_makes():
    graph = defs.resolve_asset_graph()
    parents = graph.get(AssetKey("usage_report")).parent_keys
    assert parents == {AssetKey(["marts", name]) for name in REPORT_MARTS}
    assert all(graph.get(key).is_materializable for key in parents)


# --- figures against the marts ---------------------------------------------------------------------------


def _daily_expected(warehouse, client_id: str | None) -> dict[tuple[str, str], Decimal | None]:
    rows = _query(warehouse, """
        select usage_date::text, provider, sum(cost_usd) from marts.fct_daily_usage
        where usage_date between %s and %s and (%s::text is null or client_id = %s)
        group by 1, 2""", (WINDOW_START, WINDOW_END, client_id, client_id))
    return {(day, provider): cost for day, provider, cost in rows}


@pytest.mark.parametrize("scope", [None, CLIENT])
def test_cost_per_provider_per_day_is_fct_daily_usage(built, scope):
    expected = _daily_expected(built["warehouse"], scope)
    elements = _elements(built["pages"][scope] if scope else built["agency"])
    cells = {(e["attrs"]["data-day"], e["attrs"]["data-provider"]): _value(e)
             for e in _find(elements, "td") if "data-day" in e["attrs"] and "data-provider" in e["attrs"]
             and e["attrs"]["data-provider"] != "total"}
    assert cells == expected
    assert None in expected.values()  # the held-back day: unpriced, not zero
    marks = {(e["attrs"]["data-day"], e["attrs"]["data-provider"]): _value(e)
             for e in _find(elements, "rect") if "mark" in e["attrs"].get("class", "")
             and "data-day" in e["attrs"]}
    assert marks == {key: cost for key, cost in expected.items() if cost}
    pending_days = {e["attrs"]["data-day"] for e in _find(elements, "path") if "data-day" in e["attrs"]}
    assert pending_days == {TEST_END_DATE.isoformat()}
    window_cost = sum((cost for cost in expected.values() if cost is not None), Decimal(0))
    (card,) = _find(elements, "div", card="window-cost")
    assert card["text"].endswith(money(window_cost))


def _current_and_previous(warehouse) -> dict[str, tuple]:
    return {client: (current, previous, start, previous_start) for client, current, previous, start, previous_start
            in _query(warehouse, """
                select c.client_id, c.cycle_id, p.cycle_id, c.cycle_start, p.cycle_start
                from marts.dim_billing_cycles c
                left join marts.dim_billing_cycles p on p.client_id = c.client_id and p.cycle_end = c.cycle_start
                where c.cycle_start < %s and c.cycle_end >= %s""", (AS_OF, AS_OF))}


def _cycle_cost(warehouse, cycle_id: str) -> dict[str, Decimal | None]:
    """Per provider: fct_cycle_usage plus the adjustments to that cycle (Σ cycles + Σ adjustments = Σ events)."""
    rows = _query(warehouse, """
        select u.provider, sum(u.cost_usd) + coalesce((select sum(a.delta_cost_usd) from marts.fct_cycle_adjustments a
                                                      where a.cycle_id = u.cycle_id and a.provider = u.provider), 0)
        from marts.fct_cycle_usage u where u.cycle_id = %s group by u.cycle_id, u.provider""", (cycle_id,))
    return dict(rows)


def _total(values) -> Decimal | None:
    present = [v for v in values if v is not None]
    return sum(present, Decimal(0)) if present else None


def test_cycle_to_date_against_the_previous_cycle_is_fct_cycle_usage(built):
    warehouse = built["warehouse"]
    assert _query(warehouse, "select max(occurred_at) < %s from marts.fct_usage_events", (AS_OF,)) == [(True,)]
    cycles = _current_and_previous(warehouse)
    assert set(cycles) == set(built["clients"])
    agency = _elements(built["agency"])
    compared = 0
    for client, (current, previous, start, previous_start) in cycles.items():
        to_date = _cycle_cost(warehouse, current)
        whole = _cycle_cost(warehouse, previous)
        same_point = dict(_query(warehouse, """
            select provider, sum(cost_usd) from marts.fct_usage_events
            where client_id = %s and occurred_at >= %s and occurred_at < %s group by provider""",
                                 (client, previous_start, previous_start + (AS_OF - start))))
        page = _elements(built["pages"][client])
        for elements in (agency, page):
            row = {e["attrs"]["data-field"]: _value(e) for e in _find(elements, "td", client=client, provider="all")}
            assert row == {"to_date": _total(to_date.values()), "previous_same_point": _total(same_point.values()),
                           "previous_total": _total(whole.values())}, client
        for provider in to_date.keys() | whole.keys():
            row = {e["attrs"]["data-field"]: _value(e) for e in _find(page, "td", provider=provider)
                   if e["attrs"].get("data-field") in ("to_date", "previous_same_point", "previous_total")}
            assert row == {"to_date": to_date.get(provider), "previous_same_point": same_point.get(provider),
                           "previous_total": whole.get(provider)}, (client, provider)
        compared += bool(same_point) and bool(whole)
    assert compared >= 2  # previous cycles with data at the same point and in full
    # the last day's held-back prices are in CLIENT's cycle to date: no change is computed from a partial sum
    (row,) = _find(_elements(built["pages"][CLIENT]), "tr", client=CLIENT, provider="all")
    assert "prices pending" in row["text"] and "%" not in row["text"]


def test_top_agents_and_conversations_are_the_marts(built):
    warehouse = built["warehouse"]
    for scope, html in ((None, built["agency"]), (CLIENT, built["pages"][CLIENT])):
        agents = _query(warehouse, """
            select coalesce(agent_id, ''), sum(cost_usd) from marts.fct_daily_usage
            where usage_date between %s and %s and (%s::text is null or client_id = %s)
            group by client_id, agent_id order by sum(cost_usd) desc nulls last, client_id, agent_id nulls last
            limit 10""", (WINDOW_START, WINDOW_END, scope, scope))
        elements = _elements(_section(html, "top-agents"))
        assert [(e["attrs"]["data-agent"], _value(e)) for e in _find(elements, "td", field="agent_cost")] == agents
        calls = _query(warehouse, """
            select conversation_id, total_cost_usd from marts.fct_calls
            where started_at >= %s and started_at < %s and (%s::text is null or client_id = %s)
            order by total_cost_usd desc, started_at, conversation_id limit 10""",
                       (datetime.combine(WINDOW_START, time.min, UTC), AS_OF, scope, scope))
        elements = _elements(_section(html, "top-conversations"))
        assert [(e["attrs"]["data-conversation"], _value(e)) for e in _find(elements, "td", field="total")] == calls
        assert len(calls) == 10
        chart_marks = [e for e in _elements(_section(html, "top-agents")) if e["tag"] == "rect"
                       and "mark" in e["attrs"].get("class", "")]
        assert [_value(e) for e in chart_marks] == [cost for _, cost in agents]


def test_open_anomalies_are_fct_usage_anomalies(built):
    warehouse = built["warehouse"]
    for scope, html in ((None, built["agency"]), *((c, built["pages"][c]) for c in built["clients"])):
        open_findings = _query(warehouse, """
            select severity, kind, usage_date::text from marts.fct_usage_anomalies
            where last_seen_at = (select max(last_seen_at) from marts.fct_usage_anomalies)
              and usage_date between %s and %s and (%s::text is null or client_id = %s)""",
                               (WINDOW_START, WINDOW_END, scope, scope))
        elements = _elements(_section(html, "anomalies"))
        counts = {(e["attrs"]["data-severity"], e["attrs"]["data-kind"]): int(e["attrs"]["data-count"])
                  for e in _find(elements, "span") if "data-count" in e["attrs"]}
        expected_counts: dict[tuple[str, str], int] = {}
        for severity, kind, _ in open_findings:
            expected_counts[(severity, kind)] = expected_counts.get((severity, kind), 0) + 1
        assert counts == expected_counts, scope
        listed = sorted((e["attrs"]["data-severity"], e["attrs"]["data-anomaly"], e["attrs"]["data-day"])
                        for e in _find(elements, "tr") if "data-anomaly" in e["attrs"])
        assert listed == sorted(f for f in open_findings if f[0] in ("error", "warn")), scope
    agency_rows = _find(_elements(_section(built["agency"], "anomalies")), "tr", anomaly="unattributed_share")
    assert [(row["attrs"]["data-severity"], row["attrs"]["data-day"]) for row in agency_rows] == \
        [("error", (TEST_END_DATE - timedelta(days=1)).isoformat())]


def test_pending_prices_are_the_events_and_the_aggregates(built):
    warehouse = built["warehouse"]
    for scope, html in ((None, built["agency"]), (CLIENT, built["pages"][CLIENT])):
        expected = _query(warehouse, """
            select provider, client_id, cost_status, count(*) from marts.fct_usage_events
            where cost_status <> 'settled' and (%s::text is null or client_id = %s) group by 1, 2, 3""",
                          (scope, scope))
        rows = [(e["attrs"]["data-provider"], e["attrs"]["data-client"], e["attrs"]["data-status"])
                for e in _find(_elements(_section(html, "pending")), "tr") if "data-status" in e["attrs"]]
        events = [int(e["attrs"]["data-events"]) for e in _elements(_section(html, "pending"))
                  if "data-events" in e["attrs"]]
        assert sorted(zip(rows, events, strict=True)) == sorted(((p, c, s), n) for p, c, s, n in expected)
        (aggregate,) = _query(warehouse, """
            select sum(pending_events + expired_events) from marts.fct_daily_usage
            where (%s::text is null or client_id = %s)""", (scope, scope))[0]
        assert sum(events) == aggregate > 0


def test_coverage_is_fct_coverage_daily(built):
    warehouse = built["warehouse"]
    (relation,) = _query(warehouse, "select to_regclass('marts.fct_coverage_daily')")[0]
    assert relation is not None
    for scope, html in ((None, built["agency"]), *((c, built["pages"][c]) for c in built["clients"])):
        section = _section(html, "coverage")
        expected = dict(_query(warehouse, """
            select status, count(*) from marts.fct_coverage_daily
            where usage_date between %s and %s and (%s::text is null or client_id = %s) group by 1""",
                               (WINDOW_START, WINDOW_END, scope, scope)))
        counts = {e["attrs"]["data-status"]: int(e["attrs"]["data-count"]) for e in _elements(section)
                  if "data-count" in e["attrs"]}
        assert counts == expected, scope
        problems = _query(warehouse, """
            select usage_date::text, provider, status from marts.fct_coverage_daily
            where usage_date between %s and %s and (%s::text is null or client_id = %s)
              and status in ('warn', 'error')""", (WINDOW_START, WINDOW_END, scope, scope))
        listed = [(e["attrs"]["data-day"], e["attrs"]["data-provider"], e["attrs"]["data-coverage-status"])
                  for e in _elements(section) if "data-coverage-status" in e["attrs"]]
        assert sorted(listed) == sorted(problems), scope
    # the SMS left out of the listings: an error on the first client's page and the agency's, no other
    gap = ("twilio", GAP_DAY.isoformat(), "error")
    for scope, html in ((None, built["agency"]), *((c, built["pages"][c]) for c in built["clients"])):
        rows = {(e["attrs"]["data-provider"], e["attrs"]["data-day"], e["attrs"]["data-coverage-status"])
                for e in _elements(_section(html, "coverage")) if "data-coverage-status" in e["attrs"]}
        assert (gap in rows) == (scope in (None, built["clients"][0])), scope


# --- a client's page is that client's alone ------------------------------------------------------------


def test_a_client_page_holds_no_other_clients_data(built):
    warehouse = built["warehouse"]
    names = dict(_query(warehouse, "select client_id, client_name from marts.dim_clients where is_current"))
    agents = _query(warehouse, "select client_id, agent_id, agent_name from marts.dim_agents")
    conversations = _query(warehouse, "select client_id, conversation_id from marts.fct_calls where started_at >= %s",
                           (datetime.combine(WINDOW_START, time.min, UTC),))
    for client, html in built["pages"].items():
        others = [c for c in built["clients"] if c != client]
        foreign = {"unattributed", *others, *(names[c] for c in others),
                   *(value for owner, agent_id, agent_name in agents if owner != client
                     for value in (agent_id, agent_name)),
                   *(conversation for owner, conversation in conversations if owner != client)}
        assert not [value for value in foreign if value and value in html], client
        assert {e["attrs"]["data-client"] for e in _elements(html) if "data-client" in e["attrs"]} == {client}
        assert names[client] in html
        assert f"clients/{client}.html" in built["agency"]


# --- in the browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed from the distribution's package when missing (root only)."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0:
            pytest.fail(f"{CHROMIUM} is missing and only root can install it: apt-get install -y chromium")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True,
                                 env=environment)
        if install.returncode != 0:  # a fresh image has no package lists yet
            subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=environment, check=True)
            install = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True,
                                     env=environment)
        assert install.returncode == 0, install.stderr[-2000:]
    assert CHROMIUM.exists()
    return CHROMIUM


@pytest.mark.parametrize("scope", ["agency", CLIENT])
def test_the_page_draws_in_headless_chromium(built, chromium, scope, capsys, record_property):
    from playwright.sync_api import sync_playwright

    path = built["directory"] / ("agency.html" if scope == "agency" else f"clients/{scope}.html")
    expected_daily_marks = sum(1 for cost in _daily_expected(built["warehouse"], None if scope == "agency"
                                                             else scope).values() if cost)
    screenshots = get_settings().local_dir / "reports" / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    screenshot = screenshots / f"{scope}.png"
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
                    if message.type in ("error", "warning", "assert") else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
            page.on("request", lambda request: problems.append(f"request: {request.url}")
                    if request.url != path.as_uri() else None)
            response = page.goto(path.as_uri(), wait_until="load")
            assert response is None or response.ok
            for chart in CHARTS:
                svg = page.locator(f'svg[data-chart="{chart}"]')
                assert svg.count() == 1, f"missing chart {chart}"
                assert svg.is_visible(), f"chart {chart} is not drawn"
                marks = svg.locator(".mark")
                assert marks.count() > 0, f"chart {chart} has no marks"
                boxes = [marks.nth(n).bounding_box() for n in range(marks.count())]
                assert all(box and box["width"] > 0 and box["height"] > 0 for box in boxes), chart
            assert page.locator('svg[data-chart="daily-cost"] rect.mark').count() == expected_daily_marks
            assert page.title().startswith("Usage report")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert screenshot.stat().st_size > 10_000
    record_property("screenshot", str(screenshot))
    with capsys.disabled():
        print(f"\nscreenshot of the {scope} page: {screenshot}")


# --- make report ---------------------------------------------------------------------------------------


def test_make_report_writes_the_same_pages_and_prints_their_paths(built, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DATABASE_URL_ENV, built["warehouse"].url)
    assert report_cli.main(["--out", str(tmp_path), "--as-of", AS_OF.isoformat()]) == 0
    printed = capsys.readouterr().out
    agency = tmp_path / TEST_END_DATE.isoformat() / "agency.html"
    assert str(agency) in printed
    assert all(str(tmp_path / TEST_END_DATE.isoformat() / "clients" / f"{c}.html") in printed
               for c in built["clients"])
    assert agency.read_text() == built["agency"]  # same marts, same instant: the same page, byte for byte


def test_an_unbuilt_warehouse_is_refused_with_the_reason(database_factory, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DATABASE_URL_ENV, database_factory("report_empty").url)
    assert report_cli.main(["--out", str(tmp_path), "--as-of", AS_OF.isoformat()]) == 2
    assert "build the models first" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_unknown_clients_and_bad_arguments_are_refused(built, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DATABASE_URL_ENV, built["warehouse"].url)
    assert report_cli.main(["--out", str(tmp_path), "--client", "client_999"]) == 2
    assert "unknown client id(s): client_999" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report_cli.main(["--days", "0"])


# --- escaping and money, without a warehouse -----------------------------------------------------------


def test_names_are_escaped_and_money_is_exact():
    hostile = Client("c<1>", '<script>alert("x")</script>')
    data = ReportData(client=hostile, as_of=AS_OF, window_start=WINDOW_START, window_end=WINDOW_END,
                      data_refreshed_at=None, clients=[hostile], client_totals=[], daily=[], cycles=[],
                      top_agents=[], top_conversations=[], anomalies=[], anomaly_counts={}, coverage=None,
                      pending=[])
    html = render_page(data)
    assert "<script" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert money(Decimal("1234.50000")) == "1,234.50 USD"
    assert money(Decimal("0.1123976")) == "0.1123976 USD"
    assert money(Decimal("0E-7")) == "0.00 USD"
    assert money(Decimal("-2.5")) == "-2.50 USD"


def test_a_client_page_shows_an_account_wide_coverage_error_without_its_figures(built, tmp_path, monkeypatch):
    """A row of an account that is no one client's (a Twilio master account) reaches a client's page as a
    status only, on a day the client used that provider: its figures are the whole account's."""
    warehouse = built["warehouse"]
    day = (TEST_END_DATE - timedelta(days=3)).isoformat()
    row = ("report-test-master", "twilio", "AC_master_of_the_report_test", day, "calls", "cost_usd",
           Decimal("987.654321"), Decimal("123.456789"), Decimal("8.0000"), "error", "excess")
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("""insert into marts.fct_coverage_daily (coverage_id, provider, account, client_id, usage_date,
                          category, measure, ours, theirs, ratio, status, reason)
                          values (%s, %s, %s, null, %s, %s, %s, %s, %s, %s, %s, %s)""", row)
    try:
        monkeypatch.setenv(DATABASE_URL_ENV, warehouse.url)
        assert report_cli.main(["--out", str(tmp_path), "--as-of", AS_OF.isoformat(), "--client", CLIENT]) == 0
        directory = tmp_path / TEST_END_DATE.isoformat()
        html = (directory / "clients" / f"{CLIENT}.html").read_text()
        agency = (directory / "agency.html").read_text()
    finally:
        with warehouse.connect() as connection, connection.cursor() as cursor:
            cursor.execute("delete from marts.fct_coverage_daily where coverage_id = %s", (row[0],))
    marks = [(e["attrs"]["data-provider"], e["attrs"]["data-day"], e["attrs"]["data-provider-wide"])
             for e in _elements(_section(html, "coverage")) if "data-provider-wide" in e["attrs"]]
    assert marks == [("twilio", day, "error")]
    assert not [value for value in ("AC_master_of_the_report_test", "987.654321", "123.456789") if value in html]
    assert "AC_master_of_the_report_test" in agency and "987.654321" in agency
