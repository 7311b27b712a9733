"""Warehouse settings, the embedded server's recovery, and Dagster's own storage on PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, asset, materialize

from billing_usage.settings import PROJECT_ROOT
from billing_usage.warehouse import Warehouse, start_embedded, stop_embedded


def test_url_round_trip_with_socket_directory_and_password():
    socket = Warehouse.from_url("postgresql://postgres:@/postgres?host=/tmp/pg%20data")
    assert socket.host == "/tmp/pg data" and socket.port == 5432 and socket.password == ""
    assert Warehouse.from_url(socket.url) == socket
    tcp = Warehouse.from_url("postgresql://svc:p%40ss:word@db.internal:6543/warehouse")
    assert (tcp.user, tcp.password, tcp.host, tcp.port, tcp.database) == (
        "svc", "p@ss:word", "db.internal", 6543, "warehouse")
    assert Warehouse.from_url(tcp.url) == tcp
    assert "p%40ss" not in tcp.display_url and "word" not in tcp.display_url


def test_dbt_env_carries_every_connection_setting():
    env = Warehouse("db", 6543, "svc", "secret", "wh").dbt_env()
    assert env == {"BILLING_USAGE_PGHOST": "db", "BILLING_USAGE_PGPORT": "6543", "BILLING_USAGE_PGUSER": "svc",
                   "DBT_ENV_SECRET_BILLING_USAGE_PGPASSWORD": "secret", "BILLING_USAGE_PGDATABASE": "wh",
                   "BILLING_USAGE_PGSSLMODE": "", "BILLING_USAGE_PGSSLROOTCERT": "", "BILLING_USAGE_PGSSLCERT": "",
                   "BILLING_USAGE_PGSSLKEY": ""}


def test_rejects_non_postgres_urls():
    with pytest.raises(ValueError, match="postgresql://"):
        Warehouse.from_url("mysql://root@localhost/db")


@pytest.mark.integration
def test_embedded_server_recovers_from_interrupted_init_and_restarts(tmp_path_factory):
    base = Path(tmp_path_factory.mktemp("embedded", numbered=True))
    pgdata = base / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("18\n")  # what an initdb killed half-way leaves
    try:
        first = start_embedded(pgdata)
        with first.connect() as connection, connection.cursor() as cursor:
            cursor.execute("create table kept (id int); insert into kept values (1)")
        assert stop_embedded(pgdata)
        again = start_embedded(pgdata)  # a later command reuses the data
        with again.connect() as connection, connection.cursor() as cursor:
            cursor.execute("select id from kept")
            assert cursor.fetchall() == [(1,)]
    finally:
        stop_embedded(pgdata)
        shutil.rmtree(base, ignore_errors=True)


@asset
def heartbeat() -> int:
    return 1


@pytest.mark.integration
def test_documented_dagster_postgres_instance_stores_runs(database_factory, tmp_path, monkeypatch):
    storage = database_factory("dagster")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", storage.sqlalchemy_url)
    instance = DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = materialize([heartbeat], instance=instance)
        assert result.success
    finally:
        instance.dispose()
    with storage.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select status from runs")
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute("select count(*) from event_logs where asset_key is not null")
        assert cursor.fetchone()[0] >= 1
