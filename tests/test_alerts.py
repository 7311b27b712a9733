"""Alerts: one message per transition (a check failing, a check passing again, a run failing), sent once,
recorded in ops.alerts, retried when the webhook fails, and the webhook URL in no table, log or result.

A real Dagster instance (SQLite as `make dev` keeps it, and PostgreSQL as deploy/dagster.yaml does), a
small code location whose check result the test sets, a local HTTP receiver, and ops.alerts in a
PostgreSQL database of the test's own.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSelection,
    DagsterInstance,
    Definitions,
    MetadataValue,
    asset,
    asset_check,
    build_sensor_context,
    define_asset_job,
)

from billing_usage.settings import (
    ALERTS_FORMAT_ENV,
    ALERTS_WEBHOOK_URL_ENV,
    DATABASE_URL_ENV,
    Settings,
    SettingsError,
)
from dagster_project.alerts import alerts_sensor, read_events
from dagster_project.resources import WarehouseResource

TOKEN = "s3cr3t-alerts-token"  # the secret part of the URL: it must show up nowhere but in the request
WEBHOOK_PATH = f"/services/T0ALERTS/B0ALERTS/{TOKEN}"

OUTCOME = {"passed": True, "severity": AssetCheckSeverity.ERROR}


@asset
def meter() -> int:
    return 1


@asset_check(asset=meter, description="The meter reads within its limit (runbook: https://wiki.example.com/meter).")
def within_limit() -> AssetCheckResult:
    return AssetCheckResult(passed=OUTCOME["passed"], severity=OUTCOME["severity"],
                            metadata={"reading": 42 if not OUTCOME["passed"] else 7, "limit": 10,
                                      "dashboard": MetadataValue.url("https://grafana.example.com/d/meter")})


@asset
def broken() -> int:
    raise RuntimeError("the meter caught fire")


DEFS = Definitions(
    assets=[meter, broken], asset_checks=[within_limit],
    jobs=[define_asset_job("meter_job", AssetSelection.assets(meter)),  # the asset and its check
          define_asset_job("broken_job", AssetSelection.assets(broken))],
    sensors=[alerts_sensor],
)


def check_evaluates(instance, passed: bool, severity=AssetCheckSeverity.ERROR):
    OUTCOME.update(passed=passed, severity=severity)
    assert DEFS.resolve_job_def("meter_job").execute_in_process(instance=instance).success


def run_fails(instance) -> str:
    result = DEFS.resolve_job_def("broken_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return result.run_id


class Receiver:
    """A webhook on 127.0.0.1: records every POST, answers the queued status codes first, then 200."""

    def __init__(self):
        self.attempts: list[tuple[str, dict]] = []
        self.delivered: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.attempts.append((self.path, body))
                if status < 300 and self.path == WEBHOOK_PATH:
                    receiver.delivered.append(body)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"no")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{WEBHOOK_PATH}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def warehouse(database_factory, monkeypatch):
    warehouse = database_factory("alerts")
    monkeypatch.setenv(DATABASE_URL_ENV, warehouse.url)
    monkeypatch.delenv(ALERTS_WEBHOOK_URL_ENV, raising=False)
    monkeypatch.delenv(ALERTS_FORMAT_ENV, raising=False)
    return warehouse


@pytest.fixture(params=["sqlite", "postgres"])
def instance(request, tmp_path, database_factory):
    """Dagster's storage as `make dev` keeps it (SQLite, run-sharded) or as production does (PostgreSQL)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    if request.param == "postgres":
        storage = database_factory("alerts_dagster")
        (home / "dagster.yaml").write_text(f"storage:\n  postgres:\n    postgres_url: {storage.sqlalchemy_url}\n")
    instance = DagsterInstance.from_config(str(home))
    yield instance
    instance.dispose()


@pytest.fixture
def sqlite_instance(tmp_path):
    (tmp_path / "dagster_home").mkdir()
    instance = DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    yield instance
    instance.dispose()


