"""Every setting of billing-usage in one object, read from the environment and validated.

Provider credentials are not here: they follow dlt's conventions (`.dlt/secrets.toml` or
`SOURCES__<SOURCE>__<KEY>` variables) and are read by the dlt sources and the webhook receiver.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parents[1]

DATABASE_URL_ENV = "BILLING_USAGE_DATABASE_URL"
PROVIDERS_ENV = "BILLING_USAGE_PROVIDERS"
PII_SALT_ENV = "BILLING_USAGE_PII_SALT"
NOW_ENV = "BILLING_USAGE_NOW"
ALERTS_WEBHOOK_URL_ENV = "BILLING_USAGE_ALERTS_WEBHOOK_URL"
ALERTS_FORMAT_ENV = "BILLING_USAGE_ALERTS_FORMAT"
ALERTS_FORMATS = ("slack", "json")
SANDBOX_PII_SALT = "billing-usage"


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    providers: str  # "sandbox": the local provider sandbox; "live": the real APIs
    database_url: str | None  # None: the embedded PostgreSQL (sandbox mode only)
    pii_salt: str
    fixed_now: datetime | None  # a fixed clock for tests; None: the wall clock
    local_dir: Path
    sandbox_url: str
    lock_wait_seconds: float
    partitions_start: str
    webhooks_host: str
    webhooks_port: int
    webhooks_public_url: str | None  # the URL providers call, when the receiver is behind a proxy
    webhooks_max_body_bytes: int
    alerts_webhook_url: str | None  # a secret: where alerts are POSTed; None: they are only logged and listed
    alerts_format: str  # "slack" (Slack-compatible text and blocks) or "json" (a generic object)
    api_host: str = "127.0.0.1"  # the reporting API (make api)
    api_port: int = 8001

    def __repr__(self) -> str:  # never print the database password or the salt
        return (f"Settings(providers={self.providers!r}, database={'url' if self.database_url else 'embedded'}, "
                f"fixed_now={self.fixed_now}, local_dir={str(self.local_dir)!r})")

    @property
    def live(self) -> bool:
        return self.providers == "live"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        providers = environ.get(PROVIDERS_ENV, "sandbox")
        if providers not in ("sandbox", "live"):
            raise SettingsError(f"{PROVIDERS_ENV} must be 'sandbox' or 'live', got {providers!r}")
        database_url = environ.get(DATABASE_URL_ENV) or None
        pii_salt = environ.get(PII_SALT_ENV) or None
        if providers == "live":
            if not database_url:
                raise SettingsError(f"{DATABASE_URL_ENV} is required with {PROVIDERS_ENV}=live: billing data is "
                                    "never put in the embedded database")
            if not pii_salt:
                raise SettingsError(f"{PII_SALT_ENV} is required with {PROVIDERS_ENV}=live: phone numbers are "
                                    "hashed with it (only the sandbox may use the default)")
        return cls(
            providers=providers,
            database_url=database_url,
            pii_salt=pii_salt or SANDBOX_PII_SALT,
            fixed_now=_timestamp(environ.get(NOW_ENV), NOW_ENV),
            local_dir=Path(environ.get("BILLING_USAGE_LOCAL_DIR") or PROJECT_ROOT / ".local"),
            sandbox_url=(environ.get("BILLING_USAGE_SANDBOX_URL") or "http://127.0.0.1:8787").rstrip("/"),
            lock_wait_seconds=_number(environ.get("BILLING_USAGE_LOCK_WAIT_SECONDS", "600"),
                                      "BILLING_USAGE_LOCK_WAIT_SECONDS"),
            partitions_start=_day(environ.get("BILLING_USAGE_PARTITIONS_START", "2025-10-01"),
                                  "BILLING_USAGE_PARTITIONS_START"),
            webhooks_host=environ.get("BILLING_USAGE_WEBHOOKS_HOST", "127.0.0.1"),
            webhooks_port=int(_number(environ.get("BILLING_USAGE_WEBHOOKS_PORT", "8000"),
                                      "BILLING_USAGE_WEBHOOKS_PORT")),
            webhooks_public_url=(environ.get("BILLING_USAGE_WEBHOOKS_PUBLIC_URL") or "").rstrip("/") or None,
            webhooks_max_body_bytes=int(_number(environ.get("BILLING_USAGE_WEBHOOKS_MAX_BODY_BYTES", "1048576"),
                                                "BILLING_USAGE_WEBHOOKS_MAX_BODY_BYTES")),
            alerts_webhook_url=_webhook_url(environ.get(ALERTS_WEBHOOK_URL_ENV) or None, ALERTS_WEBHOOK_URL_ENV),
            alerts_format=_choice(environ.get(ALERTS_FORMAT_ENV) or "slack", ALERTS_FORMATS, ALERTS_FORMAT_ENV),
            api_host=environ.get("BILLING_USAGE_API_HOST", "127.0.0.1"),
            api_port=int(_number(environ.get("BILLING_USAGE_API_PORT", "8001"), "BILLING_USAGE_API_PORT")),
        )


def _timestamp(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an ISO 8601 timestamp, got {value!r}") from exc
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {value!r}") from exc
    if number < 0:
        raise SettingsError(f"{name} must not be negative, got {value!r}")
    return number


def _day(value: str, name: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise SettingsError(f"{name} must be an ISO date, got {value!r}") from exc


def _webhook_url(value: str | None, name: str) -> str | None:
    """An http(s) URL with a host. The URL is a secret (it carries the webhook's token), so no message quotes it."""
    if value is None:
        return None
    try:
        parts = urlsplit(value.strip())
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise SettingsError(f"{name} must be an http:// or https:// URL with a host (value not shown: it is a secret)")
    return value.strip()


def _choice(value: str, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def get_settings() -> Settings:
    return Settings.from_env()


def utc_now() -> datetime:
    """The business clock: which day is 'today' for collection, partitions and cycle status.
    BILLING_USAGE_NOW fixes it (tests); otherwise it is the wall clock."""
    return get_settings().fixed_now or datetime.now(UTC)
