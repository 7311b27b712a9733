"""One settings object: validated at start, production never falls back to the embedded database."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from billing_usage.settings import PROJECT_ROOT, Settings, SettingsError
from billing_usage.warehouse import resolve_warehouse

LIVE = {"BILLING_USAGE_PROVIDERS": "live", "BILLING_USAGE_DATABASE_URL": "postgresql://svc:s3cret@db.internal/wh",
        "BILLING_USAGE_PII_SALT": "pepper"}


def test_sandbox_mode_needs_nothing_and_uses_the_default_salt():
    settings = Settings.from_env({})
    assert (settings.providers, settings.database_url, settings.pii_salt) == ("sandbox", None, "billing-usage")
    assert settings.fixed_now is None and settings.lock_wait_seconds == 600


@pytest.mark.parametrize("missing, named", [("BILLING_USAGE_DATABASE_URL", "BILLING_USAGE_DATABASE_URL"),
                                            ("BILLING_USAGE_PII_SALT", "BILLING_USAGE_PII_SALT")])
def test_live_mode_requires_a_database_url_and_a_salt(missing, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({key: value for key, value in LIVE.items() if key != missing})


@pytest.mark.parametrize("name, value", [("BILLING_USAGE_PROVIDERS", "production"), ("BILLING_USAGE_NOW", "soon"),
                                         ("BILLING_USAGE_LOCK_WAIT_SECONDS", "-1"),
                                         ("BILLING_USAGE_PARTITIONS_START", "2025-13-01")])
def test_wrong_values_name_their_setting(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_the_fixed_clock_is_utc_and_secrets_stay_out_of_repr():
    settings = Settings.from_env({**LIVE, "BILLING_USAGE_NOW": "2026-03-16T07:00:00+01:00"})
    assert settings.fixed_now == datetime(2026, 3, 16, 6, 0, tzinfo=UTC)
    assert "s3cret" not in repr(settings) and "pepper" not in repr(settings)


def test_an_unreachable_production_database_is_an_error_naming_the_setting():
    settings = Settings.from_env({**LIVE, "BILLING_USAGE_DATABASE_URL": "postgresql://svc:s3cret@127.0.0.1:1/wh"})
    with pytest.raises(SettingsError, match="BILLING_USAGE_DATABASE_URL") as raised:
        resolve_warehouse(settings)
    assert "s3cret" not in str(raised.value)


def test_the_demo_refuses_live_mode_without_a_database_and_starts_no_embedded_server(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("BILLING_USAGE_DATABASE")}
    env |= {"BILLING_USAGE_PROVIDERS": "live", "BILLING_USAGE_PII_SALT": "pepper",
            "BILLING_USAGE_LOCAL_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    result = subprocess.run([sys.executable, "-m", "cli.demo"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "BILLING_USAGE_DATABASE_URL is required" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "pgdata").exists()
