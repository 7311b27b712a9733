"""Serialization across processes and hosts: a PostgreSQL advisory lock per job that must run alone,
per warehouse database.

The lock is held by a connection of its own, so it is released the moment its holder ends, even
by kill -9. Its holder is named in the connection's application_name, so a waiter can say who
holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from billing_usage.warehouse import Warehouse

logger = logging.getLogger(__name__)
NAMESPACE = "billing_usage"
POLL_SECONDS = 0.5


@dataclass
class Lock:
    name: str
    acquired: bool
    waited_seconds: float
    holder: str | None = None  # who held it when we gave up

    @property
    def skip_message(self) -> str:
        return (f"skipped: the {self.name} lock was held by {self.holder or 'another run'} for longer than "
                f"{self.waited_seconds:.0f} s; the next run will do this work")


def _holder(cursor, name: str) -> str | None:
    cursor.execute("""
        select a.application_name, a.backend_start
        from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted
          and l.database = (select oid from pg_database where datname = current_database())
          and l.classid = hashtext(%s)::oid and l.objid = hashtext(%s)::oid
        """, (NAMESPACE, name))
    row = cursor.fetchone()
    return f"{row[0] or 'a session'} (since {row[1]:%Y-%m-%d %H:%M:%S %Z})" if row else None


@contextmanager
def advisory_lock(warehouse: Warehouse, name: str, holder: str, wait_seconds: float,
                  log: Callable[[str], None] = logger.info) -> Iterator[Lock]:
    """Hold the lock `name` for the block, waiting up to `wait_seconds` for it. Yields a Lock whose
    `acquired` says whether the block may do its work."""
    connection = warehouse.connect(application_name=f"billing-usage {name} {holder}"[:63])
    connection.autocommit = True
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            announced = False
            while True:
                cursor.execute("select pg_try_advisory_lock(hashtext(%s), hashtext(%s))", (NAMESPACE, name))
                if cursor.fetchone()[0]:
                    yield Lock(name, True, time.monotonic() - started)
                    return
                waited = time.monotonic() - started
                if waited >= wait_seconds:
                    yield Lock(name, False, waited, _holder(cursor, name))
                    return
                if not announced:
                    log(f"waiting up to {wait_seconds:.0f} s for the {name} lock, held by "
                        f"{_holder(cursor, name) or 'another run'}")
                    announced = True
                time.sleep(min(POLL_SECONDS, wait_seconds - waited))
    finally:
        connection.close()  # releases the lock
