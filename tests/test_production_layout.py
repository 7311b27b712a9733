"""The production layout (docs/production.md): the Dagster webserver, daemon and code server on dagster-postgres
run the collection through the queue with every schedule and sensor on; TLS settings of a managed warehouse
reach every client."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import defaultdict
from decimal import Decimal

import dlt
import pytest
import requests
import uvicorn
import yaml
from dagster import DagsterInstance, DagsterRunStatus
from dagster import __version__ as dagster_version
from dagster._config import process_config, resolve_to_config_type
from dagster._core.execution.api import create_execution_plan
from dagster._core.instance.config import dagster_instance_config
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster_k8s import K8sRunLauncher, k8s_job_executor

from billing_usage.settings import (
    DATABASE_URL_ENV,
    NOW_ENV,
    PII_SALT_ENV,
    PROJECT_ROOT,
    PROVIDERS_ENV,
    SANDBOX_PII_SALT,
)
from billing_usage.warehouse import Warehouse
from cli.local_env import sandbox_source_config
from cli.production import LOCATION_NAME, POSTGRES_URL_ENV, dagster_services, write_instance
from dagster_project.definitions import defs as single_machine_defs
from dagster_project.transformation import DBT_EXECUTABLE
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.totals import expected_totals
from sandbox.webhook_sender import send_webhooks
from tests.conftest import TEST_END_DATE, TEST_NOW
from webhooks.app import create_app
from webhooks.settings import WebhookSettings

SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # what libpq sends first when it means to use TLS
NO_TLS = "server does not support SSL, but SSL was required"


@pytest.fixture
def server_without_tls():
    """A TCP server that answers every TLS request 'N' (no TLS) and records whether the client asked for it."""
    listener = socket.create_server(("127.0.0.1", 0))
    asked: list[bool] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                asked.append(connection.recv(8) == SSL_REQUEST)
                connection.sendall(b"N")

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], asked
    listener.close()


def test_the_urls_tls_settings_reach_psycopg2_dlt_and_dbt(server_without_tls, tmp_path):
    port, asked = server_without_tls
    warehouse = Warehouse.from_url(f"postgresql://svc:s3cret@127.0.0.1:{port}/wh?sslmode=require")
    assert warehouse.tls == (("sslmode", "require"),)
    assert warehouse.url.endswith("/wh?sslmode=require") and "s3cret" not in repr(warehouse)
    assert Warehouse.from_url(warehouse.url) == warehouse

    with pytest.raises(Exception, match=NO_TLS):
        warehouse.connect(connect_timeout=5)
    pipeline = dlt.pipeline(pipeline_name="tls_probe", destination=dlt.destinations.postgres(credentials=warehouse.url),
                            dataset_name="probe", pipelines_dir=str(tmp_path))
    with pytest.raises(Exception, match=NO_TLS), pipeline.sql_client():
        pass
    dbt = subprocess.run([DBT_EXECUTABLE, "debug", "--connection", "--project-dir", "dbt_project",
                          "--profiles-dir", "dbt_project"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         env={**os.environ, **warehouse.dbt_env()})
    assert dbt.returncode != 0 and NO_TLS in dbt.stdout and "s3cret" not in dbt.stdout
    assert len(asked) >= 3 and all(asked)  # each client asked for TLS, and gave up when refused (dbt retries)


def test_tls_files_are_kept_and_other_url_parameters_are_refused():
    warehouse = Warehouse.from_url("postgresql://svc@db.example:5432/wh?sslmode=verify-full"
                                   "&sslrootcert=/etc/ssl/rds-ca.pem")
    assert warehouse.dbt_env()["BILLING_USAGE_PGSSLMODE"] == "verify-full"
    assert warehouse.dbt_env()["BILLING_USAGE_PGSSLROOTCERT"] == "/etc/ssl/rds-ca.pem"
    assert warehouse.dbt_env()["BILLING_USAGE_PGSSLKEY"] == ""
    with pytest.raises(ValueError, match="unsupported parameter.s. application_name"):
        Warehouse.from_url("postgresql://svc@db.example/wh?application_name=x")


# --- the Dagster processes of production, on PostgreSQL, with the schedules and sensors on ---------------------

CONFIG = SandboxConfig(seed=29, clients=2, agents_per_client=2, days=3, calls_per_agent_per_day=4,
                       end_date=TEST_END_DATE)
REPOSITORY = {"repositoryLocationName": LOCATION_NAME, "repositoryName": "__repository__"}
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId status } } ... on Error { message } } }"""
INSTIGATORS = """query($repository: RepositorySelector!) {
  schedulesOrError(repositorySelector: $repository) {
    ... on Schedules { results { id name scheduleState { status } } } }
  sensorsOrError(repositorySelector: $repository) { ... on Sensors { results { name sensorState { status } } } }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"""
