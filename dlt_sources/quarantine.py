"""Records the raw tables cannot hold (no natural key to merge on) go to <table>_quarantine instead.

Nothing is dropped: the whole record is kept as JSON with the reason. The quarantine table shares
the resource's hints, so its key column holds "missing:<hash of the record>": re-reading the same
window merges onto the same row instead of duplicating it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import dlt


def quarantine_missing_key(page: list[dict], key: str, table: str, account: str) -> Iterator:
    """Yield the records that have `key`, then (marked for `<table>_quarantine`) those that do not."""
    kept = [record for record in page if record.get(key)]
    rejected = [record for record in page if not record.get(key)]
    if kept:
        yield kept
    if rejected:
        seen_at = datetime.now(UTC).isoformat()
        rows = [{
            key: "missing:" + hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest(),
            "reason": f"missing_{key}",
            "account": account,
            "record": record,
            "seen_at": seen_at,
        } for record in rejected]
        yield dlt.mark.with_table_name(rows, f"{table}_quarantine")
