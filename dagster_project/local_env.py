"""The embedded default's moving parts: the provider sandbox, its credentials and DAGSTER_HOME.

BILLING_USAGE_PROVIDERS=live turns all of this off; the dlt sources then read real credentials
from .dlt/secrets.toml or SOURCES__* environment variables.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import requests
import yaml

from dagster_project.warehouse import LOCAL_DIR, PROJECT_ROOT, stop_embedded
from sandbox.config import SandboxConfig

PROVIDERS_ENV = "BILLING_USAGE_PROVIDERS"
SANDBOX_URL_ENV = "BILLING_USAGE_SANDBOX_URL"
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8787"
SANDBOX_PID_FILE = LOCAL_DIR / "sandbox.pid"


def providers_mode() -> str:
    mode = os.environ.get(PROVIDERS_ENV, "sandbox")
    if mode not in ("sandbox", "live"):
        raise ValueError(f"{PROVIDERS_ENV} must be 'sandbox' or 'live', got {mode!r}")
    return mode


def sandbox_url() -> str:
    return os.environ.get(SANDBOX_URL_ENV, DEFAULT_SANDBOX_URL).rstrip("/")


def _sandbox_config(url: str) -> SandboxConfig | None:
    try:
        response = requests.get(f"{url}/_sandbox/config", timeout=2)
        response.raise_for_status()
    except requests.RequestException:
        return None
    return SandboxConfig.from_json(response.json())


def ensure_sandbox() -> SandboxConfig:
    """Reuse the sandbox at sandbox_url(), or start one there in the background."""
    url = sandbox_url()
    config = _sandbox_config(url)
    if config is not None:
        return config
    port = url.rsplit(":", 1)[-1]
    LOCAL_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCAL_DIR / "sandbox.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", "--port", port], cwd=PROJECT_ROOT,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    SANDBOX_PID_FILE.write_text(str(process.pid))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        config = _sandbox_config(url)
        if config is not None:
            return config
        time.sleep(0.2)
    raise RuntimeError(f"the provider sandbox did not start on {url}; see {LOCAL_DIR / 'sandbox.log'}")


def sandbox_source_config(url: str, config: SandboxConfig, directory_path: str) -> dict[str, str]:
    """dlt source settings that point every collector at the sandbox."""
    workspaces = [{"name": f"workspace_{n}", "api_key": config.retell_api_key(n)}
                  for n in range(config.retell_workspaces)]
    return {
        "SOURCES__RETELL__BASE_URL": f"{url}/retell",
        "SOURCES__RETELL__WORKSPACES": json.dumps(workspaces),
        "SOURCES__TWILIO__BASE_URL": f"{url}/twilio",
        "SOURCES__TWILIO__ACCOUNTS": json.dumps([{"account_sid": config.twilio_account_sid,
                                                  "auth_token": config.twilio_auth_token,
                                                  "include_subaccounts": True}]),
        "SOURCES__OPENROUTER__BASE_URL": f"{url}/openrouter/api/v1",
        "SOURCES__OPENROUTER__ACCOUNTS": json.dumps([{"name": "agency",
                                                      "management_key": config.openrouter_management_key}]),
        "SOURCES__DIRECTORY__PATH": directory_path,
    }


def ensure_provider_config() -> SandboxConfig | None:
    """In sandbox mode: a running sandbox, its directory file, and source settings (unless already set)."""
    if providers_mode() == "live":
        return None
    config = ensure_sandbox()
    url = sandbox_url()
    directory_path = LOCAL_DIR / "directory.yaml"
    document = requests.get(f"{url}/_sandbox/directory", timeout=10).json()
    directory_path.write_text(yaml.safe_dump(document, sort_keys=False))
    for name, value in sandbox_source_config(url, config, str(directory_path)).items():
        os.environ.setdefault(name, value)
    return config


def ensure_dagster_home() -> str:
    """DAGSTER_HOME, by default a local folder with Dagster's SQLite storage."""
    home = os.environ.setdefault("DAGSTER_HOME", str(LOCAL_DIR / "dagster_home"))
    os.makedirs(home, exist_ok=True)
    instance_yaml = os.path.join(home, "dagster.yaml")
    if not os.path.exists(instance_yaml):
        with open(instance_yaml, "w") as handle:
            handle.write("# Local instance: SQLite storage in this folder. Production: deploy/dagster.yaml.\n")
    return home


def stop_local_services() -> None:
    """Stop the sandbox this project started and the embedded PostgreSQL."""
    if SANDBOX_PID_FILE.exists():
        try:
            os.kill(int(SANDBOX_PID_FILE.read_text()), signal.SIGTERM)
            print("sandbox stopped")
        except (ProcessLookupError, ValueError):
            pass
        SANDBOX_PID_FILE.unlink()
    if stop_embedded():
        print("embedded PostgreSQL stopped")


if __name__ == "__main__":
    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m dagster_project.local_env stop")
    stop_local_services()