START_SCHEDULE = """mutation($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) {
  __typename ... on ScheduleStateResult { scheduleState { status } } ... on Error { message } } }"""
STOP_SCHEDULE = """mutation($id: String!) { stopRunningSchedule(id: $id) {
  __typename ... on ScheduleStateResult { scheduleState { status } } ... on Error { message } } }"""
START_SENSOR = """mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { status } } ... on Error { message } } }"""
UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
QUEUE_PATH = ["RUN_ENQUEUED", "RUN_STARTING", "RUN_START", "RUN_SUCCESS"]  # queued, launched by the daemon, ran
SENSOR_TAG = "dagster/sensor_name"


def _turn_everything_on(services) -> dict[str, str]:
    """Start every schedule and sensor that is not running (their default is RUNNING); their states after."""
    found = services.graphql(INSTIGATORS, {"repository": REPOSITORY})
    for schedule in found["schedulesOrError"]["results"]:
        if schedule["scheduleState"]["status"] != "RUNNING":
            services.graphql(START_SCHEDULE, {"selector": {**REPOSITORY, "scheduleName": schedule["name"]}})
    for sensor in found["sensorsOrError"]["results"]:
        if sensor["sensorState"]["status"] != "RUNNING":
            services.graphql(START_SENSOR, {"selector": {**REPOSITORY, "sensorName": sensor["name"]}})
    found = services.graphql(INSTIGATORS, {"repository": REPOSITORY})
    return {**{s["name"]: s["scheduleState"]["status"] for s in found["schedulesOrError"]["results"]},
            **{s["name"]: s["sensorState"]["status"] for s in found["sensorsOrError"]["results"]}}


def _stop_schedules(services) -> None:
    """No new ticks from here on (they fire on the wall clock): what a tick launched before still finishes."""
    found = services.graphql(INSTIGATORS, {"repository": REPOSITORY})
    for schedule in found["schedulesOrError"]["results"]:
        services.graphql(STOP_SCHEDULE, {"id": schedule["id"]})


def _daemons_healthy(services) -> dict[str, bool]:
    deadline = time.monotonic() + 180
    while True:
        statuses = services.graphql(INSTIGATORS, {"repository": REPOSITORY})["instance"]["daemonHealth"]
        healthy = {d["daemonType"]: d["healthy"] for d in statuses["allDaemonStatuses"] if d["required"]}
        if all(healthy.values()) or time.monotonic() > deadline:
            return healthy
        time.sleep(2)


