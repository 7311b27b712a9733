"""A running sandbox loaded into a fresh warehouse by the project's own collectors, as a first run would:
raw tables with their indexes, the ops tables and the sandbox's PII salt. The benchmarks start from here."""

from __future__ import annotations

import os
import tempfile

import dlt
import yaml

from billing_usage.raw_indexes import ensure_raw_indexes
from billing_usage.settings import SANDBOX_PII_SALT
from billing_usage.tables import ensure_tables, store_pii_salt
from billing_usage.warehouse import Warehouse
from cli.local_env import sandbox_source_config
from dlt_sources.directory import directory_source
from dlt_sources.openrouter import openrouter_source
from dlt_sources.retell import retell_source
from dlt_sources.twilio import twilio_source
from sandbox.agency import directory
from sandbox.config import SandboxConfig

SOURCES = (("retell", retell_source), ("twilio", twilio_source), ("openrouter", openrouter_source),
           ("directory", directory_source))


def collect_sandbox(warehouse: Warehouse, sandbox_url: str, config: SandboxConfig) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "directory.yaml")
        with open(path, "w") as handle:
            yaml.safe_dump(directory(config), handle)
        os.environ.update(sandbox_source_config(sandbox_url, config, path))
        for name, source in SOURCES:
            dlt.pipeline(pipeline_name=name, dataset_name=f"raw_{name}", pipelines_dir=scratch,
                         destination=dlt.destinations.postgres(credentials=warehouse.url)).run(source())
            ensure_raw_indexes(warehouse, name)
    with warehouse.connect() as connection:
        ensure_tables(connection)
        store_pii_salt(connection, SANDBOX_PII_SALT)
