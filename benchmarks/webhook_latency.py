"""Webhook -> marts.fct_daily_usage latency under a steady stream of signed deliveries, as in production.

    python -m benchmarks.webhook_latency [--seconds 120] [--rate 100] [--clients 10]

On the embedded PostgreSQL (or BILLING_USAGE_DATABASE_URL): a warehouse collected and built once from the
sandbox's first days, then the production layout (cli/production.py: code server and daemon on a Dagster
instance in PostgreSQL with deploy/dagster.yaml, so the run queue, the dbt pool and the schedules and sensors
are all in place) and the receiver (`python -m webhooks`). It sends `rate` signed deliveries a second for
`seconds`, each about an object no poll has seen (a Retell call_analyzed, a Twilio call or message status
callback of the following days), and polls the marts every second. A delivery is visible once its object's
events are in fct_usage_events and fct_daily_usage counts exactly the events fct_usage_events holds (one
snapshot), i.e. once the build that took it in has also rebuilt the daily rollup. Prints the
latency from send to visible (p50/p95/max), the runs the sensor launched, and the peak RSS of each process.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from urllib.parse import parse_qsl

import psutil
import requests
import yaml

from billing_usage.settings import (
    DATABASE_URL_ENV,
    NOW_ENV,
    PII_SALT_ENV,
    PROVIDERS_ENV,
    SANDBOX_PII_SALT,
)
from billing_usage.warehouse import create_database, drop_database, resolve_warehouse
from cli.local_env import sandbox_source_config
from cli.production import POSTGRES_URL_ENV, dagster_services, free_port
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from sandbox.webhook_sender import retell_deliveries, twilio_deliveries

END_DATE = date(2026, 3, 15)  # fixed: the sandbox, the business clock and the partitions never read the calendar
TARGET_P95_SECONDS = 60
POLL_SECONDS = 1.0
# Every day, not only the stream's: a status callback without a timestamp counts on the day it was received.
VISIBLE = "select distinct external_id from marts.fct_usage_events where 'webhook' = any(source_channels)"
CONSISTENT = """select (select coalesce(sum(event_count), 0) from marts.fct_daily_usage),
                       (select count(*) from marts.fct_usage_events)"""


def deliveries(config: SandboxConfig, days: list[date], port: int, count: int) -> list[tuple[str, str, dict, bytes]]:
    """`count` deliveries, each about its own object: (object id, path, headers, body), providers interleaved."""
    twilio_url = f"http://127.0.0.1:{port}/webhooks/twilio"
    found = []
    for day in days:
        for delivery in retell_deliveries(config, day):
            payload = json.loads(delivery.body)
            if payload["event"] == "call_analyzed":  # the complete call: one delivery per call
                found.append((payload["call"]["call_id"], "/webhooks/retell", delivery.headers, delivery.body))
        for delivery in twilio_deliveries(config, day, twilio_url):
            params = dict(parse_qsl(delivery.body.decode()))
            found.append((params.get("MessageSid") or params["CallSid"], "/webhooks/twilio", delivery.headers,
                          delivery.body))
    if len(found) < count:
        raise SystemExit(f"the sandbox generates {len(found)} deliveries for {len(days)} days, fewer than {count}: "
                         "raise --clients")
    random.Random(5).shuffle(found)
    return found[:count]


async def _send(stream: list, port: int, rate: float, sent: dict, statuses: Counter, workers: int) -> None:
    """Delivery i leaves at start + i / rate over keep-alive connections; `sent[object] = when it left`."""
    start = time.monotonic()
    cursor = iter(enumerate(stream))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for index, (object_id, path, headers, body) in cursor:
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            sent[object_id] = time.monotonic()
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            statuses[status] += 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(workers)))


class MartPoller(threading.Thread):
    """Every second, in one snapshot: if the daily rollup counts every event fct_usage_events holds, every
    webhook object in fct_usage_events is visible in fct_daily_usage now."""

    def __init__(self, warehouse):
        super().__init__(daemon=True)
        self.warehouse = warehouse
        self.visible: dict[str, float] = {}
        self.stopping = threading.Event()
        self.polls = self.inconsistent = 0

    def run(self) -> None:
        connection = self.warehouse.connect()
        connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
        seen_total = None
        while not self.stopping.is_set():
            polled_at = time.monotonic()
            with connection.cursor() as cursor:
                cursor.execute(CONSISTENT)
                daily, events = cursor.fetchone()
                if daily != events:
                    self.inconsistent += 1  # a build between fct_usage_events and fct_daily_usage
                elif daily != seen_total:
                    cursor.execute(VISIBLE)
                    for (object_id,) in cursor.fetchall():
                        self.visible.setdefault(object_id, polled_at)
                    seen_total = daily
            connection.rollback()
            self.polls += 1
            self.stopping.wait(max(0.0, POLL_SECONDS - (time.monotonic() - polled_at)))
        connection.close()


class RssSampler(threading.Thread):
    """Peak RSS (MB) of each kind of process: receiver, daemon, code server, run workers, step processes, dbt."""

    def __init__(self, roots: dict[str, int]):
        super().__init__(daemon=True)
        self.roots = roots
        self.peaks: dict[str, float] = {}
        self.stopping = threading.Event()

    @staticmethod
    def _kind(process: psutil.Process, root: psutil.Process) -> str:
        """Children of the code server are run workers; below them, the forkserver and its step processes."""
        if "/dbt " in " ".join(process.cmdline()) + " ":
            return "dbt"
        return "run worker" if process.ppid() == root.pid else "step process"

    def run(self) -> None:
        while not self.stopping.is_set():
            for name, pid in self.roots.items():
                try:
                    root = psutil.Process(pid)
                    members = [(name, root)] + [(self._kind(child, root), child)
                                                for child in root.children(recursive=True)]
                except psutil.Error:
                    continue
                for kind, process in members:
                    try:
                        rss = process.memory_info().rss / 2**20
                    except psutil.Error:
                        continue
                    self.peaks[kind] = max(self.peaks.get(kind, 0.0), rss)
            self.stopping.wait(0.5)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _environment(warehouse, storage, sandbox, folder: Path, now: str) -> dict[str, str]:
    directory = folder / "directory.yaml"
    directory.write_text(yaml.safe_dump(requests.get(f"{sandbox.base_url}/_sandbox/directory", timeout=10).json()))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SOURCES__", "DAGSTER_"))}
    return env | sandbox_source_config(sandbox.base_url, sandbox.config, str(directory)) | warehouse.dbt_env() | {
        PROVIDERS_ENV: "live", DATABASE_URL_ENV: warehouse.url, PII_SALT_ENV: SANDBOX_PII_SALT, NOW_ENV: now,
        "BILLING_USAGE_LOCAL_DIR": str(folder / "local"), POSTGRES_URL_ENV: storage.sqlalchemy_url}


def _first_pipeline(env: dict[str, str]) -> None:
    """Collect and build the first days once, in a process of its own (the directory and a warm warehouse)."""
    code = ("from dagster import DagsterInstance\nfrom cli.runs import run_usage_pipeline\n"
            "run = run_usage_pipeline(DagsterInstance.ephemeral())\n"
            "raise SystemExit(0 if run.success else '\\n'.join(run.summary_lines()))")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def _wait_for_receiver(port: int, receiver: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and receiver.poll() is None:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise SystemExit("the receiver did not start")


def _wait_for_sensor(instance, services, timeout: float = 600) -> None:
    """The daemon has evaluated the webhook sensor once: its first evaluation reports the delivery tables."""
    from dagster import AssetKey

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        if instance.get_latest_materialization_event(AssetKey(["raw_webhooks", "retell_events"])) is not None:
            return
        time.sleep(1)
    raise SystemExit("the webhook sensor did not run")


def _runs_summary(instance) -> dict:
    from dagster import DagsterRunStatus

    records = instance.get_run_records()
    summary: dict = {}
    for record in records:
        run = record.dagster_run
        by = run.tags.get("dagster/sensor_name") or run.tags.get("dagster/schedule_name") or "launched"
        entry = summary.setdefault(f"{run.job_name} <- {by}", {"runs": 0, "seconds": [], "statuses": Counter()})
        entry["runs"] += 1
        entry["statuses"][run.status.value] += 1
        if record.start_time and record.end_time and run.status == DagsterRunStatus.SUCCESS:
            entry["seconds"].append(record.end_time - record.start_time)
    return {name: {"runs": entry["runs"], "statuses": dict(entry["statuses"]),
                   "median_seconds": round(statistics.median(entry["seconds"]), 1) if entry["seconds"] else None,
                   "max_seconds": round(max(entry["seconds"]), 1) if entry["seconds"] else None}
            for name, entry in summary.items()}


def _build_timeline(instance, stream_started_at: float) -> list[dict]:
    """Each run that builds models (the webhooks' refresh, the build after a collection): queued, run started,
    dbt step started and finished, in seconds after the stream began."""
    timeline = []
    for record in sorted(instance.get_run_records(), key=lambda record: record.create_timestamp.timestamp()):
        if record.dagster_run.job_name not in ("refresh_day_rollups", "build_models"):
            continue
        logs = instance.all_logs(record.dagster_run.run_id)
        step = {entry.dagster_event.event_type.name: entry.timestamp for entry in logs
                if entry.dagster_event and entry.step_key == "billing_dbt_models"}

        def after(moment):
            return None if moment is None else round(moment - stream_started_at, 1)

        timeline.append({"job": record.dagster_run.job_name,
                         "by": record.dagster_run.tags.get("dagster/sensor_name", "?"),
                         "queued": after(record.create_timestamp.timestamp()), "run_started": after(record.start_time),
                         "dbt_started": after(step.get("STEP_START")), "dbt_finished": after(step.get("STEP_SUCCESS")),
                         "status": record.dagster_run.status.value})
    return timeline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120, help="how long the stream lasts")
    parser.add_argument("--rate", type=float, default=100, help="signed deliveries per second")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--workers", type=int, default=16, help="keep-alive connections sending")
    parser.add_argument("--settle", type=float, default=900, help="seconds to wait after the stream for the marts")
    parser.add_argument("--json-out", help="also write the figures to this file")
    args = parser.parse_args()
    count = int(args.seconds * args.rate)
    stream_days = 3
    full = SandboxConfig(seed=17, clients=args.clients, agents_per_client=5, days=4 + stream_days,
                         calls_per_agent_per_day=40, end_date=END_DATE)
    # the same agency (directory valid from the same first day), collected only up to the stream's first day
    collected = dataclasses.replace(full, days=4, end_date=END_DATE - timedelta(days=stream_days))
    days = [END_DATE - timedelta(days=offset) for offset in range(stream_days - 1, -1, -1)]
    now = datetime.combine(END_DATE + timedelta(days=1), day_time(6, 0)).isoformat() + "+00:00"
    port = free_port()

    server = resolve_warehouse()
    names = (f"bench_latency_{os.getpid()}", f"bench_latency_dagster_{os.getpid()}")
    warehouse, storage = (create_database(server, name) for name in names)
    sandbox = start_in_thread(collected)
    folder = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    env = _environment(warehouse, storage, sandbox, folder, now)
    receiver = None
    load_before = _load()
    try:
        started = time.monotonic()
        _first_pipeline(env)
        first_pipeline_seconds = time.monotonic() - started
        receiver = subprocess.Popen([sys.executable, "-m", "webhooks"],
                                    env=env | {"BILLING_USAGE_WEBHOOKS_PORT": str(port)})
        _wait_for_receiver(port, receiver)
        with dagster_services(env, folder / "dagster_home", webserver=False) as services:
            os.environ[POSTGRES_URL_ENV] = storage.sqlalchemy_url
            from dagster import DagsterInstance

            with DagsterInstance.from_config(str(services.home)) as instance:
                _wait_for_sensor(instance, services)
                sampler = RssSampler({"receiver": receiver.pid, "daemon": services.processes["daemon"].pid,
                                      "code server": services.processes["code_server"].pid})
                poller = MartPoller(warehouse)
                sampler.start()
                poller.start()
                # signed now: Retell refuses a signature more than 5 minutes old
                stream = deliveries(full, days, port, count)
                sent: dict[str, float] = {}
                statuses: Counter = Counter()
                print(f"sending {count} deliveries at {args.rate:g}/s (load {_load()})", flush=True)
                stream_started, stream_started_at = time.monotonic(), time.time()
                asyncio.run(_send(stream, port, args.rate, sent, statuses, args.workers))
                stream_seconds = time.monotonic() - stream_started
                load_during = _load()
                deadline = time.monotonic() + args.settle
                while len(poller.visible.keys() & sent.keys()) < len(sent) and time.monotonic() < deadline:
                    services.check_alive()
                    time.sleep(1)
                poller.stopping.set()
                sampler.stopping.set()
                poller.join(10)
                sampler.join(10)
                runs = _runs_summary(instance)
                timeline = _build_timeline(instance, stream_started_at)
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.wait(30)
        sandbox.shutdown()
        drop_database(server, names[0])
        drop_database(server, names[1])
    latencies = [poller.visible[object_id] - sent[object_id] for object_id in sent if object_id in poller.visible]
    result = {
        "deliveries": count, "rate_per_second": args.rate, "stream_seconds": round(stream_seconds, 1),
        "achieved_rate": round(count / stream_seconds, 1), "statuses": dict(statuses),
        "visible": len(latencies), "never_visible": count - len(latencies),
        "latency_seconds": {"p50": round(statistics.median(latencies), 1),
                            "p95": round(_percentile(latencies, 0.95), 1),
                            "max": round(max(latencies), 1)} if latencies else None,
        "target_p95_seconds": TARGET_P95_SECONDS,
        "runs": runs, "builds_seconds_after_stream_start": timeline,
        "peak_rss_mb": {kind: round(peak) for kind, peak in sorted(sampler.peaks.items())},
        "polls": poller.polls, "polls_mid_build": poller.inconsistent,
        "first_pipeline_seconds": round(first_pipeline_seconds, 1),
        "load_average": {"before": load_before, "during_stream": load_during, "after": _load()},
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result))
    if latencies:
        p95 = result["latency_seconds"]["p95"]
        print(f"webhook -> fct_daily_usage: p50 {result['latency_seconds']['p50']} s, p95 {p95} s, max "
              f"{result['latency_seconds']['max']} s over {len(latencies)} deliveries "
              f"({'meets' if p95 <= TARGET_P95_SECONDS else 'misses'} the {TARGET_P95_SECONDS} s target)")
    complete = set(statuses) == {200} and len(latencies) == count
    if complete:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"not every delivery reached the mart; the processes' logs are in {folder}")
    sys.exit(0 if complete else 1)


if __name__ == "__main__":
    main()