def _receiver(warehouse):
    settings = WebhookSettings((CONFIG.retell_api_key(0),), (CONFIG.twilio_auth_token,))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, warehouse.connect), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def _services_env(warehouse, storage, sandbox, folder) -> dict[str, str]:
    directory = folder / "directory.yaml"
    directory.write_text(json.dumps(requests.get(f"{sandbox.base_url}/_sandbox/directory", timeout=10).json()))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SOURCES__", "DAGSTER_"))}
    return env | sandbox_source_config(sandbox.base_url, sandbox.config, str(directory)) | warehouse.dbt_env() | {
        PROVIDERS_ENV: "live", DATABASE_URL_ENV: warehouse.url, PII_SALT_ENV: SANDBOX_PII_SALT, NOW_ENV: TEST_NOW,
        "BILLING_USAGE_LOCAL_DIR": str(folder / "local"), POSTGRES_URL_ENV: storage.sqlalchemy_url}


def _run_events(instance, run_id: str) -> list[str]:
    return [entry.dagster_event.event_type.name for entry in instance.all_logs(run_id)
            if entry.dagster_event and entry.dagster_event.event_type.name.startswith("RUN_")]


def _step_spans(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """Step key -> (start, end) of each step the run started."""
    starts, ends = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        if event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ends[entry.step_key] = entry.timestamp
    return {step: (start, ends.get(step, float("inf"))) for step, start in starts.items()}


@pytest.fixture(scope="module")
def production(database_factory, tmp_path_factory):
    """Code server, daemon and webserver on dagster-postgres; webhooks in, then collect_usage through the queue."""
    warehouse, storage = database_factory("prod_warehouse"), database_factory("prod_dagster")
    folder = tmp_path_factory.mktemp("production")
    sandbox = start_in_thread(CONFIG)
    receiver, receiver_thread, receiver_url = _receiver(warehouse)
    env = _services_env(warehouse, storage, sandbox, folder)
    started = time.monotonic()
    try:
        with dagster_services(env, folder / "dagster_home") as services, \
                pytest.MonkeyPatch.context() as patch:
            patch.setenv(POSTGRES_URL_ENV, storage.sqlalchemy_url)
            server_info = requests.get(f"{services.webserver_url}/server_info", timeout=10).json()
            states = _turn_everything_on(services)
            daemons = _daemons_healthy(services)
            webhook_statuses = send_webhooks(CONFIG, CONFIG.end_date, f"{receiver_url}/webhooks/retell",
                                             f"{receiver_url}/webhooks/twilio")
            launched = services.graphql(LAUNCH, {"params": {
                "selector": {**REPOSITORY, "jobName": "collect_usage"},
                "executionMetadata": {"tags": [{"key": PARTITION_NAME_TAG, "value": CONFIG.today.isoformat()}]}}})
            collect_id = launched["launchRun"]["run"]["runId"]
            with DagsterInstance.from_config(str(services.home)) as instance:
                deadline, schedules_on = time.monotonic() + 2700, True
                while True:
                    services.check_alive()
                    runs = instance.get_runs()
                    sensors = {run.tags.get(SENSOR_TAG) for run in runs if run.status == DagsterRunStatus.SUCCESS}
                    done = not [run for run in runs if run.status in UNFINISHED]
                    collected = instance.get_run_by_id(collect_id).status not in UNFINISHED
                    if schedules_on and collected:  # the schedules were on while the collection went through
                        _stop_schedules(services)
                        schedules_on = False
                        continue  # what a tick launched meanwhile, and the build after it, still finish
                    built = {"build_after_collection_sensor", "webhook_deliveries_sensor"} <= sensors
                    if done and ((built and not schedules_on) or any(run.status == DagsterRunStatus.FAILURE
                                                                     for run in runs)):
                        time.sleep(35)  # a sensor that saw a run finish launches its follower within 30 s
                        if not [run for run in instance.get_runs() if run.status in UNFINISHED]:
                            break
                    assert time.monotonic() < deadline, [(run.job_name, run.status) for run in runs]
                    time.sleep(2)
                runs = instance.get_runs()
                events = {run.run_id: _run_events(instance, run.run_id) for run in runs}
                messages = [entry.user_message for entry in instance.all_logs(collect_id)]
                failures = {f"{run.job_name} {run.run_id}": [
                    entry.user_message for entry in instance.all_logs(run.run_id) if entry.dagster_event
                    and entry.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")]
                    for run in runs if run.status == DagsterRunStatus.FAILURE}
                spans = {run.run_id: _step_spans(instance, run.run_id) for run in runs}
                pool_slots = {pool: instance.event_log_storage.get_concurrency_info(pool).slot_count
                              for pool in ("dbt_warehouse", "dlt_retell", "dlt_twilio")}
            with warehouse.connect() as connection, connection.cursor() as cursor:
                cursor.execute("select provider, sum(cost_usd) from marts.fct_usage_events group by provider")
                totals = dict(cursor.fetchall())
                cursor.execute("select sum(event_count) from marts.fct_daily_usage")
                daily_events = cursor.fetchone()[0]
                cursor.execute("select count(*) from marts.fct_usage_events")
                events_count = cursor.fetchone()[0]
    finally:
        receiver.should_exit = True
        receiver_thread.join(10)
        sandbox.shutdown()
    yield {"server_info": server_info, "states": states, "daemons": daemons, "launched": launched["launchRun"],
           "collect_id": collect_id, "runs": runs, "events": events, "messages": messages, "spans": spans,
           "pool_slots": pool_slots, "failures": failures, "totals": totals, "daily_events": daily_events,
           "events_count": events_count,
           "webhook_statuses": webhook_statuses, "seconds": time.monotonic() - started}


def test_the_webserver_answers_and_every_schedule_sensor_and_daemon_is_on(production):
    assert production["server_info"]["dagster_version"] == dagster_version
    states = production["states"]
    assert {"collect_usage_schedule", "daily_rollup_schedule", "build_after_collection_sensor",
            "webhook_deliveries_sensor"} <= set(states)
    assert set(states.values()) == {"RUNNING"}
    assert production["daemons"] and all(production["daemons"].values()), production["daemons"]
    assert {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR", "MONITORING"} <= set(production["daemons"])


def test_the_collection_goes_through_the_queue_on_the_multiprocess_executor(production):
    assert production["launched"]["__typename"] == "LaunchRunSuccess"
    assert production["launched"]["run"]["status"] == "QUEUED"
    path = [event for event in production["events"][production["collect_id"]] if event in QUEUE_PATH]
    assert path == QUEUE_PATH
    assert any(message.startswith("Executing steps using multiprocess executor") for message in production["messages"])


def test_the_sensors_launch_the_builds_and_every_run_succeeds(production):
    runs = production["runs"]
    assert {(run.job_name, run.status) for run in runs} >= {("collect_usage", DagsterRunStatus.SUCCESS),
                                                            ("build_models", DagsterRunStatus.SUCCESS)}, \
        production["failures"]  # why a run failed, which the fixture's temporary Dagster home does not keep
    failed = [(run.job_name, run.tags.get(SENSOR_TAG)) for run in runs if run.status != DagsterRunStatus.SUCCESS]
    assert failed == []
    after = [run for run in runs if run.tags.get("dagster/run_key") == f"after-{production['collect_id']}"]
    assert len(after) == 1 and after[0].job_name == "build_models"
    assert after[0].tags[SENSOR_TAG] == "build_after_collection_sensor"
    assert after[0].tags[PARTITION_NAME_TAG] == CONFIG.today.isoformat()
    from_webhooks = [run for run in runs if run.tags.get(SENSOR_TAG) == "webhook_deliveries_sensor"]
    assert from_webhooks and all(run.job_name == "refresh_day_rollups" for run in from_webhooks)
    for run in runs:  # the queue took every run, whoever launched it
        assert [event for event in production["events"][run.run_id] if event in QUEUE_PATH] == QUEUE_PATH


def test_the_marts_hold_exactly_what_the_sandbox_generated(production):
    assert set(production["webhook_statuses"]) == {200}
    generated: dict[str, Decimal] = defaultdict(Decimal)
    for (provider, _), total in expected_totals(CONFIG).items():
        generated[provider] += total.cost_usd
    assert production["totals"] == dict(generated)
    assert production["daily_events"] == production["events_count"] > 0


def test_pools_let_one_dbt_build_and_one_collector_per_provider_run_at_a_time(production):
    assert production["pool_slots"] == {"dbt_warehouse": 1, "dlt_retell": 1, "dlt_twilio": 1}
    for step in ("billing_dbt_models", "retell", "twilio", "openrouter"):
        spans = sorted(span for run_spans in production["spans"].values() for key, span in run_spans.items()
                       if key == step)
        assert spans, step
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False)), step
    builds = [spans["billing_dbt_models"] for spans in production["spans"].values() if "billing_dbt_models" in spans]
    assert len(builds) >= 2  # the collection's build and the webhooks' build, one after the other


# --- the instance files: one machine and the step to a cluster ---------------------------------------------------

def _load_cluster_definitions():
    path = PROJECT_ROOT / "deploy" / "k8s" / "definitions.py"
    spec = importlib.util.spec_from_file_location("cluster_definitions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_production_instance_queues_runs_limits_pools_and_monitors_runs(tmp_path, monkeypatch):
    monkeypatch.setenv(POSTGRES_URL_ENV, "postgresql://dagster@db.internal:5432/dagster?sslmode=verify-full")
    write_instance(tmp_path, 4000)
    config, _ = dagster_instance_config(str(tmp_path))  # validated against Dagster's schema
    assert config["storage"] == {"postgres": {"postgres_url": {"env": POSTGRES_URL_ENV}}}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"] == {"runs": {"max_concurrent_runs": 4},
                                     "pools": {"default_limit": 1, "granularity": "op"}}
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["max_runtime_seconds"] > 0
    workspace = yaml.safe_load((tmp_path / "workspace.yaml").read_text())
    assert workspace == {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": 4000,
                                                        "location_name": LOCATION_NAME}}]}


