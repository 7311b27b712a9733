"""Late prices settle: a price still pending after the look-back is fetched again by id until it settles
or expires; a cycle with pending events stays settling, closes once they settle, and Σ cycles +
Σ adjustments = Σ events holds to the cent throughout."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import requests
from dagster import AssetCheckSeverity, DagsterInstance

from billing_usage.settings import NOW_ENV
from sandbox.agency import clients
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.totals import record_cost_usd
from sandbox.usage import client_day
from tests.conftest import TEST_END_DATE, TEST_NOW, pipeline_environment, run_pipeline

pytestmark = pytest.mark.integration
CONFIG = SandboxConfig(seed=21, clients=3, agents_per_client=2, days=5, calls_per_agent_per_day=4,
                       end_date=TEST_END_DATE)
GRACE = timedelta(hours=72)  # settling_grace_hours in dbt_project.yml
MAX_AGE = timedelta(days=35)  # pending_max_age_days


def _query(warehouse, sql: str, params=None) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _held_calls() -> dict[str, dict]:
    """Per client, its last priced Retell call of the last generated day."""
    return {client.client_id: [call for call in client_day(CONFIG, client.index, CONFIG.end_date).retell_calls
                               if call["call_cost"]["combined_cost"] > 0][-1]
            for client in clients(CONFIG)}


def _identity_breaks(warehouse) -> list[tuple]:
    """(cycle, provider, metric) whose events differ from the stored aggregate plus adjustments."""
    return _query(warehouse, """
        with events as (
            select c.cycle_id, e.provider, e.metric, sum(e.cost_usd) as cost
            from marts.fct_usage_events e
            join marts.dim_billing_cycles c on c.client_id = e.client_id
             and e.occurred_at >= c.cycle_start and e.occurred_at < c.cycle_end
            group by 1, 2, 3),
        booked as (
            select u.cycle_id, u.provider, u.metric, u.cost_usd + coalesce(sum(a.delta_cost_usd), 0) as cost
            from marts.fct_cycle_usage u
            left join marts.fct_cycle_adjustments a using (cycle_id, provider, metric)
            group by 1, 2, 3, u.cost_usd)
        select * from events full join booked using (cycle_id, provider, metric)
        where events.cost is distinct from booked.cost""")


@pytest.fixture(scope="module")
def settling(database_factory, tmp_path_factory):
    warehouse = database_factory("late_prices")
    sandbox = start_in_thread(CONFIG)
    held = _held_calls()
    control = f"{sandbox.base_url}/_sandbox"
    instance = DagsterInstance.ephemeral()
    steps = {}
    try:
        with pipeline_environment(warehouse, sandbox, tmp_path_factory.mktemp("dir") / "directory.yaml"), \
                pytest.MonkeyPatch.context() as clock:
            requests.post(f"{control}/pending", json={"days": 0, "ids": [c["call_id"] for c in held.values()]},
                          timeout=5).raise_for_status()
            steps["first"] = run_pipeline(instance)
            steps["pending_after_first"] = _query(warehouse, """
                select client_id, external_id, cost_usd, cost_status from marts.fct_usage_events
                where metric = 'voice_seconds' and cost_status <> 'settled' order by 1""")
            steps["daily_pending"] = _query(warehouse, """
                select client_id, sum(pending_events) from marts.fct_daily_usage
                where provider = 'retell' group by 1 having sum(pending_events) > 0 order by 1""")
            # the client whose cycle holding the held call ends first, and when its grace period is over
            ends = dict(_query(warehouse, """
                select c.client_id, c.cycle_end from marts.dim_billing_cycles c
                join marts.fct_usage_events e on e.client_id = c.client_id and e.external_id = any(%s)
                 and e.occurred_at >= c.cycle_start and e.occurred_at < c.cycle_end""",
                                ([c["call_id"] for c in held.values()],)))
            target = min(ends, key=ends.get)
            after_grace = ends[target] + GRACE + timedelta(hours=1)
            clock.setenv(NOW_ENV, after_grace.isoformat())
            steps["during_grace_over"] = run_pipeline(instance)
            steps["statuses_while_pending"] = _query(warehouse, """
                select provider, cycle_status, status_reason from marts.fct_cycle_usage u
                where client_id = %s and cycle_end = %s group by 1, 2, 3 order by 1""", (target, ends[target]))
            steps["breaks_while_pending"] = _identity_breaks(warehouse)
            requests.post(f"{control}/settle", json={"ids": [held[target]["call_id"]]}, timeout=5).raise_for_status()
            clock.setenv(NOW_ENV, (after_grace + timedelta(hours=1)).isoformat())
            steps["settled_run"] = run_pipeline(instance)
            steps["settled_event"] = _query(warehouse, """
                select cost_usd, cost_status from marts.fct_usage_events
                where external_id = %s and metric = 'voice_seconds'""", (held[target]["call_id"],))
            steps["statuses_after_settling"] = _query(warehouse, """
                select provider, cycle_status from marts.fct_cycle_usage
                where client_id = %s and cycle_end = %s group by 1, 2 order by 1""", (target, ends[target]))
            steps["breaks_after_settling"] = _identity_breaks(warehouse)
            latest = max(datetime.fromisoformat(TEST_NOW), after_grace)
            clock.setenv(NOW_ENV, (latest + MAX_AGE + timedelta(days=1)).isoformat())
            steps["expired_run"] = run_pipeline(instance)
            steps["expired"] = _query(warehouse, """
                select external_id from marts.fct_usage_events
                where metric = 'voice_seconds' and cost_status = 'expired' order by 1""")
    finally:
        requests.delete(f"{control}/pending", timeout=5)
        sandbox.shutdown()
    return {"warehouse": warehouse, "held": held, "target": target, "after_grace": after_grace,
            "ends": ends, **steps}


def test_an_unpriced_call_is_pending_and_never_summed_as_zero(settling):
    held = settling["held"]
    assert settling["first"].success, settling["first"].summary_lines()
    assert settling["pending_after_first"] == sorted(
        (client, call["call_id"], None, "pending") for client, call in held.items())
    assert settling["daily_pending"] == [(client, 1) for client in sorted(held)]


def test_a_cycle_with_a_pending_event_stays_settling_with_its_reason(settling):
    assert settling["after_grace"] < datetime.fromisoformat(TEST_NOW) + MAX_AGE  # still pending, not expired
    statuses = {provider: (status, reason) for provider, status, reason in settling["statuses_while_pending"]}
    assert statuses["retell"] == ("settling", "1 event(s) still pending a price")
    assert statuses["twilio"] == ("closed", None)
    assert settling["breaks_while_pending"] == []


def test_the_price_fetched_by_id_settles_the_event_and_closes_the_cycle(settling):
    call = settling["held"][settling["target"]]
    assert settling["settled_event"] == [(record_cost_usd("retell", call), "settled")]
    assert dict(settling["statuses_after_settling"])["retell"] == "closed"
    assert settling["breaks_after_settling"] == []
    assert Decimal(0) < settling["settled_event"][0][0]


def test_a_price_that_never_settles_expires_and_turns_the_check_red(settling):
    never = sorted(call["call_id"] for client, call in settling["held"].items() if client != settling["target"])
    assert [external_id for (external_id,) in settling["expired"]] == never
    check = next(e for e in settling["expired_run"].get_asset_check_evaluations() if e.check_name == "prices_settle")
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert check.metadata["expired"].value == len(never)  # an unpriced call has no token row either
