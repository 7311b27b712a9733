"""A writer that commits webhook deliveries to the landing tables in batches before they are acknowledged.

Each request waits for the commit that holds its row, so a 2xx always means "durably stored";
batching many requests into one transaction is what makes that fast. A row the database refuses for its
content fails alone: the batch is retried row by row, and that delivery is kept in raw_webhooks.dead_letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
from psycopg2.extras import execute_values

from billing_usage.tables import DEAD_LETTERS, LANDING_TABLES, ensure_tables

logger = logging.getLogger(__name__)


# The database refusing one row's content, as opposed to failing: psycopg2 itself refuses NUL characters
# and unencodable text with a ValueError before sending anything.
ROW_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError, ValueError)


def describe_error(exc: BaseException) -> str:
    """The exception class and SQLSTATE only: database messages can quote row data."""
    code = getattr(exc, "pgcode", None)
    return f"{type(exc).__name__} {code}" if code else type(exc).__name__


class RefusedByDatabase(Exception):
    """The database refused this delivery's row; the delivery is in the dead letters."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StorageUnavailable(Exception):
    """The batch holding this delivery failed to commit; the provider should retry."""


@dataclass
class _Pending:
    provider: str
    row: tuple | None          # the landing row; None for a delivery refused before it was queued
    body: bytes
    content_type: str
    done: asyncio.Future
    reason: str | None = None  # set when the delivery goes to the dead letters


class LandingWriter:
    """Queue of deliveries flushed by one background task; `write` returns once the row is committed."""

    def __init__(self, connect: Callable[[], object], max_batch: int = 1000):
        self._connect = connect
        self._connection = None
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._max_batch = max_batch
        self._task: asyncio.Task | None = None
        self.batches = 0

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

    async def write(self, provider: str, row: tuple, body: bytes, content_type: str) -> bool:
        """True if stored now, False if this delivery was stored before. Raises RefusedByDatabase if the database
        refused the row (it is then a dead letter), StorageUnavailable if the database failed."""
        return await self._submit(provider, row, body, content_type)

    async def dead_letter(self, provider: str, reason: str, body: bytes, content_type: str) -> None:
        """Keep a signed delivery that cannot be landed, verbatim. Raises StorageUnavailable if the database failed."""
        await self._submit(provider, None, body, content_type, reason)

    async def _submit(self, provider: str, row: tuple | None, body: bytes, content_type: str,
                      reason: str | None = None):
        done = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(provider, row, body, content_type, done, reason))
        return await done

    def _ensure_connection(self):
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
            ensure_tables(self._connection)
        return self._connection

    @staticmethod
    def _insert(cursor, batch: list[_Pending]) -> set[str]:
        """Insert the landing rows, one statement per table; returns the delivery ids that were new."""
        inserted: set[str] = set()
        for provider in {p.provider for p in batch}:
            table, columns = LANDING_TABLES[provider]
            rows = [p.row for p in batch if p.provider == provider]
            returned = execute_values(
                cursor,
                f"insert into {table} ({', '.join(columns)}) values %s "
                "on conflict (delivery_id) do nothing returning delivery_id",
                rows, page_size=len(rows), fetch=True)
            inserted |= {r[0] for r in returned}
        return inserted

    def _insert_one_by_one(self, cursor, batch: list[_Pending]) -> set[str]:
        """Each row under its own savepoint: a row the database refuses becomes a dead letter, the rest land."""
        inserted: set[str] = set()
        for pending in batch:
            cursor.execute("savepoint one_delivery")
            try:
                inserted |= self._insert(cursor, [pending])
            except ROW_ERRORS as exc:
                cursor.execute("rollback to savepoint one_delivery")
                pending.reason = f"the database refused it ({describe_error(exc)})"
            else:
                cursor.execute("release savepoint one_delivery")
        return inserted

    def _flush(self, batch: list[_Pending]) -> set[str]:
        """Insert the batch in one transaction; returns the delivery ids that were new."""
        connection = self._ensure_connection()
        landing = [p for p in batch if p.row is not None]
        try:
            with connection.cursor() as cursor:
                try:
                    inserted = self._insert(cursor, landing)
                except ROW_ERRORS as exc:
                    logger.warning("webhook landing: a batch of %d deliveries was refused (%s), "
                                   "retrying them one by one", len(landing), describe_error(exc))
                    connection.rollback()
                    inserted = self._insert_one_by_one(cursor, landing)
                letters = [(hashlib.sha256(p.body).hexdigest(), p.provider, p.reason, p.body, p.content_type)
                           for p in batch if p.reason is not None]
                if letters:
                    execute_values(cursor, f"insert into {DEAD_LETTERS} "
                                   "(delivery_id, provider, reason, body, content_type) values %s "
                                   "on conflict (delivery_id) do nothing", letters, page_size=len(letters))
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
                logger.error("webhook landing: a batch of %d deliveries failed (%s)", len(batch), describe_error(exc))
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(StorageUnavailable(describe_error(exc)))
                continue
            self.batches += 1
            for pending in batch:
                self._settle(pending, inserted)

    def _settle(self, pending: _Pending, inserted: set[str]) -> None:
        """Answer the request waiting for `pending`, once its batch has committed."""
        if pending.row is None:  # a dead letter only
            outcome = None
        elif pending.reason is not None:
            outcome = RefusedByDatabase(pending.reason)
        else:
            outcome = pending.row[0] in inserted
            inserted.discard(pending.row[0])  # the same delivery twice in one batch: stored once
        if pending.done.done():  # the request went away
            return
        if isinstance(outcome, RefusedByDatabase):
            pending.done.set_exception(outcome)
        else:
            pending.done.set_result(outcome)
