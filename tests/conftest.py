"""Shared fixtures: a database of this run's own, the provider sandbox, and one full pipeline run.

The suite never reads the calendar: every sandbox ends on TEST_END_DATE and the business clock
(BILLING_USAGE_NOW) is fixed to the morning after it, for the whole session. Run the suite under
another clock with BILLING_USAGE_TEST_END_DATE=YYYY-MM-DD.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
import requests

from billing_usage.settings import DATABASE_URL_ENV, NOW_ENV, PII_SALT_ENV, PROVIDERS_ENV, SANDBOX_PII_SALT
from billing_usage.warehouse import Warehouse, create_database, drop_database, start_embedded
from cli.local_env import sandbox_source_config
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread

TEST_SERVER_ENV = "BILLING_USAGE_TEST_DATABASE_URL"
# Copies of the official examples and signature vectors from shared/reference/provider-fixtures.
REFERENCE = Path(__file__).resolve().parent / "fixtures" / "provider_reference"
TEST_END_DATE = date.fromisoformat(os.environ.get("BILLING_USAGE_TEST_END_DATE", "2026-03-15"))
TEST_NOW = datetime.combine(TEST_END_DATE + timedelta(days=1), time(6, 0)).isoformat() + "+00:00"
SMALL = SandboxConfig(seed=7, clients=3, agents_per_client=2, days=5, calls_per_agent_per_day=6,
                      end_date=TEST_END_DATE)


@pytest.fixture(scope="session", autouse=True)
def fixed_clock():
    """The business clock of the whole session: the morning after the sandboxes' last day."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(NOW_ENV, TEST_NOW)
        yield TEST_NOW


def reference_json(*parts: str):
    return json.loads(REFERENCE.joinpath(*parts).read_text())


@pytest.fixture(scope="session")
def postgres_server() -> Warehouse:
    """The server named by BILLING_USAGE_TEST_DATABASE_URL, else the embedded one."""
    url = os.environ.get(TEST_SERVER_ENV)
    return Warehouse.from_url(url) if url else start_embedded()


@pytest.fixture(scope="session")
def database_factory(postgres_server):
    """Creates databases named for this run; drops them when the run ends."""
    created: list[str] = []

    def create(label: str) -> Warehouse:
        name = f"bu_test_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        created.append(name)
        return create_database(postgres_server, name)

    yield create
    for name in created:
        drop_database(postgres_server, name)


@pytest.fixture(scope="session")
def sandbox_server():
    server = start_in_thread(SMALL)
    yield server
    server.shutdown()


@contextmanager
def pipeline_environment(warehouse: Warehouse, sandbox, directory_path: Path):
    """Environment for running the Dagster definitions against `warehouse` and the `sandbox` server,
    configured the way real providers are (BILLING_USAGE_PROVIDERS=live)."""
    directory_path.write_text(json.dumps(requests.get(f"{sandbox.base_url}/_sandbox/directory", timeout=10).json()))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PROVIDERS_ENV, "live")
        env.setenv(DATABASE_URL_ENV, warehouse.url)
        env.setenv(PII_SALT_ENV, SANDBOX_PII_SALT)
        for name, value in {**sandbox_source_config(sandbox.base_url, sandbox.config, str(directory_path)),
                            **warehouse.dbt_env()}.items():
            env.setenv(name, value)
        yield


def run_job(name: str, instance=None, partition_key: str | None = None):
    """Run a job of the definitions in process; partitioned jobs on today's partition unless told otherwise."""
    from dagster import DagsterInstance

    from dagster_project.definitions import defs
    from dagster_project.partitions import today_partition_key

    job = defs.resolve_job_def(name)
    partition = (partition_key or today_partition_key()) if job.partitions_def else None
    return job.execute_in_process(instance=instance or DagsterInstance.ephemeral(), partition_key=partition)


def run_pipeline(instance=None, partition_key: str | None = None):
    """Collection then the model build, as the schedule and its sensor run them."""
    from dagster import DagsterInstance

    from cli.runs import run_usage_pipeline

    return run_usage_pipeline(instance or DagsterInstance.ephemeral(), partition_key)


def deliver_retell_web_call(warehouse: Warehouse, delivery_id: str, call_id: str, retell_agent_id: str,
                            started: datetime, seconds: int, cents: int) -> None:
    """A Retell call_analyzed webhook for an ended web call, stored as the receiver stores a delivery."""
    call = {"call_id": call_id, "agent_id": retell_agent_id, "call_type": "web_call", "call_status": "ended",
            "start_timestamp": int(started.timestamp() * 1000), "duration_ms": seconds * 1000,
            "call_cost": {"product_costs": [], "total_duration_seconds": seconds, "combined_cost": cents}}
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("insert into raw_webhooks.retell_events (delivery_id, event, call_id, payload) "
                       "values (%s, 'call_analyzed', %s, %s)",
                       (delivery_id, call_id, json.dumps({"event": "call_analyzed", "call": call})))