class Sensor:
    """Evaluates the alerts sensor the way the daemon does: the cursor of one tick goes to the next."""

    def __init__(self, instance):
        self.instance = instance
        self.cursor: str | None = None
        self.results = []

    def tick(self):
        with build_sensor_context(instance=self.instance, cursor=self.cursor, definitions=DEFS,
                                  resources={"warehouse": WarehouseResource()}) as context:
            data = alerts_sensor.evaluate_tick(context)
        assert not data.run_requests
        self.results.append(data)
        self.cursor = data.cursor
        return data


def alerts_table(warehouse) -> list[dict]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select row_to_json(a)::text from ops.alerts a order by happened_at, alert_id")
        rows = [json.loads(text) for (text,) in cursor.fetchall()]
    connection.close()
    return rows


def assert_secret_nowhere(warehouse, caplog, sensor):
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select coalesce(string_agg(row_to_json(a)::text, ''), '') from ops.alerts a")
        assert TOKEN not in cursor.fetchone()[0]
    connection.close()
    assert TOKEN not in caplog.text
    for data in sensor.results:
        assert TOKEN not in repr(data) and TOKEN not in (data.skip_message or "") and TOKEN not in (data.cursor or "")


def kinds_of(bodies):
    return [body["text"].split(":")[0] for body in bodies]


