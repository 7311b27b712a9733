"""dlt_sources.columnar and dlt_sources.destination: listed records loaded as Arrow tables and COPY land what dlt's
row-by-row path lands, empty strings included; records that do not fit go to quarantine with their reason."""

from __future__ import annotations

import json

import dlt
import pytest

from dlt_sources.columnar import arrow_page, column_hints
from dlt_sources.destination import warehouse_destination
from dlt_sources.quarantine import quarantined
from tests.conftest import pipeline_environment, run_job, run_pipeline

pytestmark = pytest.mark.integration
HINTS = {"price": "text", "metadata": "json", "error_code": "bigint"}
DLT_COLUMNS = ("_dlt_load_id", "_dlt_id")

# Every kind of value a listing holds, and the strings CSV must quote.
RECORDS = [
    {"sid": "CA1", "price": "-0.0085", "count_unit": "", "duration_ms": 61_000, "cost": 1.5, "answered": True,
     "metadata": {"client": "acme", "tags": ["a", "b"]}, "subresource_uris": {"events": "/x"},
     "error_code": None, "note": 'a "quoted", comma\nand a new line, ünïcode'},
    {"sid": "CA2", "price": None, "count_unit": None, "duration_ms": 0, "cost": 2.75, "answered": False,
     "metadata": None, "subresource_uris": {}, "error_code": 30003, "note": "\\N"},
    {"sid": "CA3", "price": 5, "count_unit": "calls", "duration_ms": None, "cost": None, "answered": None,
     "metadata": ["a", 1], "subresource_uris": None, "error_code": None, "note": ""},
]
UNLOADABLE = [
    ({"price": "0.01", "duration_ms": 1}, "missing_sid"),
    ({"sid": "CA9", "duration_ms": "sixty"}, "mistyped:duration_ms"),
]


def _rows_path(records: list[dict]):
    @dlt.source(name="listing", max_table_nesting=0)
    def listing():
        return dlt.resource(records, name="calls", write_disposition="merge", primary_key="sid",
                            columns=column_hints(HINTS))
    return listing()


def _arrow_path(records: list[dict]):
    @dlt.source(name="listing", max_table_nesting=0)
    def listing():
        @dlt.resource(name="calls", write_disposition="merge", primary_key="sid",
                      columns=column_hints(HINTS))
        def calls():
            yield from arrow_page([dict(record) for record in records], "calls", "sid", "AC1", HINTS)
        return calls
    return listing()


def _table(cursor, table: str) -> tuple[dict[str, str], list[dict]]:
    cursor.execute("select column_name, data_type from information_schema.columns "
                   "where table_schema = 'raw_listing' and table_name = %s", (table,))
    types = {name: data_type for name, data_type in cursor.fetchall() if name not in DLT_COLUMNS}
    cursor.execute(f"select to_jsonb(t) from raw_listing.{table} t")
    rows = sorted(({name: row[name] for name in types} for (row,) in cursor.fetchall()), key=lambda row: row["sid"])
    return types, rows


def _load(database_factory, tmp_path, label: str, source, destination):
    warehouse = database_factory(f"columnar_{label}")
    pipeline = dlt.pipeline(pipeline_name=f"listing_{label}", dataset_name="raw_listing",
                            pipelines_dir=str(tmp_path), destination=destination(warehouse.url))
    pipeline.run(source)
    return warehouse


def test_arrow_pages_land_what_rows_land_and_quarantine_what_does_not_fit(database_factory, tmp_path):
    by_rows = _load(database_factory, tmp_path, "rows", _rows_path(RECORDS), dlt.destinations.postgres)
    by_arrow = _load(database_factory, tmp_path, "arrow",
                     _arrow_path(RECORDS + [record for record, _ in UNLOADABLE]), warehouse_destination)
    with by_rows.connect() as rows_db, rows_db.cursor() as rows_cursor, \
            by_arrow.connect() as arrow_db, arrow_db.cursor() as cursor:
        expected_types, expected_rows = _table(rows_cursor, "calls")
        types, rows = _table(cursor, "calls")
        assert types == expected_types
        assert types["duration_ms"] == "bigint" and types["cost"] == "double precision"
        assert types["metadata"] == types["subresource_uris"] == "jsonb" and types["price"] == "character varying"
        assert rows == expected_rows
        by_sid = {row["sid"]: row for row in rows}
        assert by_sid["CA1"]["count_unit"] == "" and by_sid["CA2"]["count_unit"] is None  # "" is not NULL
        assert by_sid["CA3"]["note"] == "" and by_sid["CA2"]["note"] == "\\N"
        assert by_sid["CA3"]["price"] == "5" and by_sid["CA3"]["metadata"] == ["a", 1]
        cursor.execute("select count(distinct _dlt_id), min(_dlt_load_id) = max(_dlt_load_id) from raw_listing.calls")
        assert cursor.fetchone() == (len(RECORDS), True)  # staging reads the load id, as on rows

        cursor.execute("select sid, reason, account, record from raw_listing.calls_quarantine order by reason")
        quarantined = cursor.fetchall()
    assert [(reason, record) for _, reason, _, record in quarantined] == sorted(
        ((reason, record) for record, reason in UNLOADABLE), key=lambda pair: pair[0])
    assert all(sid.startswith(reason.split(":")[0].split("_")[0] + ":") for sid, reason, _, _ in quarantined)
    assert {account for _, _, account, _ in quarantined} == {"AC1"}


