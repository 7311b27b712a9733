"""Records the raw tables cannot hold (no natural key to merge on, a field of another type than its column's)
go to <table>_quarantine instead.

Nothing is dropped: the whole record is kept as JSON with the reason. The quarantine table shares
the resource's hints, so its key column holds "<missing|mistyped>:<hash of the record>": re-reading the same
window merges onto the same row instead of duplicating it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import dlt
import orjson
import pyarrow as pa


def quarantined(rejected: list[tuple[dict, str]], key: str, table: str, account: str) -> Iterator:
    """(record, reason) pairs as rows marked for `<table>_quarantine`; nothing if there are none."""
    if not rejected:
        return
    rows = pa.table({
        key: [f"{_kind(reason)}:" + hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
              for record, reason in rejected],
        "reason": [reason for _, reason in rejected],
        "account": [account] * len(rejected),
        "record": [orjson.dumps(record).decode() for record, _ in rejected],
        "seen_at": pa.array([datetime.now(UTC)] * len(rejected), pa.timestamp("us", tz="UTC")),
    })
    yield dlt.mark.with_hints(rows, dlt.mark.make_hints(table_name=f"{table}_quarantine",
                                                        columns={"record": {"data_type": "json"}}),
                              create_table_variant=True)


def _kind(reason: str) -> str:
    """missing_<key> -> missing, mistyped:<column> -> mistyped."""
    return reason.split(":")[0].split("_")[0]
