"""Dagster resources: the warehouse every asset writes to."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import dlt
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from billing_usage.settings import Settings, get_settings
from billing_usage.warehouse import Warehouse, resolve_warehouse
from dlt_sources.destination import warehouse_destination


class WarehouseResource(ConfigurableResource):
    """BILLING_USAGE_DATABASE_URL, or the embedded PostgreSQL; shared by dlt and dbt."""

    _settings: Settings | None = PrivateAttr(default=None)
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._settings = get_settings()
        self._warehouse = resolve_warehouse(self._settings)
        # dbt runs as a subprocess and reads its profile from these variables.
        os.environ.update(self._warehouse.dbt_env())

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise RuntimeError("WarehouseResource used outside of an execution")
        return self._settings

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            raise RuntimeError("WarehouseResource used outside of an execution")
        return self._warehouse

    @contextmanager
    def dlt_pipeline(self, name: str, run_id: str) -> Iterator[dlt.Pipeline]:
        """The pipeline `name` loading into raw_<name>, in a working folder of this run's own (dlt drops
        it at each step, so runs must never share one). Its state is restored from the warehouse."""
        parent = self.settings.local_dir / "dlt" / "runs"
        parent.mkdir(parents=True, exist_ok=True)
        folder = tempfile.mkdtemp(prefix=f"{name}-{run_id[:8]}-", dir=parent)
        try:
            yield dlt.pipeline(
                pipeline_name=name,
                destination=warehouse_destination(self.warehouse.url),
                dataset_name=f"raw_{name}",
                pipelines_dir=folder,
                progress="log",
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