def test_a_string_among_numbers_goes_to_quarantine_and_the_rest_of_the_page_loads():
    """Where rows would split a column into variants (`duration_ms__v_double`, `metadata__v_text`), integers and
    floats make one double column, a JSON column holds any JSON, and a string among numbers is quarantined."""
    page = [{"sid": "CA1", "duration_ms": 1, "metadata": {"a": 1}},
            {"sid": "CA2", "duration_ms": 2.5, "metadata": "text"},
            {"sid": "CA3", "duration_ms": "x"}]
    loaded, quarantined = list(arrow_page(page, "calls", "sid", "AC1", {}))
    assert loaded.data.column("duration_ms").to_pylist() == [1.0, 2.5]
    assert loaded.data.column("metadata").to_pylist() == ['{"a":1}', '"text"']
    assert quarantined.data.column("reason").to_pylist() == ["mistyped:duration_ms"]
    assert json.loads(quarantined.data.column("record")[0].as_py()) == page[2]


def test_a_later_page_of_another_type_than_the_stored_column_goes_to_quarantine(database_factory, tmp_path):
    """The columns' stored types bind later runs: 1.5 cannot be copied into the bigint column the first run
    made (the load would fail, and with it every load after), so its record is quarantined."""
    warehouse = database_factory("columnar_drift")
    runs = [[{"sid": "CA1", "duration_ms": 1, "cost": 0.5}],
            [{"sid": "CA2", "duration_ms": 1.5, "cost": 0.25}, {"sid": "CA3", "duration_ms": 2, "cost": 1}]]
    for number, page in enumerate(runs):
        pipeline = dlt.pipeline(pipeline_name="listing_drift", dataset_name="raw_listing",
                                pipelines_dir=str(tmp_path / str(number)),
                                destination=warehouse_destination(warehouse.url))
        pipeline.run(_arrow_path(page))  # a fresh folder each run, as Dagster's: the schema comes from the warehouse
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select sid, duration_ms, cost from raw_listing.calls order by sid")
        assert cursor.fetchall() == [("CA1", 1, 0.5), ("CA3", 2, 1.0)]  # 1 fits the double column
        cursor.execute("select reason, record from raw_listing.calls_quarantine")
        assert cursor.fetchall() == [("mistyped:duration_ms", runs[1][0])]


def test_a_mistyped_call_leaves_quarantine_once_the_provider_sends_it_loadable(sandbox_server, database_factory,
                                                                                tmp_path):
    """Quarantined for a mistyped field, then listed again as it should be: billed, and no longer held, so
    billed + quarantined still counts it once. One never sent loadable stays held."""
    warehouse = database_factory("columnar_mended")
    with pipeline_environment(warehouse, sandbox_server, tmp_path / "directory.json"):
        assert run_pipeline().success
        with warehouse.connect() as connection, connection.cursor() as cursor:
            cursor.execute("select to_jsonb(calls) - '_dlt_load_id' - '_dlt_id' from raw_retell.calls as calls "
                           "order by call_id limit 1")
            loaded = cursor.fetchone()[0]
        mended = {**loaded, "duration_ms": "61 s"}
        never = {**mended, "call_id": "call_never_loadable"}

        @dlt.source(name="retell_quarantined", max_table_nesting=0)
        def earlier_run():
            @dlt.resource(name="calls", write_disposition="merge", primary_key="call_id")
            def calls():
                yield from quarantined([(mended, "mistyped:duration_ms"), (never, "mistyped:duration_ms")],
                                       "call_id", "calls", loaded["workspace"])
            return calls

        dlt.pipeline(pipeline_name="retell_quarantined", dataset_name="raw_retell", pipelines_dir=str(tmp_path),
                     destination=warehouse_destination(warehouse.url)).run(earlier_run())
        assert run_job("build_models").success
    with warehouse.connect() as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from raw_retell.calls_quarantine")
        assert cursor.fetchone() == (2,)
        cursor.execute("select reason, details ->> 'call_id' from marts.quarantine where stage = 'collector'")
        assert cursor.fetchall() == [("mistyped:duration_ms", "call_never_loadable")]
        cursor.execute("select count(*) from marts.fct_usage_events where provider = 'retell' and external_id = %s",
                       (loaded["call_id"],))
        assert cursor.fetchone()[0] > 0
