"""The real path: sandbox -> dlt -> PostgreSQL -> dbt, run as the Dagster job, checked against the sandbox."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance

from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR, dbt_project, retention_dbt_models
from sandbox.agency import clients
from sandbox.totals import expected_totals, iter_records
from tests.conftest import SMALL, pipeline_environment, run_pipeline

pytestmark = pytest.mark.integration


def _query(warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def _canonical_totals(warehouse) -> dict[tuple[str, str], tuple[int, Decimal]]:
    rows = _query(warehouse, """
        select provider, client_id, count(distinct object_type || ':' || external_id), sum(cost_usd)
        from marts.fct_usage_events group by provider, client_id""")
    return {(provider, client): (objects, cost) for provider, client, objects, cost in rows}


def _raw_counts(warehouse) -> dict[str, int]:
    tables = ("raw_retell.calls", "raw_twilio.calls", "raw_twilio.messages", "raw_openrouter.activity")
    return {table: _query(warehouse, f"select count(*) from {table}")[0][0] for table in tables}


@pytest.fixture(scope="module")
def pipeline(database_factory, sandbox_server, tmp_path_factory):
    """Two runs of the usage_pipeline job into a fresh database; yields the warehouse and run results."""
    warehouse = database_factory("pipeline")
    with pipeline_environment(warehouse, sandbox_server, tmp_path_factory.mktemp("dir") / "directory.yaml"):
        instance = DagsterInstance.ephemeral()
        first = run_pipeline(instance)
        after_first = (_raw_counts(warehouse), _canonical_totals(warehouse))
        second = run_pipeline(instance)
        yield {"warehouse": warehouse, "first": first, "second": second, "after_first": after_first,
               "scratch": tmp_path_factory.mktemp("dbt")}


def test_runs_succeed_and_materialize_every_asset(pipeline):
    assert pipeline["first"].success and pipeline["second"].success
    from dagster_project.definitions import defs

    materialized = {event.asset_key for event in pipeline["first"].get_asset_materialization_events()}
    jobs = [defs.resolve_job_def(name) for name in ("collect_usage", "build_models")]
    expected = {key for job in jobs for key in job.asset_layer.executable_asset_keys}
    assert AssetKey(["marts", "fct_daily_usage"]) in expected
    assert materialized == expected  # retention and reports run on their own schedules


def test_every_dbt_test_reports_as_an_asset_check_never_an_observation(pipeline):
    manifest = json.loads(Path(dbt_project.manifest_path).read_text())
    data_tests = {node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "test"}
    decided_by_retention = {spec.name for spec in retention_dbt_models.check_specs}  # test_retention runs them
    build = pipeline["first"].build
    evaluated = {evaluation.check_name for evaluation in build.get_asset_check_evaluations()}
    assert decided_by_retention < data_tests and not decided_by_retention & evaluated
    assert data_tests - decided_by_retention <= evaluated, sorted(data_tests - decided_by_retention - evaluated)
    observed = [event for event in build.all_events if event.is_asset_observation
                and "skipped" not in event.asset_observation_data.asset_observation.metadata]
    assert observed == []


def test_canonical_totals_equal_what_the_sandbox_generated(pipeline):
    expected = {key: (t.objects, t.cost_usd) for key, t in expected_totals(SMALL).items()}
    assert pipeline["after_first"][1] == expected
    assert _canonical_totals(pipeline["warehouse"]) == expected


def test_raw_tables_hold_each_object_once(pipeline):
    generated = defaultdict(int)
    for provider, _, record in iter_records(SMALL):
        table = {"retell": "raw_retell.calls", "openrouter": "raw_openrouter.activity"}.get(provider)
        table = table or ("raw_twilio.calls" if record["sid"].startswith("CA") else "raw_twilio.messages")
        generated[table] += 1
    assert _raw_counts(pipeline["warehouse"]) == dict(generated)
    assert pipeline["after_first"][0] == dict(generated)  # the second run duplicated nothing


def test_daily_usage_equals_events_per_provider(pipeline):
    daily = dict(_query(pipeline["warehouse"],
                        "select provider, sum(cost_usd) from marts.fct_daily_usage group by provider"))
    generated = defaultdict(Decimal)
    for (provider, _), total in expected_totals(SMALL).items():
        generated[provider] += total.cost_usd
    assert daily == dict(generated)
    days = _query(pipeline["warehouse"], "select min(usage_date), max(usage_date) from marts.fct_daily_usage")
    assert days == [(SMALL.start_date, SMALL.end_date)]


def test_events_are_attributed_to_the_owning_client_and_agent(pipeline):
    owner = {a.retell_agent_id: (c.client_id, a.agent_id) for c in clients(SMALL) for a in c.agents}
    rows = _query(pipeline["warehouse"], """
        select attributes ->> 'retell_agent_id', client_id, agent_id, attribution_status
        from marts.fct_usage_events where provider = 'retell'""")
    assert rows and all(owner[agent] == (client, agent_id) for agent, client, agent_id, _ in rows)
    statuses = _query(pipeline["warehouse"], "select distinct attribution_status from marts.fct_usage_events")
    assert statuses == [("attributed",)]
    twilio_agents = _query(pipeline["warehouse"], """
        select count(*) filter (where agent_id is null), count(*) from marts.fct_usage_events
        where provider = 'twilio'""")
    assert twilio_agents[0][0] == 0 and twilio_agents[0][1] > 0


def test_marts_hold_no_phone_numbers_in_the_clear(pipeline):
    numbers = [a.phone_number for c in clients(SMALL) for a in c.agents]
    leaked = _query(pipeline["warehouse"], f"""
        select count(*) from marts.fct_usage_events
        where attributes::text ~ '{"|".join(n.replace("+", "[+]") for n in numbers)}|[+]1303'""")
    assert leaked == [(0,)]


def test_dbt_unit_tests_pass(pipeline):
    result = subprocess.run(
        [DBT_EXECUTABLE, "test", "--select", "test_type:unit", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR)],
        capture_output=True, text=True, env={**os.environ, **pipeline["warehouse"].dbt_env()},
    )
    assert result.returncode == 0, result.stdout[-3000:]
    unit_tests = json.loads(Path(dbt_project.manifest_path).read_text())["unit_tests"]
    passed = int(re.search(r"PASS=(\d+)", result.stdout).group(1))
    assert len(unit_tests) >= 10 and passed >= len(unit_tests) and "ERROR=0" in result.stdout


def test_collector_state_shows_each_account(pipeline):
    rows = _query(pipeline["warehouse"], """
        select source, resource, account, cursor_position, last_success_at is not null, last_error,
               consecutive_failures
        from ops.collector_state""")
    accounts = {(source, resource, account) for source, resource, account, *_ in rows}
    subaccounts = {c.twilio_subaccount_sid for c in clients(SMALL)}
    assert {("retell", "calls", "workspace_0")} <= accounts
    assert {("twilio", "calls", sid) for sid in subaccounts} <= accounts
    assert {("twilio", "usage_records", SMALL.twilio_account_sid)} <= accounts
    assert sum(1 for source, resource, *_ in rows if (source, resource) == ("openrouter", "activity")) == 3
    assert all(cursor and succeeded and error is None and failures == 0
               for _, _, _, cursor, succeeded, error, failures in rows)
    runs = _query(pipeline["warehouse"], "select source, count(*) from ops.collector_runs where succeeded "
                                         "group by source order by source")
    assert runs == [("directory", 2), ("openrouter", 2), ("retell", 2), ("twilio", 2)]


def test_collection_checks_pass_after_a_fresh_run(pipeline):
    results = {(e.asset_key.path[-2], e.check_name): e.passed
               for e in pipeline["second"].get_asset_check_evaluations() if e.check_name == "collection_fresh"}
    assert results == {("raw_retell", "collection_fresh"): True, ("raw_twilio", "collection_fresh"): True,
                       ("raw_openrouter", "collection_fresh"): True}


def test_fct_calls_joins_each_retell_call_to_its_twilio_leg(pipeline):
    rows = _query(pipeline["warehouse"], """
        select link_status, count(*), sum(total_cost_usd), bool_or(client_mismatch)
        from marts.fct_calls group by link_status""")
    by_status = {status: (count, cost, mismatch) for status, count, cost, mismatch in rows}
    calls = [r for provider, _, r in iter_records(SMALL) if provider == "retell"]
    phone = sum(1 for c in calls if c["call_type"] == "phone_call")
    assert set(by_status) == {"matched", "web_call"}
    assert by_status["matched"][0] == phone and by_status["web_call"][0] == len(calls) - phone
    assert not any(mismatch for _, _, mismatch in by_status.values())
    total = sum(cost for _, cost, _ in by_status.values())
    billed = _query(pipeline["warehouse"], "select sum(cost_usd) from marts.fct_usage_events "
                                           "where object_type = 'call'")[0][0]
    assert total == billed


def test_each_run_records_the_rows_it_loaded(pipeline):
    first_runs = dict(_query(pipeline["warehouse"], """
        select distinct on (source) source, rows_loaded from ops.collector_runs
        where succeeded order by source, started_at"""))
    raw = _raw_counts(pipeline["warehouse"])
    assert first_runs["retell"] == raw["raw_retell.calls"]
    usage_records = _query(pipeline["warehouse"], "select count(*) from raw_twilio.usage_records")[0][0]
    assert first_runs["twilio"] == raw["raw_twilio.calls"] + raw["raw_twilio.messages"] + usage_records


def _landed_raw_tables(warehouse) -> set[str]:
    return {f"{schema}.{table}" for schema, table in _query(warehouse, """
        select table_schema, table_name from information_schema.tables
        where table_schema like 'raw\\_%' and table_schema not like '%\\_staging'
          and table_name not like '\\_dlt\\_%'""")}  # dlt's own tables and merge staging are not ours


def test_every_raw_table_is_in_the_registry(pipeline):
    from billing_usage.registry import raw_tables

    landed = _landed_raw_tables(pipeline["warehouse"])
    registered = {table.relation for table in raw_tables()}
    assert landed and landed <= registered, f"not in the registry: {sorted(landed - registered)}"


def test_collected_raw_tables_carry_the_indexes_the_models_read_them_by(pipeline):
    from billing_usage.raw_indexes import wanted_indexes
    from billing_usage.registry import raw_tables

    indexed = defaultdict(set)
    for relation, definition in _query(pipeline["warehouse"], """
            select schemaname || '.' || tablename, indexdef from pg_indexes where schemaname like 'raw\\_%'"""):
        columns = re.search(r"\((.*)\)$", definition).group(1)
        indexed[relation].add(tuple(column.strip('"') for column in columns.split(", ")))
    landed = _landed_raw_tables(pipeline["warehouse"])
    expected = {table.relation: set(wanted_indexes(table))
                for table in raw_tables() if table.owner != "receiver" and table.relation in landed}
    missing = {relation: columns - indexed[relation] for relation, columns in expected.items()
               if columns - indexed[relation]}
    assert not missing, missing
    assert ("start_date",) in indexed["raw_twilio.usage_records"]  # coverage reads a window of days by it


def test_compiling_and_documenting_change_nothing_in_the_database(pipeline):
    warehouse = pipeline["warehouse"]

    def ops_snapshot():
        tables = [table for (table,) in _query(warehouse, "select table_name from information_schema.tables "
                                                          "where table_schema = 'ops' order by 1")]
        return {table: _query(warehouse, f"select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "
                                         f"from ops.{table} t")[0][0] for table in tables}

    before = ops_snapshot()
    for command in (["compile"], ["docs", "generate"], ["show", "--select", "fct_usage_events"]):
        result = subprocess.run([DBT_EXECUTABLE, *command, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
                                 str(DBT_PROJECT_DIR), "--target-path", str(Path(pipeline["scratch"]) / "target")],
                                capture_output=True, text=True, env={**os.environ, **warehouse.dbt_env()})
        assert result.returncode == 0, result.stdout[-3000:]
    assert before and ops_snapshot() == before
