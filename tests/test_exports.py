"""Exports on a real pipeline run of the sandbox: make export's statements (CSV = JSON = fct_cycle_usage +
adjustments, to the cent), the FOCUS 1.2 file checked against the specification, a coverage ERROR blocking a
statement, an adjustment billed into a later cycle, and the Dagster assets after a completed day."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from dagster import AssetKey
from dagster._core.storage.tags import PARTITION_NAME_TAG

from billing_usage.exports.focus import HEADER, validate_rows
from billing_usage.exports.statements import LINE_FIELDS
from billing_usage.settings import DATABASE_URL_ENV, NOW_ENV, PROJECT_ROOT
from dagster_project.jobs import completed_days_request
from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from sandbox.agency import clients
from tests.conftest import SMALL, TEST_END_DATE, TEST_NOW, pipeline_environment, run_job, run_pipeline

pytestmark = pytest.mark.integration

MONTH = TEST_END_DATE.strftime("%Y-%m")
LATE_CALL = "call_exported_after_close"
# FOCUS 1.2's 21 Mandatory columns and their data types, read from the specification's column pages
FOCUS_1_2_MANDATORY = {
    "BilledCost": "Decimal", "BillingAccountId": "String", "BillingAccountName": "String",
    "BillingCurrency": "String", "BillingPeriodEnd": "Date/Time", "BillingPeriodStart": "Date/Time",
    "ChargeCategory": "String", "ChargeClass": "String", "ChargeDescription": "String",
    "ChargePeriodEnd": "Date/Time", "ChargePeriodStart": "Date/Time", "ContractedCost": "Decimal",
    "EffectiveCost": "Decimal", "InvoiceIssuerName": "String", "ListCost": "Decimal", "PricingQuantity": "Decimal",
    "PricingUnit": "String", "ProviderName": "String", "PublisherName": "String", "ServiceCategory": "String",
    "ServiceName": "String",
}
FOCUS_NOT_NULL = {"BilledCost", "BillingAccountId", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart",
                  "ChargeCategory", "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost", "EffectiveCost",
                  "InvoiceIssuerName", "ListCost", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName"}
ISSUE_COLUMNS = {"BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
                 "BillingPeriodStart", "BillingPeriodEnd", "ChargeCategory", "ServiceName", "ServiceCategory",
                 "ProviderName", "PublisherName", "ConsumedQuantity", "ConsumedUnit", "PricingQuantity",
                 "PricingUnit", "SubAccountId", "SubAccountName", "ResourceId", "Tags"}


def _query(warehouse, sql: str, params=None) -> list[tuple]:
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _export(warehouse, out: Path, cycle: str, now: str = TEST_NOW) -> subprocess.CompletedProcess:
    env = {**os.environ, DATABASE_URL_ENV: warehouse.url, NOW_ENV: now}
    return subprocess.run([sys.executable, "-m", "cli.export", "--cycle", cycle, "--out", str(out)], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def _dbt(warehouse, *args: str, as_of: str) -> None:
    result = subprocess.run(
        [DBT_EXECUTABLE, *args, "--exclude", "test_type:unit", "--vars", json.dumps({"as_of": as_of}),
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        capture_output=True, text=True, env={**os.environ, **warehouse.dbt_env()})
    assert result.returncode == 0, result.stdout[-4000:]


def _statements(out: Path) -> dict[str, tuple[dict, list[dict]]]:
    """cycle id -> (JSON document, CSV rows) of every statement written under `out`."""
    found = {}
    for path in sorted((out / "statements").glob("*/*.json")):
        with path.with_suffix(".csv").open(newline="") as file:
            found[json.loads(path.read_text())["statement_id"]] = (json.loads(path.read_text()),
                                                                   list(csv.DictReader(file)))
    return found


def _focus(out: Path) -> list[tuple[list[str], list[dict]]]:
    files = []
    for path in sorted((out / "focus").glob("*/*.csv")):
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            files.append((list(reader.fieldnames), list(reader)))
    return files


def _marts_totals(warehouse) -> dict[str, Decimal]:
    """cycle id -> Σ fct_cycle_usage.cost_usd + Σ adjustments billed into it, straight from the marts."""
    return dict(_query(warehouse, """
        select cycle_id, sum(cost) from (
            select cycle_id, coalesce(cost_usd, 0) as cost from marts.fct_cycle_usage
            union all
            select bills_into_cycle_id, delta_cost_usd from marts.fct_cycle_adjustments
        ) as parts group by cycle_id"""))


@pytest.fixture(scope="module")
def exported(database_factory, sandbox_server, tmp_path_factory):
    warehouse = database_factory("exports")
    root = tmp_path_factory.mktemp("exports")
    with pipeline_environment(warehouse, sandbox_server, root / "directory.yaml"):
        assert run_pipeline().success
    state = {"warehouse": warehouse, "root": root}

    # make export CYCLE=<this month>, and the marts it must reconcile with
    state["march"] = _export(warehouse, root / "march", MONTH)
    state["march_totals"] = _marts_totals(warehouse)
    state["march_cycles"] = _query(warehouse, "select cycle_id, client_id from marts.dim_billing_cycles "
                                              "where to_char(local_start_date, 'YYYY-MM') = %s and cycle_start <= %s",
                                   (MONTH, TEST_NOW))

    # the Dagster job after the rollup of the last complete day, exactly as its sensor asks for it
    with pipeline_environment(warehouse, sandbox_server, root / "directory.yaml"), \
            pytest.MonkeyPatch.context() as env:
        env.setenv("BILLING_USAGE_EXPORTS_DIR", str(root / "dagster"))
        state["job"] = run_job("export_cycles", partition_key=TEST_END_DATE.isoformat())

        # a coverage ERROR on a day of one client's cycle blocks that statement, and only that one
        blocked_cycle, blocked_client = state["march_cycles"][0]
        state["blocked_client"], state["blocked_cycle"] = blocked_client, blocked_cycle
        with warehouse.connect() as connection, connection.cursor() as cursor:
            cursor.execute("""
                insert into marts.fct_coverage_daily (coverage_id, provider, account, client_id, usage_date, category,
                    measure, ours, theirs, ratio, status, reason, provider_as_of, computed_at)
                values ('planted', 'twilio', 'planted-account', %s, %s, 'calls', 'count', 90, 100, 0.9, 'error',
                        'planted_gap', %s, %s)""", (blocked_client, TEST_END_DATE, TEST_NOW, TEST_NOW))
        _dbt(warehouse, "run", "--select", "rpt_cycle_statements", as_of=TEST_NOW)
        shutil.copytree(root / "march", root / "blocked")  # yesterday's files must not pass for today's
        state["blocked"] = _export(warehouse, root / "blocked", MONTH)
        state["blocked_files"] = sorted(p.name for p in (root / "blocked" / "statements" / blocked_client).iterdir())
        env.setenv("BILLING_USAGE_EXPORTS_DIR", str(root / "dagster_blocked"))
        state["blocked_job"] = run_job("export_cycles", partition_key=TEST_END_DATE.isoformat())
        with warehouse.connect() as connection, connection.cursor() as cursor:
            cursor.execute("delete from marts.fct_coverage_daily where coverage_id = 'planted'")
        _dbt(warehouse, "run", "--select", "rpt_cycle_statements", as_of=TEST_NOW)
        state["unblocked"] = _export(warehouse, root / "blocked", MONTH)

    # every cycle with data closes; a late call then becomes an adjustment billed into the cycle open then
    as_of = datetime.combine(SMALL.end_date, datetime.min.time(), UTC) + timedelta(days=70)
    _dbt(warehouse, "build", as_of=as_of.isoformat())
    agent = clients(SMALL)[0].agents[0]
    occurred = datetime.combine(SMALL.start_date, datetime.min.time(), UTC) + timedelta(hours=12)
    call = {"call_id": LATE_CALL, "agent_id": agent.retell_agent_id, "call_type": "web_call", "call_status": "ended",
            "start_timestamp": int(occurred.timestamp() * 1000), "duration_ms": 90_000,
            "call_cost": {"product_costs": [], "total_duration_seconds": 90, "combined_cost": 250}}
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("insert into raw_webhooks.retell_events (delivery_id, event, call_id, payload) "
                       "values ('late-export', 'call_analyzed', %s, %s)",
                       (LATE_CALL, json.dumps({"event": "call_analyzed", "call": call})))
    later = (as_of + timedelta(hours=1)).isoformat()
    _dbt(warehouse, "build", as_of=later)
    (state["adjustment"],) = _query(warehouse, """
        select adjustment_id, cycle_id, bills_into_cycle_id, delta_quantity, delta_cost_usd, reason
        from marts.fct_cycle_adjustments""")
    state["late"] = _export(warehouse, root / "late", state["adjustment"][2], now=later)
    state["late_totals"] = _marts_totals(warehouse)
    state["corrected_bounds"] = _query(warehouse, "select distinct cycle_start, cycle_end from marts.fct_cycle_usage "
                                                  "where cycle_id = %s", (state["adjustment"][1],))[0]
    state["client"] = clients(SMALL)[0].client_id
    return state


def test_make_export_writes_one_statement_per_client_cycle_of_the_month(exported):
    result = exported["march"]
    assert result.returncode == 0, result.stderr
    statements = _statements(exported["root"] / "march")
    assert exported["march_cycles"]
    assert set(statements) == {cycle_id for cycle_id, _ in exported["march_cycles"]}
    assert sorted(document["client_id"] for document, _ in statements.values()) == \
        sorted(client for _, client in exported["march_cycles"])
    assert f"{len(statements)} statement(s) written, 0 blocked" in result.stdout


def test_csv_and_json_carry_the_same_figures(exported):
    for document, rows in _statements(exported["root"] / "march").values():
        assert document["lines"], document["statement_id"]
        assert len(rows) == len(document["lines"])
        for line, row in zip(document["lines"], rows, strict=True):
            for name in LINE_FIELDS:
                assert (row[name] or None) == (None if line[name] is None else str(line[name])), name
            assert row["statement_id"] == document["statement_id"] and row["client_id"] == document["client_id"]


def test_statements_reconcile_to_the_cent_with_cycle_usage_and_adjustments(exported):
    for cycle_id, (document, rows) in _statements(exported["root"] / "march").items():
        expected = exported["march_totals"][cycle_id]
        from_csv = sum(Decimal(row["total_cost_usd"]) for row in rows)
        from_json = sum(Decimal(line["total_cost_usd"]) for line in document["lines"])
        assert Decimal(document["totals"]["total_cost_usd"]) == from_json == from_csv == expected
        assert from_csv.quantize(Decimal("0.01")) == expected.quantize(Decimal("0.01"))
        assert expected > 0  # real usage, not an empty statement
        for line in document["lines"]:
            assert Decimal(line["total_cost_usd"]) == Decimal(line["cost_usd"]) + Decimal(line["adjustment_cost_usd"])
        assert document["cycle_status"] in ("open", "settling", "closed")
        assert {provider["coverage_status"] for provider in document["providers"]} <= {
            "ok", "warn", "not_yet_comparable", "not_measured"}
        assert document["data_refreshed_at"] and document["computed_at"] == TEST_NOW.replace("+00:00", "Z")


def test_the_focus_export_conforms_to_focus_1_2(exported):
    files = _focus(exported["root"] / "march")
    statements = _statements(exported["root"] / "march")
    assert len(files) == len(statements)
    decimal = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$")
    instant = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
    for header, rows in files:
        assert set(header) >= set(FOCUS_1_2_MANDATORY) | ISSUE_COLUMNS
        assert tuple(header) == HEADER
        custom = [name for name in header if name.startswith("x_")]
        assert header[-len(custom):] == custom  # custom columns after every FOCUS column
        assert validate_rows(header, rows) == len(rows) > 0
        for row in rows:
            for name, data_type in FOCUS_1_2_MANDATORY.items():
                if name in FOCUS_NOT_NULL:
                    assert row[name], name
                if row[name] and data_type == "Decimal":
                    assert decimal.match(row[name]), (name, row[name])
                if data_type == "Date/Time":
                    assert instant.match(row[name]), (name, row[name])
            tags = json.loads(row["Tags"])
            assert tags["client"] == row["BillingAccountId"] and tags.get("agent") == (row["ResourceId"] or None)
            assert row["ChargeCategory"] == "Usage" and row["BillingCurrency"] == "USD"
            assert row["ConsumedQuantity"] and row["ConsumedUnit"] and row["PricingUnit"] == row["ConsumedUnit"]
        (invoice,) = {row["InvoiceId"] for row in rows}
        billed = sum(Decimal(row["BilledCost"]) for row in rows)
        assert billed == Decimal(statements[invoice][0]["totals"]["total_cost_usd"])


def test_focus_rows_are_the_cycle_usage_per_agent(exported):
    warehouse = exported["warehouse"]
    for _, rows in _focus(exported["root"] / "march"):
        cycle_id = rows[0]["InvoiceId"]
        expected = _query(warehouse, "select agent_id, provider, metric, quantity, coalesce(cost_usd, 0) "
                                     "from marts.fct_cycle_usage_by_agent where cycle_id = %s", (cycle_id,))
        got = {(row["ResourceId"] or None, row["x_Metric"], Decimal(row["ConsumedQuantity"]),
                Decimal(row["BilledCost"])) for row in rows}
        assert got == {(agent, metric, quantity, cost) for agent, _, metric, quantity, cost in expected}


def test_a_coverage_error_blocks_the_statement_with_a_reason_and_a_count(exported):
    blocked, client, cycle_id = exported["blocked"], exported["blocked_client"], exported["blocked_cycle"]
    assert blocked.returncode == 1
    assert f"BLOCKED {client} cycle" in blocked.stdout and "twilio: " in blocked.stdout
    assert "planted_gap" in blocked.stdout
    written = len(exported["march_cycles"]) - 1
    assert f"{written} statement(s) written, 1 blocked by a coverage error" in blocked.stdout
    # the previous export's statement is gone, so it cannot pass for the current one; a note says why
    assert [name for name in exported["blocked_files"] if cycle_id in name] == \
        [next(name for name in exported["blocked_files"] if name.endswith(f"{cycle_id}.BLOCKED.txt"))]
    # once coverage recovers, the statement is written again and the note removed
    unblocked = exported["unblocked"]
    assert unblocked.returncode == 0 and f"{written + 1} statement(s) written, 0 blocked" in unblocked.stdout
    assert set(_statements(exported["root"] / "blocked")) == {cycle for cycle, _ in exported["march_cycles"]}
    assert not list((exported["root"] / "blocked" / "statements").glob("*/*.BLOCKED.txt"))


def test_an_adjustment_is_billed_into_the_statement_of_the_open_cycle(exported):
    adjustment_id, corrected, bills_into, quantity, cost, reason = exported["adjustment"]
    assert (quantity, cost, reason) == (Decimal(90), Decimal("2.50"), "late_event")
    late = exported["late"]
    assert late.returncode == 0, late.stderr
    ((document, rows),) = _statements(exported["root"] / "late").values()
    assert document["statement_id"] == bills_into != corrected and document["client_id"] == exported["client"]
    (line,) = [line for line in document["lines"] if line["adjustment_count"]]
    assert (line["provider"], line["metric"], line["adjustment_ids"]) == ("retell", "voice_seconds", [adjustment_id])
    assert Decimal(line["adjustment_cost_usd"]) == cost and Decimal(line["adjustment_quantity"]) == quantity
    (detail,) = document["adjustments"]
    assert (detail["adjustment_id"], detail["corrects_cycle_id"], detail["provider"], detail["metric"],
            Decimal(detail["delta_quantity"]), Decimal(detail["delta_cost_usd"]), detail["reason"]) == (
        adjustment_id, corrected, "retell", "voice_seconds", quantity, cost, "late_event")
    expected = exported["late_totals"][bills_into]
    assert Decimal(document["totals"]["total_cost_usd"]) == sum(Decimal(r["total_cost_usd"]) for r in rows) == expected
    assert Decimal(document["totals"]["adjustment_cost_usd"]) == cost

    ((header, focus_rows),) = _focus(exported["root"] / "late")
    assert validate_rows(header, focus_rows) == len(focus_rows)
    (correction,) = [row for row in focus_rows if row["ChargeClass"] == "Correction"]
    start, end = exported["corrected_bounds"]
    assert Decimal(correction["BilledCost"]) == cost and correction["x_AdjustmentId"] == adjustment_id
    assert correction["ChargePeriodStart"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert correction["ChargePeriodEnd"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert correction["BillingPeriodStart"] != correction["ChargePeriodStart"]
    assert correction["InvoiceId"] == bills_into and correction["x_CycleId"] == corrected


def test_the_dagster_assets_export_the_cycles_of_a_completed_day(exported):
    job = exported["job"]
    assert job.success
    materialized = {event.asset_key for event in job.get_asset_materialization_events()}
    assert materialized == {AssetKey(["exports", "cycle_statements"]), AssetKey(["exports", "focus_cost_and_usage"])}
    (check,) = job.get_asset_check_evaluations()
    assert check.check_name == "statements_not_blocked" and check.passed
    statements = _statements(exported["root"] / "dagster")
    overlapping = {cycle_id for (cycle_id,) in _query(exported["warehouse"], """
        select cycle_id from marts.dim_billing_cycles
        where cycle_start < %s::date + 1 and cycle_end > %s::date""", (TEST_END_DATE, TEST_END_DATE))}
    assert overlapping and overlapping <= set(statements)
    assert len(_focus(exported["root"] / "dagster")) == len(statements)

    blocked = exported["blocked_job"]
    assert blocked.success  # the other statements are written; the check is what turns red
    (check,) = blocked.get_asset_check_evaluations()
    assert not check.passed and check.severity.value == "ERROR" and check.metadata["blocked"].value == 1
    assert exported["blocked_cycle"] in check.metadata["reasons"].value
    assert set(_statements(exported["root"] / "dagster_blocked")) == set(statements) - {exported["blocked_cycle"]}


def test_the_sensor_asks_for_completed_days_only():
    day = TEST_END_DATE.isoformat()
    today = (TEST_END_DATE + timedelta(days=1)).isoformat()
    past_day = SimpleNamespace(run_id="r1", tags={PARTITION_NAME_TAG: day})
    request = completed_days_request(past_day, today, "exports-after")
    assert request.partition_key == day and request.run_key == "exports-after-r1"
    today_only = SimpleNamespace(run_id="r2", tags={PARTITION_NAME_TAG: today})
    assert completed_days_request(today_only, today, "exports-after") is None


def test_a_bad_cycle_argument_is_refused_by_name(exported):
    result = _export(exported["warehouse"], exported["root"] / "bad", "March")
    assert result.returncode == 2 and "CYCLE must be a month (YYYY-MM) or a cycle id" in result.stderr
    result = _export(exported["warehouse"], exported["root"] / "bad", "0" * 32)
    assert result.returncode == 2 and "no billing cycle has the id" in result.stderr
    assert not (exported["root"] / "bad").exists()
