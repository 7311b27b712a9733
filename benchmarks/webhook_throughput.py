"""Webhook receiver throughput: signed deliveries per second, and proof that none was lost.

    python -m benchmarks.webhook_throughput [--days 3] [--concurrency 64] [--replays 0.1]

Starts the receiver (uvicorn, one process) on the embedded PostgreSQL (or BILLING_USAGE_DATABASE_URL),
fires every sandbox delivery of the chosen days plus a share of replays over keep-alive connections,
then counts the landed rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import requests

from billing_usage.warehouse import create_database, drop_database, resolve_warehouse
from sandbox.config import SandboxConfig
from sandbox.webhook_sender import retell_deliveries, twilio_deliveries


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _worker(queue: asyncio.Queue, port: int, statuses: Counter) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while not queue.empty():
        path, headers, body = queue.get_nowait()
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
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


async def _fire(deliveries: list, port: int, concurrency: int) -> Counter:
    queue: asyncio.Queue = asyncio.Queue()
    for delivery in deliveries:
        queue.put_nowait(delivery)
    statuses: Counter = Counter()
    await asyncio.gather(*(_worker(queue, port, statuses) for _ in range(concurrency)))
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--replays", type=float, default=0.1, help="share of deliveries sent twice")
    args = parser.parse_args()
    config = SandboxConfig(clients=args.clients, agents_per_client=3, days=args.days, calls_per_agent_per_day=20)
    port = _free_port()
    twilio_url = f"http://127.0.0.1:{port}/webhooks/twilio"
    deliveries = [
        (f"/webhooks/{d.provider}", d.headers, d.body)
        for offset in range(args.days)
        for day in [config.start_date + timedelta(days=offset)]
        for stream in (retell_deliveries(config, day), twilio_deliveries(config, day, twilio_url))
        for d in stream
    ]
    unique = {(path, body) for path, _, body in deliveries}
    rng = random.Random(1)
    deliveries += rng.sample(deliveries, int(len(deliveries) * args.replays))
    rng.shuffle(deliveries)

    server = resolve_warehouse()
    database = f"bench_webhooks_{os.getpid()}"
    warehouse = create_database(server, database)
    env = {**os.environ, "BILLING_USAGE_PROVIDERS": "live", "BILLING_USAGE_DATABASE_URL": warehouse.url,
           "BILLING_USAGE_PII_SALT": "benchmark",
           "BILLING_USAGE_WEBHOOKS_PORT": str(port),
           "SOURCES__RETELL__WORKSPACES": json.dumps([{"name": "w", "api_key": config.retell_api_key(0)}]),
           "SOURCES__TWILIO__ACCOUNTS": json.dumps([{"account_sid": config.twilio_account_sid,
                                                     "auth_token": config.twilio_auth_token}])}
    receiver = subprocess.Popen([sys.executable, "-m", "webhooks"], env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        started = time.perf_counter()
        statuses = asyncio.run(_fire(deliveries, port, args.concurrency))
        seconds = time.perf_counter() - started
        with warehouse.connect() as connection, connection.cursor() as cursor:
            cursor.execute("select (select count(*) from raw_webhooks.retell_events)"
                           " + (select count(*) from raw_webhooks.twilio_callbacks)")
            landed = cursor.fetchone()[0]
        batches = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["batches"]
    finally:
        receiver.terminate()
        receiver.wait(10)
        drop_database(server, database)
    print(json.dumps({
        "deliveries_sent": len(deliveries), "unique_deliveries": len(unique), "statuses": dict(statuses),
        "rows_landed": landed, "lost": len(unique) - landed, "seconds": round(seconds, 2),
        "deliveries_per_second": round(len(deliveries) / seconds), "commit_batches": batches,
        "concurrency": args.concurrency,
    }))
    sys.exit(0 if landed == len(unique) and set(statuses) == {200} else 1)


if __name__ == "__main__":
    main()