def test_one_message_per_transition_each_sent_once(warehouse, instance, receiver, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(ALERTS_WEBHOOK_URL_ENV, receiver.url)
    sensor = Sensor(instance)
    sensor.tick()  # the first evaluation: nothing failing, nothing to say
    assert receiver.attempts == []

    for _ in range(5):  # five failing evaluations: one alert
        check_evaluates(instance, passed=False)
        sensor.tick()
    assert kinds_of(receiver.delivered) == ["[ERROR] Check failed"]

    for _ in range(2):  # passes again, twice: one recovery
        check_evaluates(instance, passed=True)
        sensor.tick()
    run_id = run_fails(instance)
    sensor.tick()
    sensor.tick()
    # Between two evaluations: fail, fail, pass, pass -> failed then recovered, in that order.
    for passed in (False, False, True, True):
        check_evaluates(instance, passed=passed)
    sensor.tick()
    sensor.tick()

    assert kinds_of(receiver.delivered) == ["[ERROR] Check failed", "[OK] Check passes again (was ERROR)",
                                            "[ERROR] Run failed", "[ERROR] Check failed",
                                            "[OK] Check passes again (was ERROR)"]
    assert len(receiver.attempts) == 5  # nothing was sent twice

    failed, recovered, run_failed = receiver.delivered[:3]
    assert failed["text"] == "[ERROR] Check failed: meter · within_limit"
    assert [block["type"] for block in failed["blocks"]] == ["header", "section", "context"]
    assert failed["blocks"][0]["text"] == {"type": "plain_text", "text": failed["text"], "emoji": False}
    section = failed["blocks"][1]["text"]["text"]
    assert section.startswith("The meter reads within its limit (runbook: [link removed]).\n")
    assert "reading: 42" in section and "limit: 10" in section and "dashboard" not in section
    assert "http" not in json.dumps(failed)  # link-free: the runbook and dashboard links are left out
    assert "reading: 7" in recovered["blocks"][1]["text"]["text"]
    assert run_failed["text"] == "[ERROR] Run failed: broken_job"
    assert "the meter caught fire" in run_failed["blocks"][1]["text"]["text"]
    assert run_id in run_failed["blocks"][1]["text"]["text"]

    rows = alerts_table(warehouse)
    assert [(row["kind"], row["subject"], row["severity"], row["delivery"]) for row in rows] == [
        ("check_failed", "meter:within_limit", "ERROR", "slack"),
        ("check_recovered", "meter:within_limit", "ERROR", "slack"),
        ("run_failed", "broken_job", "ERROR", "slack"),
        ("check_failed", "meter:within_limit", "ERROR", "slack"),
        ("check_recovered", "meter:within_limit", "ERROR", "slack")]
    assert all(row["sent_at"] for row in rows) and len({row["alert_id"] for row in rows}) == 5
    assert rows[0]["alert_id"] in failed["blocks"][2]["elements"][0]["text"]
    assert_secret_nowhere(warehouse, caplog, sensor)


def test_the_generic_json_shape_passes_the_severity_through(warehouse, sqlite_instance, receiver, monkeypatch):
    monkeypatch.setenv(ALERTS_WEBHOOK_URL_ENV, receiver.url)
    monkeypatch.setenv(ALERTS_FORMAT_ENV, "json")
    sensor = Sensor(sqlite_instance)
    sensor.tick()
    check_evaluates(sqlite_instance, passed=False, severity=AssetCheckSeverity.WARN)
    check_evaluates(sqlite_instance, passed=True, severity=AssetCheckSeverity.WARN)
    run_fails(sqlite_instance)
    sensor.tick()

    assert [(body["kind"], body["subject"], body["severity"]) for body in receiver.delivered] == [
        ("check_failed", "meter:within_limit", "WARN"), ("check_recovered", "meter:within_limit", "WARN"),
        ("run_failed", "broken_job", "ERROR")]
    rows = alerts_table(warehouse)
    for body, row in zip(receiver.delivered, rows, strict=True):
        assert set(body) == {"kind", "subject", "severity", "message", "happened_at", "alert_id", "source"}
        assert datetime.fromisoformat(body["happened_at"]).tzinfo is not None
        assert (body["alert_id"], body["message"], row["delivery"]) == (row["alert_id"], row["message"], "json")
    assert receiver.delivered[0]["message"].startswith("[WARN] Check failed: meter · within_limit\n")


def test_without_a_webhook_alerts_are_logged_and_listed(warehouse, sqlite_instance, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    sensor = Sensor(sqlite_instance)
    sensor.tick()
    check_evaluates(sqlite_instance, passed=False)
    run_fails(sqlite_instance)
    sensor.tick()
    sensor.tick()

    rows = alerts_table(warehouse)
    assert [(row["kind"], row["delivery"], row["sent_at"]) for row in rows] == [
        ("check_failed", "logged", None), ("run_failed", "logged", None)]
    assert caplog.text.count("Check failed: meter · within_limit") == 1  # logged once, not at every evaluation
    assert caplog.text.count("Run failed: broken_job") == 1
    assert receiver.attempts == []
    assert "2 logged" in sensor.results[1].skip_message


@pytest.mark.parametrize("failure", ["HTTP 500", "connection refused"])
def test_a_failing_webhook_is_retried_and_each_alert_delivered_once(warehouse, sqlite_instance, receiver,
                                                                     monkeypatch, caplog, failure):
    caplog.set_level(logging.DEBUG)
    if failure == "HTTP 500":
        monkeypatch.setenv(ALERTS_WEBHOOK_URL_ENV, receiver.url)
        receiver.statuses = [500]
    else:  # a closed port: nothing listens there
        monkeypatch.setenv(ALERTS_WEBHOOK_URL_ENV, f"http://127.0.0.1:1{WEBHOOK_PATH}")
    sensor = Sensor(sqlite_instance)
    sensor.tick()
    check_evaluates(sqlite_instance, passed=False)
    run_fails(sqlite_instance)
    sensor.tick()

    assert receiver.delivered == []
    rows = alerts_table(warehouse)
    assert [(row["kind"], row["sent_at"], row["delivery"]) for row in rows] == [
        ("check_failed", None, None), ("run_failed", None, None)]
    reason = "HTTP 500" if failure == "HTTP 500" else "ConnectionRefusedError"
    assert reason in sensor.results[-1].skip_message and "2 waiting" in sensor.results[-1].skip_message
    assert any(reason in record.getMessage() and "retried" in record.getMessage() for record in caplog.records)

    monkeypatch.setenv(ALERTS_WEBHOOK_URL_ENV, receiver.url)  # the endpoint is back
    sensor.tick()
    sensor.tick()
    assert kinds_of(receiver.delivered) == ["[ERROR] Check failed", "[ERROR] Run failed"]
    assert len(receiver.attempts) == (3 if failure == "HTTP 500" else 2)  # the 500, then each alert once
    assert all(row["sent_at"] and row["delivery"] == "slack" for row in alerts_table(warehouse))
    assert_secret_nowhere(warehouse, caplog, sensor)


def test_an_alert_the_webhook_refuses_does_not_hold_back_the_others(warehouse, sqlite_instance, receiver,
                                                                     monkeypatch):
    monkeypatch.setenv(ALERTS_WEBHOOK_URL_ENV, receiver.url)
    receiver.statuses = [400]  # the endpoint refuses the first alert, but it is up: the next one goes
    sensor = Sensor(sqlite_instance)
    sensor.tick()
    check_evaluates(sqlite_instance, passed=False)
    run_fails(sqlite_instance)
    sensor.tick()
    assert kinds_of(receiver.delivered) == ["[ERROR] Run failed"]
    sensor.tick()  # the refused one is tried again, and goes
    sensor.tick()
    assert kinds_of(receiver.delivered) == ["[ERROR] Run failed", "[ERROR] Check failed"]
    assert len(receiver.attempts) == 3


def test_reading_the_event_log_in_pages_skips_nothing():
    from dagster import DagsterEventType

    ids = {DagsterEventType.ASSET_CHECK_EVALUATION: [1, 2, 3, 5, 6, 8], DagsterEventType.RUN_FAILURE: [4, 7, 9]}

    class Storage:  # the event log's query: ids after the cursor, ascending, at most `limit`
        def get_logs_for_all_runs_by_log_id(self, after_cursor, dagster_event_type, limit):
            newer = [i for i in ids[dagster_event_type] if i > after_cursor][:limit]
            return {i: f"{dagster_event_type.value}-{i}" for i in newer}

    storage, after, read = Storage(), 0, []
    for _ in range(10):
        page = read_events(storage, after, limit=2)
        if not page:
            break
        read += [storage_id for storage_id, _ in page]
        after = page[-1][0]
    assert read == list(range(1, 10))


def test_a_lost_cursor_sends_nothing_twice_and_the_first_evaluation_reports_what_fails_now(
        warehouse, sqlite_instance, receiver, monkeypatch):
    monkeypatch.setenv(ALERTS_WEBHOOK_URL_ENV, receiver.url)
    run_fails(sqlite_instance)  # before the sensor's first evaluation: history, not alerted
    check_evaluates(sqlite_instance, passed=False)
    check_evaluates(sqlite_instance, passed=False)
    sensor = Sensor(sqlite_instance)
    sensor.tick()  # the check fails now: nobody was told yet
    sensor.tick()
    assert kinds_of(receiver.delivered) == ["[ERROR] Check failed"]

    sensor.cursor = None  # the sensor's cursor reset: the same transition is derived again, and not sent again
    sensor.tick()
    check_evaluates(sqlite_instance, passed=False)  # fails on: its last failure is not the one alerted
    sensor.tick()
    sensor.cursor = None  # reset again: ops.alerts says the check was reported failing, with no recovery
    sensor.tick()
    assert len(receiver.attempts) == 1 and len(alerts_table(warehouse)) == 1

    check_evaluates(sqlite_instance, passed=True)  # the state survived the reset: its recovery is one message
    sensor.tick()
    sensor.tick()
    assert kinds_of(receiver.delivered) == ["[ERROR] Check failed", "[OK] Check passes again (was ERROR)"]


def test_alert_settings_are_validated_and_the_url_stays_secret():
    settings = Settings.from_env({})
    assert (settings.alerts_webhook_url, settings.alerts_format) == (None, "slack")
    url = f"https://hooks.slack.com{WEBHOOK_PATH}"
    settings = Settings.from_env({ALERTS_WEBHOOK_URL_ENV: url, ALERTS_FORMAT_ENV: "json"})
    assert (settings.alerts_webhook_url, settings.alerts_format) == (url, "json")
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    with pytest.raises(SettingsError, match=ALERTS_FORMAT_ENV):
        Settings.from_env({ALERTS_FORMAT_ENV: "teams"})
    for wrong in (f"hooks.slack.com{WEBHOOK_PATH}", f"ftp://hooks.slack.com{WEBHOOK_PATH}", f"https://{WEBHOOK_PATH}"):
        with pytest.raises(SettingsError, match=ALERTS_WEBHOOK_URL_ENV) as raised:
            Settings.from_env({ALERTS_WEBHOOK_URL_ENV: wrong})
        assert TOKEN not in str(raised.value)


def test_the_alerts_sensor_is_registered_and_running_by_default():
    from dagster import DefaultSensorStatus

    from dagster_project.definitions import defs

    sensor = defs.resolve_sensor_def("alerts_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds == 30
