"""The BI role, logged in on a built warehouse: reads the marts and reporting schemas, nothing else, and
writes nothing, including after dbt recreates the tables."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import replace

import pytest
from psycopg2 import errors

from billing_usage.bi_role import BiRoleConfig, verifier_matches
from billing_usage.settings import DATABASE_URL_ENV, PROJECT_ROOT, SettingsError
from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from tests.conftest import TEST_NOW, pipeline_environment, run_pipeline

pytestmark = pytest.mark.integration

READABLE = {"marts", "reporting"}


def _cli(warehouse, role: str, password: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, DATABASE_URL_ENV: warehouse.url, "BILLING_USAGE_BI_ROLE": role}
    env.pop("BILLING_USAGE_BI_PASSWORD", None)
    if password is not None:
        env["BILLING_USAGE_BI_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "cli.bi_role", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _relations(warehouse) -> dict[str, list[str]]:
    """schema -> its tables and views, as the warehouse's owner sees them."""
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select table_schema, table_name from information_schema.tables "
                       "where table_schema not in ('pg_catalog', 'information_schema') order by 1, 2")
        relations: dict[str, list[str]] = {}
        for schema, table in cursor.fetchall():
            relations.setdefault(schema, []).append(table)
    return relations


@pytest.fixture(scope="module")
def bi(database_factory, sandbox_server, tmp_path_factory):
    warehouse = database_factory("bi_role")
    with pipeline_environment(warehouse, sandbox_server, tmp_path_factory.mktemp("dir") / "directory.yaml"):
        assert run_pipeline().success
    role, password = f"bu_bi_{os.getpid()}_{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    created = _cli(warehouse, role, password)
    login = replace(warehouse, user=role, password=password)
    yield {"warehouse": warehouse, "role": role, "password": password, "created": created, "login": login}
    dropped = _cli(warehouse, role, None, "--drop")
    assert dropped.returncode == 0, dropped.stderr


def _as_bi(bi, statement: str, read_write: bool = False):
    connection = bi["login"].connect()
    try:
        with connection.cursor() as cursor:
            if read_write:
                cursor.execute("set transaction read write")
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.rollback()
        connection.close()


def test_the_command_creates_a_login_with_the_password_never_shown(bi):
    created = bi["created"]
    assert created.returncode == 0, created.stderr
    assert f"Role {bi['role']} created" in created.stdout
    assert bi["password"] not in created.stdout + created.stderr
    with bi["warehouse"].connect() as connection, connection.cursor() as cursor:
        cursor.execute("select a.rolcanlogin, a.rolsuper, a.rolcreaterole, a.rolcreatedb, a.rolpassword, r.rolconfig "
                       "from pg_authid a join pg_roles r on r.oid = a.oid where a.rolname = %s", (bi["role"],))
        can_login, superuser, create_role, create_db, stored, config = cursor.fetchone()
    assert (can_login, superuser, create_role, create_db) == (True, False, False, False)
    assert stored.startswith("SCRAM-SHA-256$") and bi["password"] not in stored
    assert verifier_matches(stored, bi["password"]) and not verifier_matches(stored, bi["password"] + "x")
    assert "default_transaction_read_only=on" in config


def test_it_reads_every_table_of_the_marts_and_reporting(bi):
    relations = _relations(bi["warehouse"])
    assert {"fct_cycle_usage", "fct_daily_usage", "fct_usage_events", "dim_clients"} <= set(relations["marts"])
    assert "rpt_cycle_statements" in relations["reporting"]
    for schema in READABLE:
        for table in relations[schema]:
            _as_bi(bi, f'select * from "{schema}"."{table}" limit 1')
    with bi["warehouse"].connect() as connection, connection.cursor() as cursor:
        cursor.execute("select count(*), sum(total_cost_usd) from reporting.rpt_cycle_statements")
        expected = cursor.fetchone()
    assert expected[0] > 0
    assert _as_bi(bi, "select count(*), sum(total_cost_usd) from reporting.rpt_cycle_statements") == [expected]


