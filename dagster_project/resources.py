"""Dagster resources: the warehouse every asset writes to."""


import os

import dlt
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from dagster_project.warehouse import LOCAL_DIR, Warehouse, resolve_warehouse


class WarehouseResource(ConfigurableResource):
    """BILLING_USAGE_DATABASE_URL, or the embedded PostgreSQL; shared by dlt and dbt."""

    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._warehouse = resolve_warehouse()
        # dbt runs as a subprocess and reads its profile from these variables.
        os.environ.update(self._warehouse.dbt_env())

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            raise RuntimeError("WarehouseResource used outside of an execution")
        return self._warehouse

    def dlt_pipeline(self, name: str) -> dlt.Pipeline:
        """The pipeline `name` loading into raw_<name>; its local state is kept per database."""
        return dlt.pipeline(
            pipeline_name=name,
            destination=dlt.destinations.postgres(credentials=self.warehouse.url),
            dataset_name=f"raw_{name}",
            pipelines_dir=str(LOCAL_DIR / "dlt" / self.warehouse.fingerprint),
            progress="log",
        )
