"""Webhooks and polling meet downstream: one object per call, with the channels it came by."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
import uvicorn
from dagster import DagsterInstance, DagsterRunStatus, SensorResult, SkipReason, build_sensor_context

from billing_usage.signatures import retell_signature, twilio_signature
from dagster_project.resources import WarehouseResource
from sandbox.agency import clients
from sandbox.totals import expected_totals
from sandbox.usage import client_day, rfc2822
from sandbox.webhook_sender import send_webhooks
from tests.conftest import SMALL, TEST_NOW, pipeline_environment, run_job, run_pipeline
from webhooks.app import create_app
from webhooks.settings import WebhookSettings

pytestmark = pytest.mark.integration

WEBHOOK_ONLY_CALL = "call_only_seen_by_webhook"
WEBHOOK_ONLY_LEG = "CA" + "f" * 32
LEG_ENDED = datetime.combine(SMALL.end_date, datetime.min.time(), UTC).replace(hour=10)


def _query(warehouse, sql: str, params=None) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.fixture(scope="module")
def flow(database_factory, sandbox_server, tmp_path_factory):
    warehouse = database_factory("flow")
    settings = WebhookSettings((SMALL.retell_api_key(0),), (SMALL.twilio_auth_token,))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, warehouse.connect), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    with pipeline_environment(warehouse, sandbox_server, tmp_path_factory.mktemp("dir") / "directory.yaml"):
        from dagster_project.definitions import defs

        instance = DagsterInstance.ephemeral()
        assert run_pipeline(instance).success

        statuses = send_webhooks(SMALL, SMALL.end_date, f"{base}/webhooks/retell", f"{base}/webhooks/twilio")
        agent = clients(SMALL)[1].agents[0]
        ended_ms = int(datetime.fromisoformat(TEST_NOW).timestamp() * 1000)
        call = {"call_id": WEBHOOK_ONLY_CALL, "agent_id": agent.retell_agent_id, "call_type": "web_call",
                "call_status": "ended", "start_timestamp": ended_ms - 60_000,
                "end_timestamp": ended_ms, "duration_ms": 60_000,
                "call_cost": {"product_costs": [], "total_duration_seconds": 60, "combined_cost": 123.4567}}
        body = json.dumps({"event": "call_analyzed", "call": call})
        requests.post(f"{base}/webhooks/retell", data=body, timeout=5,
                      headers={"x-retell-signature": retell_signature(body, SMALL.retell_api_key(0))}
                      ).raise_for_status()
        params = {"CallSid": WEBHOOK_ONLY_LEG, "AccountSid": clients(SMALL)[1].twilio_subaccount_sid,
                  "CallStatus": "completed", "CallDuration": "61", "Direction": "inbound",
                  "From": "+13035550100", "To": agent.phone_number, "Timestamp": rfc2822(LEG_ENDED)}
        requests.post(f"{base}/webhooks/twilio", data=params, timeout=5, headers={
            "X-Twilio-Signature": twilio_signature(f"{base}/webhooks/twilio", params, SMALL.twilio_auth_token)}
        ).raise_for_status()

        with build_sensor_context(instance=instance, resources={"warehouse": WarehouseResource()}) as context:
            first = defs.resolve_sensor_def("webhook_deliveries_sensor")(context)
            context.update_cursor(first.cursor)
            second = defs.resolve_sensor_def("webhook_deliveries_sensor")(context)
            # a refresh that has not started yet will read a delivery that lands now: no second request
            waiting = instance.create_run_for_job(defs.resolve_job_def("refresh_day_rollups"),
                                                  status=DagsterRunStatus.NOT_STARTED)
            with warehouse.connect() as connection, connection.cursor() as cursor:
                cursor.execute("insert into raw_webhooks.retell_events (delivery_id, event, call_id, payload) "
                               "select 'replayed', event, call_id, payload from raw_webhooks.retell_events limit 1")
            coalesced = defs.resolve_sensor_def("webhook_deliveries_sensor")(context)
            instance.delete_run(waiting.run_id)
        refresh = run_job("refresh_day_rollups", instance)
    server.should_exit = True
    thread.join(5)
    yield {"warehouse": warehouse, "statuses": statuses, "sensor": (first, second), "coalesced": coalesced,
           "refresh": refresh}


def test_sensor_requests_one_refresh_per_batch_of_new_deliveries(flow):
    first, second = flow["sensor"]
    assert isinstance(first, SensorResult) and len(first.run_requests) == 1
    assert {event.asset_key.path[-1] for event in first.asset_events} == {"retell_events", "twilio_callbacks"}
    assert isinstance(second, SkipReason)
    assert flow["refresh"].success


def test_a_refresh_waiting_to_start_takes_new_deliveries_without_another_request(flow):
    first, coalesced = flow["sensor"][0], flow["coalesced"]
    assert isinstance(coalesced, SensorResult) and coalesced.run_requests == []
    assert [event.asset_key.path[-1] for event in coalesced.asset_events] == ["retell_events"]
    assert json.loads(coalesced.cursor)["received"] > json.loads(first.cursor)["received"]


def test_objects_seen_by_both_channels_are_single_events(flow):
    warehouse = flow["warehouse"]
    assert set(flow["statuses"]) == {200}
    duplicates = _query(warehouse, "select idempotency_key from marts.fct_usage_events "
                                   "group by idempotency_key having count(*) > 1")
    assert duplicates == []
    day_objects = {c["call_id"] for ci in range(SMALL.clients)
                   for c in client_day(SMALL, ci, SMALL.end_date).retell_calls}
    rows = _query(warehouse, """select external_id, source_channels from marts.fct_usage_events
                                where provider = 'retell' and metric = 'voice_seconds'""")
    channels = {external_id: tuple(chan) for external_id, chan in rows}
    assert all(channels[call_id] == ("poll", "webhook") for call_id in day_objects)
    assert all(chan == ("poll",) for call_id, chan in channels.items()
               if call_id not in day_objects and call_id != WEBHOOK_ONLY_CALL)
    twilio_channels = _query(warehouse, """select usage_date = %s, source_channels, count(*)
                                           from marts.fct_usage_events where provider = 'twilio'
                                           and external_id <> %s group by 1, 2""",
                             (SMALL.end_date, WEBHOOK_ONLY_LEG))
    assert sorted((on_day, tuple(chan)) for on_day, chan, _ in twilio_channels) == [
        (False, ("poll",)), (True, ("poll", "webhook"))]


def test_webhook_only_objects_show_up_before_polling(flow):
    warehouse = flow["warehouse"]
    retell = _query(warehouse, """select source_channels, cost_usd, client_id, attributes ->> 'cost_status'
                                  from marts.fct_usage_events where external_id = %s and metric = 'voice_seconds'""",
                    (WEBHOOK_ONLY_CALL,))
    assert retell == [(["webhook"], Decimal("1.234567"), "client_002", "final")]
    twilio = _query(warehouse, """select source_channels, cost_usd, quantity, client_id, agent_id,
                                         attributes ->> 'cost_status'
                                  from marts.fct_usage_events where external_id = %s""", (WEBHOOK_ONLY_LEG,))
    agent = clients(SMALL)[1].agents[0]
    assert twilio == [(["webhook"], None, Decimal(2), "client_002", agent.agent_id, "pending")]


def test_totals_are_the_sandbox_totals_plus_the_webhook_only_call(flow):
    totals = defaultdict(Decimal)
    for (provider, _), total in expected_totals(SMALL).items():
        totals[provider] += total.cost_usd
    totals["retell"] += Decimal("1.234567")
    rows = _query(flow["warehouse"], "select provider, sum(cost_usd) from marts.fct_usage_events group by provider")
    assert dict(rows) == dict(totals)