def test_the_cluster_instance_differs_only_by_launching_runs_as_kubernetes_jobs(tmp_path, monkeypatch):
    monkeypatch.setenv(POSTGRES_URL_ENV, "postgresql://dagster@db.internal:5432/dagster")
    single = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "deploy" / "k8s" / "dagster.yaml").read_text())
    cluster, _ = dagster_instance_config(str(tmp_path))
    assert {key: value for key, value in cluster.items() if key != "run_launcher"} == single
    assert cluster["run_launcher"]["class"] == "K8sRunLauncher"
    launcher_config = process_config(resolve_to_config_type(K8sRunLauncher.config_type()),
                                     cluster["run_launcher"]["config"])
    assert launcher_config.success, launcher_config.errors


def test_the_cluster_code_location_runs_each_step_as_a_kubernetes_job():
    cluster = _load_cluster_definitions()
    checked = process_config(k8s_job_executor.config_schema.config_type, cluster.EXECUTOR_CONFIG)
    assert checked.success, checked.errors
    for name in ("collect_usage", "build_models", "retention"):
        assert cluster.defs.resolve_job_def(name).executor_def.name == "billing_usage_k8s"
    build = cluster.defs.resolve_job_def("build_models")
    plan = create_execution_plan(build, tags={PARTITION_NAME_TAG: TEST_END_DATE.isoformat()})
    steps = {step.key for step in plan.steps}
    assert set(cluster.EXECUTOR_CONFIG["per_step_k8s_config"]) <= steps  # the dbt step's resources name a real step
    assert {job.name for job in cluster.defs.jobs} == {job.name for job in single_machine_defs.jobs}


def test_the_default_definitions_never_import_dagster_k8s():
    probe = subprocess.run([sys.executable, "-c", "import sys, dagster_project.definitions; "
                            "print(sorted(name for name in sys.modules if name.startswith('dagster_k8s')))"],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip() == "[]"
