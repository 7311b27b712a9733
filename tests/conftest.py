"""Shared fixtures: a database of this run's own, the provider sandbox, and one full pipeline run."""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from dagster_project.local_env import PROVIDERS_ENV, sandbox_source_config
from dagster_project.warehouse import DATABASE_URL_ENV, Warehouse, create_database, drop_database, start_embedded
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread

TEST_SERVER_ENV = "BILLING_USAGE_TEST_DATABASE_URL"
# Copies of the official examples and signature vectors from shared/reference/provider-fixtures.
REFERENCE = Path(__file__).resolve().parent / "fixtures" / "provider_reference"
SMALL = SandboxConfig(seed=7, clients=3, agents_per_client=2, days=5, calls_per_agent_per_day=6)


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