def test_it_reads_nothing_in_raw_ops_the_directory_or_the_layers_below(bi):
    relations = _relations(bi["warehouse"])
    others = {schema: tables for schema, tables in relations.items() if schema not in READABLE}
    assert {"raw_retell", "raw_twilio", "raw_openrouter", "raw_webhooks", "raw_directory", "ops", "snapshots",
            "staging", "intermediate"} <= set(others)
    refused = 0
    for schema, tables in others.items():
        for table in tables:
            with pytest.raises(errors.InsufficientPrivilege):
                _as_bi(bi, f'select 1 from "{schema}"."{table}" limit 1')
            refused += 1
    assert refused >= 20  # every raw, ops, snapshot, staging and intermediate relation was tried


@pytest.mark.parametrize("statement", [
    "insert into marts.fct_cycle_usage (cycle_usage_id) values ('x')",
    "update reporting.rpt_cycle_statements set total_cost_usd = 0",
    "delete from marts.fct_cycle_adjustments",
    "truncate marts.fct_daily_usage",
    "create table marts.bi_scratch (a int)",
    "create table reporting.bi_scratch (a int)",
    "create table public.bi_scratch (a int)",
    "create view reporting.bi_view as select 1 as a",
    "create schema bi_own",
    "drop table marts.fct_calls",
    "grant select on raw_directory.clients to public",
])
def test_it_writes_nothing_even_in_a_read_write_transaction(bi, statement):
    with pytest.raises(errors.ReadOnlySqlTransaction):  # sessions start read-only ...
        _as_bi(bi, statement)
    with pytest.raises(errors.InsufficientPrivilege):  # ... and the privileges are not there either
        _as_bi(bi, statement, read_write=True)


def test_tables_dbt_recreates_stay_readable_and_a_second_run_changes_nothing(bi):
    warehouse = bi["warehouse"]
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select 'marts.fct_calls'::regclass::oid, 'reporting.rpt_cycle_statements'::regclass::oid")
        before = cursor.fetchone()
    project = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    result = subprocess.run(
        [DBT_EXECUTABLE, "run", "--select", "fct_calls", "rpt_cycle_statements", "--vars",
         json.dumps({"as_of": TEST_NOW}), *project],
        capture_output=True, text=True, env={**os.environ, **warehouse.dbt_env()})
    assert result.returncode == 0, result.stdout[-3000:]
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select 'marts.fct_calls'::regclass::oid, 'reporting.rpt_cycle_statements'::regclass::oid")
        assert cursor.fetchone() != before  # new tables, not the ones granted at first
    assert _as_bi(bi, "select count(*) from marts.fct_calls")[0][0] > 0
    assert _as_bi(bi, "select count(*) from reporting.rpt_cycle_statements")[0][0] > 0

    again = _cli(warehouse, bi["role"], bi["password"])
    assert again.returncode == 0 and f"Role {bi['role']} updated" in again.stdout
    with pytest.raises(errors.InsufficientPrivilege):
        _as_bi(bi, "select 1 from raw_directory.clients limit 1")


def test_configuration_errors_name_the_variable_never_the_value():
    with pytest.raises(SettingsError, match="BILLING_USAGE_BI_PASSWORD") as short:
        BiRoleConfig.from_env({"BILLING_USAGE_BI_PASSWORD": "hunter2"})
    assert "hunter2" not in str(short.value)
    with pytest.raises(SettingsError, match="BILLING_USAGE_BI_ROLE"):
        BiRoleConfig.from_env({"BILLING_USAGE_BI_ROLE": "bi; drop table x", "BILLING_USAGE_BI_PASSWORD": "x" * 20})
    config = BiRoleConfig.from_env({"BILLING_USAGE_BI_PASSWORD": "a-long-enough-secret"})
    assert config.role == "billing_bi" and "a-long-enough-secret" not in repr(config)
