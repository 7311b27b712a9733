"""The webhook landing tables, and a writer that commits deliveries in batches before they are acknowledged.

Each request waits for the commit that holds its row, so a 2xx always means "durably stored";
batching many requests into one transaction is what makes that fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from psycopg2.extras import execute_values

logger = logging.getLogger(__name__)

DDL = """
create schema if not exists raw_webhooks;
create table if not exists raw_webhooks.retell_events (
    delivery_id text primary key,          -- sha256 of the raw body: a replay is the same delivery
    event text not null,
    call_id text not null,
    payload jsonb not null,                -- the delivered JSON as received
    received_at timestamptz not null default clock_timestamp()
);
create index if not exists retell_events_received_at on raw_webhooks.retell_events (received_at);
create index if not exists retell_events_call_id on raw_webhooks.retell_events (call_id);
create table if not exists raw_webhooks.twilio_callbacks (
    delivery_id text primary key,          -- sha256 of the raw body
    resource text not null,                -- call or message
    sid text not null,
    account_sid text not null,
    status text,
    params jsonb not null,                 -- every parameter, new ones included
    received_at timestamptz not null default clock_timestamp()
);
create index if not exists twilio_callbacks_received_at on raw_webhooks.twilio_callbacks (received_at);
create index if not exists twilio_callbacks_sid on raw_webhooks.twilio_callbacks (sid);
"""

TABLES = {
    "retell": ("raw_webhooks.retell_events", ("delivery_id", "event", "call_id", "payload")),
    "twilio": ("raw_webhooks.twilio_callbacks", ("delivery_id", "resource", "sid", "account_sid", "status", "params")),
}


def ensure_landing_tables(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute(DDL)
    connection.commit()


@dataclass
class _Pending:
    table: str
    row: tuple
    done: asyncio.Future


class LandingWriter:
    """Queue of deliveries flushed by one background task; `write` returns once the row is committed."""

    def __init__(self, connect: Callable[[], object], max_batch: int = 1000):
        self._connect = connect
        self._connection = None
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._max_batch = max_batch
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.stored = 0
        self.duplicates = 0

    async def start(self) -> None:
        await asyncio.to_thread(self._ensure_connection)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None:
            self._connection.close()

    async def write(self, table: str, row: tuple) -> bool:
        """True if stored now, False if this delivery was stored before. Raises if the database fails."""
        done = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(table, row, done))
        return await done

    def _ensure_connection(self):
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
            ensure_landing_tables(self._connection)
        return self._connection

    def _flush(self, batch: list[_Pending]) -> set[str]:
        """Insert the batch in one transaction; returns the delivery ids that were new."""
        connection = self._ensure_connection()
        inserted: set[str] = set()
        try:
            with connection.cursor() as cursor:
                for provider in {p.table for p in batch}:
                    table, columns = TABLES[provider]
                    rows = [p.row for p in batch if p.table == provider]
                    returned = execute_values(
                        cursor,
                        f"insert into {table} ({', '.join(columns)}) values %s "
                        "on conflict (delivery_id) do nothing returning delivery_id",
                        rows, page_size=len(rows), fetch=True)
                    inserted |= {r[0] for r in returned}
            connection.commit()
        except Exception:
            with contextlib.suppress(Exception):
                connection.close()
            raise
        return inserted

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                inserted = await asyncio.to_thread(self._flush, batch)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
                logger.error("webhook landing: a batch of %d deliveries failed: %s", len(batch), exc)
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                continue
            self.batches += 1
            for pending in batch:
                new = pending.row[0] in inserted
                inserted.discard(pending.row[0])  # the same delivery twice in one batch: stored once
                self.stored += new
                self.duplicates += not new
                if not pending.done.done():
                    pending.done.set_result(new)
