"""The directory loads the same from YAML, CSV or SQL, and overlapping assignments are refused."""

from __future__ import annotations

import csv
import os
import subprocess

import dlt
import pytest
import yaml

from dagster_project.transformation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from dlt_sources.directory import directory_source
from sandbox.agency import directory
from tests.conftest import SMALL

pytestmark = pytest.mark.integration
SECTIONS = ("clients", "agents", "resource_assignments")


def _load(warehouse, source, pipelines_dir) -> dict[str, list[tuple]]:
    pipeline = dlt.pipeline(pipeline_name="directory", dataset_name="raw_directory", pipelines_dir=pipelines_dir,
                            destination=dlt.destinations.postgres(credentials=warehouse.url))
    pipeline.run(source)
    tables = {}
    with warehouse.connect() as connection, connection.cursor() as cursor:
        for section in SECTIONS:
            cursor.execute(f"select * from raw_directory.{section}")
            names = [d.name for d in cursor.description if not d.name.startswith("_dlt")]
            cursor.execute(f"select {', '.join(names)} from raw_directory.{section}")
            tables[section] = sorted((tuple(sorted(zip(names, row, strict=True))) for row in cursor.fetchall()),
                                     key=repr)
    return tables


def _write_csv(folder, document) -> None:
    for section in SECTIONS:
        rows = document[section]
        with open(folder / f"{section}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


def test_yaml_csv_and_sql_directories_load_the_same_tables(database_factory, tmp_path):
    document = directory(SMALL)
    (tmp_path / "directory.yaml").write_text(yaml.safe_dump(document))
    csv_folder = tmp_path / "csv"
    csv_folder.mkdir()
    _write_csv(csv_folder, document)
    platform = database_factory("platform")
    with platform.connect() as connection, connection.cursor() as cursor:
        cursor.execute("""create schema agency;
            create table agency.clients (client_id text, name text, timezone text, billing_anchor_day int,
                                         currency text);
            create table agency.agents (agent_id text, client_id text, name text);
            create table agency.resource_assignments (client_id text, valid_from timestamptz,
                valid_to timestamptz, resource_type text, resource_id text, agent_id text);""")
        for section in SECTIONS:
            for row in document[section]:
                cursor.execute(f"insert into agency.{section} ({', '.join(row)}) values "
                               f"({', '.join(['%s'] * len(row))})", list(row.values()))
    loaded = [
        _load(database_factory("dir_yaml"), directory_source(path=str(tmp_path / "directory.yaml"), sql_url=None),
              str(tmp_path / "p1")),
        _load(database_factory("dir_csv"), directory_source(path=str(csv_folder), sql_url=None),
              str(tmp_path / "p2")),
        _load(database_factory("dir_sql"), directory_source(sql_url=platform.sqlalchemy_url, sql_schema="agency"),
              str(tmp_path / "p3")),
    ]
    assert len(loaded[0]["resource_assignments"]) == len(document["resource_assignments"])
    assert loaded[0] == loaded[1] == loaded[2]


def _dbt_directory_build(warehouse) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DBT_EXECUTABLE, "build", "--select", "stg_directory__resource_assignments", "--project-dir",
         str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        capture_output=True, text=True, env={**os.environ, **warehouse.dbt_env()})


@pytest.mark.parametrize("second_from, overlapping", [("2026-03-15T00:00:00Z", False),
                                                      ("2026-03-14T23:00:00Z", True)])
def test_overlapping_assignments_fail_the_build(database_factory, tmp_path, second_from, overlapping):
    document = {
        "clients": [{"client_id": "a", "name": "A", "timezone": "UTC", "billing_anchor_day": 1, "currency": "USD"},
                    {"client_id": "b", "name": "B", "timezone": "UTC", "billing_anchor_day": 1, "currency": "USD"}],
        "agents": [{"agent_id": "a1", "client_id": "a", "name": "A1"}, {"agent_id": "b1", "client_id": "b",
                                                                         "name": "B1"}],
        "resource_assignments": [
            {"resource_type": "twilio_phone_number", "resource_id": "+15550001", "client_id": "a", "agent_id": "a1",
             "valid_from": "2026-03-01T00:00:00Z", "valid_to": "2026-03-15T00:00:00Z"},
            {"resource_type": "twilio_phone_number", "resource_id": "+15550001", "client_id": "b", "agent_id": "b1",
             "valid_from": second_from, "valid_to": None},
        ],
    }
    (tmp_path / "directory.yaml").write_text(yaml.safe_dump(document))
    warehouse = database_factory("overlap")
    _load(warehouse, directory_source(path=str(tmp_path / "directory.yaml"), sql_url=None), str(tmp_path / "p"))
    result = _dbt_directory_build(warehouse)
    if overlapping:
        assert result.returncode != 0 and "assert_no_overlapping_assignments" in result.stdout
        assert "FAIL 1" in result.stdout
    else:
        assert result.returncode == 0, result.stdout[-2000:]
