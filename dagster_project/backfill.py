"""`make backfill START=YYYY-MM-DD END=YYYY-MM-DD`: collect the UTC days START..END (inclusive) again
and recompute what they touch, in one run, exactly as a backfill from the Dagster UI does."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from dagster import DagsterInstance
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from dagster_project.local_env import ensure_dagster_home, ensure_provider_config


def backfill(start: date, end: date, instance: DagsterInstance | None = None):
    """One run of usage_pipeline over the partition range [start, end]."""
    from dagster_project.definitions import defs

    if end < start:
        raise ValueError(f"backfill end {end} is before its start {start}")
    return defs.resolve_job_def("usage_pipeline").execute_in_process(
        instance=instance or DagsterInstance.get(),
        tags={ASSET_PARTITION_RANGE_START_TAG: start.isoformat(), ASSET_PARTITION_RANGE_END_TAG: end.isoformat()},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--start", required=True, type=date.fromisoformat)
    parser.add_argument("--end", required=True, type=date.fromisoformat)
    args = parser.parse_args()
    ensure_dagster_home()
    ensure_provider_config()
    return 0 if backfill(args.start, args.end).success else 1


if __name__ == "__main__":
    sys.exit(main())
