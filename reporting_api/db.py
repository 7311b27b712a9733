"""Read-only connections to the warehouse: a small pool; each request reads one consistent snapshot
(REPEATABLE READ, read only), so a build committing mid-request never mixes old and new rows."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions

from reporting_api.problems import Problem

STATEMENT_TIMEOUT_MS = 60_000
WORK_MEM = "64MB"  # aggregates and sorts of a 90-day query stay in memory


class ConnectionPool:
    def __init__(self, connect: Callable[..., object], size: int = 8):
        self._connect = connect
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    def _open(self):
        connection = self._connect(options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c work_mem={WORK_MEM}",
                                   application_name="billing_usage_api")
        connection.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        return connection

    def acquire(self):
        self._slots.acquire()
        try:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                connection = self._open()
            return connection
        except psycopg2.OperationalError as exc:
            self._slots.release()
            raise Problem(503, "the warehouse cannot be reached") from exc
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection, broken: bool = False) -> None:
        try:
            if broken or connection.closed:
                connection.close()
            else:
                connection.rollback()  # end the read snapshot
                self._idle.put(connection)
        except psycopg2.Error:
            connection.close()
        finally:
            self._slots.release()

    @contextmanager
    def connection(self) -> Iterator[object]:
        connection = self.acquire()
        broken = False
        try:
            yield connection
        except psycopg2.OperationalError as exc:
            broken = True
            raise Problem(503, "the warehouse cannot be reached") from exc
        except psycopg2.InterfaceError:
            broken = True
            raise
        finally:
            self.release(connection, broken)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
