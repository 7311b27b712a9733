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
import tempfile
import time
from pathlib import Path

import requests
import yaml

from billing_usage.settings import PROJECT_ROOT, get_settings
from billing_usage.warehouse import stop_embedded
from sandbox.config import SandboxConfig


def _sandbox_pid_file() -> Path:
    return get_settings().local_dir / "sandbox.pid"


def _write_atomically(path: Path, text: str) -> None:
    """Readers in other processes see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _sandbox_config(url: str) -> SandboxConfig | None:
    try:
        response = requests.get(f"{url}/_sandbox/config", timeout=2)
        response.raise_for_status()
    except requests.RequestException:
        return None
    return SandboxConfig.from_json(response.json())


def ensure_sandbox() -> SandboxConfig:
    """Reuse the sandbox at the configured URL, or start one there in the background."""
    settings = get_settings()
    url = settings.sandbox_url
    config = _sandbox_config(url)
    if config is not None:
        return config
    port = url.rsplit(":", 1)[-1]
    settings.local_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.local_dir / "sandbox.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", "--port", port], cwd=PROJECT_ROOT,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _sandbox_pid_file().write_text(str(process.pid))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        config = _sandbox_config(url)
        if config is not None:
            return config
        time.sleep(0.2)
    raise RuntimeError(f"the provider sandbox did not start on {url}; see {settings.local_dir / 'sandbox.log'}")


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
    settings = get_settings()
    if settings.live:
        return None
    config = ensure_sandbox()
    url = settings.sandbox_url
    directory_path = settings.local_dir / "directory.yaml"
    document = requests.get(f"{url}/_sandbox/directory", timeout=10).json()
    _write_atomically(directory_path, yaml.safe_dump(document, sort_keys=False))
    for name, value in sandbox_source_config(url, config, str(directory_path)).items():
        os.environ.setdefault(name, value)
    return config


def local_instance_config() -> dict:
    """deploy/dagster.yaml without its PostgreSQL storage: the same queue, pools and run monitoring."""
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    config.pop("storage")
    return config


def ensure_dagster_home() -> str:
    """DAGSTER_HOME, by default a local folder with Dagster's SQLite storage and the production limits."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(get_settings().local_dir / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    text = ("# Local instance: SQLite storage in this folder, the limits of deploy/dagster.yaml "
            "(written by make demo/dev).\n" + yaml.safe_dump(local_instance_config(), sort_keys=False))
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists() or instance_yaml.read_text() != text:
        _write_atomically(instance_yaml, text)
    return str(home)


def stop_local_services() -> None:
    """Stop the sandbox this project started and the embedded PostgreSQL."""
    pid_file = _sandbox_pid_file()
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
            print("sandbox stopped")
        except (ProcessLookupError, ValueError):
            pass
        pid_file.unlink()
    if stop_embedded():
        print("embedded PostgreSQL stopped")


if __name__ == "__main__":
    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m cli.local_env stop")
    stop_local_services()
