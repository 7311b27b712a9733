"""The production layout on one machine: a code server, the Dagster daemon and the webserver, all on the
instance of deploy/dagster.yaml (dagster-postgres, the run queue, pools, run monitoring).

    DAGSTER_POSTGRES_URL=postgresql://... BILLING_USAGE_DATABASE_URL=postgresql://... python -m cli.production

runs the three in the foreground until Ctrl-C (see docs/production.md). The production-layout test and the
webhook latency benchmark start the same processes with `dagster_services`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from billing_usage.settings import PROJECT_ROOT

POSTGRES_URL_ENV = "DAGSTER_POSTGRES_URL"
LOCATION_NAME = "billing_usage"  # as [tool.dagster] in pyproject.toml
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_instance(home: Path, code_server_port: int) -> Path:
    """DAGSTER_HOME with deploy/dagster.yaml as is, and a workspace that points at the code server."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    workspace = home / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": "127.0.0.1", "port": code_server_port, "location_name": LOCATION_NAME}}]}))
    return workspace


@dataclass
class DagsterServices:
    home: Path
    webserver_url: str | None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{self.webserver_url}/graphql", json={"query": query, "variables": variables or {}},
                                 timeout=60)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.home / (name + '.log')}")


def _spawn(name: str, args: list[str], env: dict[str, str], home: Path) -> subprocess.Popen:
    with open(home / f"{name}.log", "ab") as log:
        # a session of its own: stopping it stops what it started (run workers, step processes, dbt)
        return subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_until(ready, what: str, services: DagsterServices, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        if ready():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not answer within {timeout:.0f} s; see the logs in {services.home}")


def _code_server_answers(port: int) -> bool:
    from dagster._grpc.client import DagsterGrpcClient

    try:
        DagsterGrpcClient(port=port, host="127.0.0.1").ping("ready")
    except Exception:  # noqa: BLE001 - not listening yet
        return False
    return True


def _webserver_answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/server_info", timeout=2).ok
    except requests.RequestException:
        return False


def stop(processes: dict[str, subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM to each process's session (they were started in sessions of their own), SIGKILL after `timeout`."""
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes.values():
        with suppress(subprocess.TimeoutExpired):
            process.wait(max(0.1, deadline - time.monotonic()))
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # what is left of its session: run workers, dbt
        process.wait()


@contextmanager
def dagster_services(env: dict[str, str], home: Path, webserver: bool = True, webserver_port: int | None = None,
                     timeout: float = 300) -> Iterator[DagsterServices]:
    """A code server, `dagster-daemon run` and (if asked) `dagster-webserver` on the instance in `home`;
    `env` must name DAGSTER_POSTGRES_URL and the project's settings. Logs go to <home>/<process>.log."""
    if not env.get(POSTGRES_URL_ENV):
        raise ValueError(f"{POSTGRES_URL_ENV} is not set: the production instance keeps its storage in PostgreSQL")
    code_port = free_port()
    workspace = str(write_instance(home, code_port))
    env = {**env, "DAGSTER_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    webserver_port = (webserver_port or free_port()) if webserver else None
    services = DagsterServices(home, f"http://127.0.0.1:{webserver_port}" if webserver else None)
    try:
        services.processes["code_server"] = _spawn("code_server", [
            str(BIN / "dagster"), "api", "grpc", "-m", "dagster_project.definitions", "-d", str(PROJECT_ROOT),
            "-h", "127.0.0.1", "-p", str(code_port), "--location-name", LOCATION_NAME], env, home)
        _wait_until(lambda: _code_server_answers(code_port), "the code server", services, timeout)
        services.processes["daemon"] = _spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace],
                                              env, home)
        if webserver:
            services.processes["webserver"] = _spawn("webserver", [
                str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(webserver_port)],
                env, home)
            _wait_until(lambda: _webserver_answers(services.webserver_url), "the webserver", services, timeout)
        yield services
    finally:
        stop(services.processes)


def main() -> int:
    from billing_usage.settings import DATABASE_URL_ENV

    missing = [name for name in (POSTGRES_URL_ENV, DATABASE_URL_ENV) if not os.environ.get(name)]
    if missing:
        print(f"Set {' and '.join(missing)} (see docs/production.md).", file=sys.stderr)
        return 2
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".local" / "dagster_production")
    port = int(os.environ.get("DAGSTER_PORT", "3000"))
    with dagster_services(dict(os.environ), home, webserver_port=port) as services:
        print(f"Dagster UI on {services.webserver_url}; logs in {home}. Ctrl-C stops everything.", flush=True)
        try:
            while True:
                services.check_alive()
                time.sleep(2)
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
