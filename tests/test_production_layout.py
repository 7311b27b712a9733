"""The production layout (docs/production.md): TLS settings of a managed warehouse reach every client."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading

import dlt
import pytest

from billing_usage.settings import PROJECT_ROOT
from billing_usage.warehouse import Warehouse
from dagster_project.transformation import DBT_EXECUTABLE

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
