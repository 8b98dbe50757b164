"""Creating the database engine: SQLite (WAL) by default, PostgreSQL by URL.

Called inside each gunicorn worker, never before the fork: a pool must not be shared
between processes.
"""

from __future__ import annotations

import fcntl
import os
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping before each checkout: it cost a round trip per request. A pooled
        # connection found dead (the server restarted) fails the one request that meets
        # it, a retry with the same event_id is safe, and it is discarded.
        pool_recycle=1800,
        # psycopg prepares a statement after it has run this many times on a connection.
        connect_args={"prepare_threshold": 2},
    )


def _sqlite_engine(url: str) -> Engine:
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        # Connections are kept: closing the last one on a WAL database checkpoints it,
        # which cost milliseconds per request when every request opened its own.
        pool_size=5,
        max_overflow=45,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    queue = WriterQueue(Path(path + ".writers")) if path and path != ":memory:" else None

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock at the start: a deferred transaction that reads and
        # then writes fails with "database is locked" when another writer got there first.
        # Readers begin deferred, so in WAL mode they never wait for a writer.
        if connection.get_execution_options().get("readonly"):
            connection.exec_driver_sql("BEGIN")
            return
        if queue is not None:
            queue.enter(connection.connection.dbapi_connection)
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    if queue is not None:
        _QUEUES[engine] = queue
        _leave_queue_at_checkin(engine, queue)

    return engine


class WriterQueue:
    """Writers to one SQLite file wait their turn on an OS file lock, across threads and
    gunicorn workers, before BEGIN IMMEDIATE.

    SQLite's own busy handler polls by sleeping (1, 2, 5 ... 100 ms), so writers that
    collide lose milliseconds each and the lock sits idle in between; ``flock`` wakes the
    next waiter the moment the lock is free. SQLite's lock still guards the data: the
    queue only decides who asks first. Each connection opens its own descriptor, since
    ``flock`` excludes descriptors, not processes.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        # id(driver connection) -> its own descriptor on the queue file, opened once: an
        # open and a close per transaction cost more than the flock itself.
        self._descriptors: dict[int, int] = {}
        self._held: set[int] = set()

    def enter(self, dbapi_connection: Any) -> None:
        key = _key(dbapi_connection)
        if key in self._held:
            return
        descriptor = self._descriptors.get(key)
        if descriptor is None:
            descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._descriptors[key] = descriptor
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        self._held.add(key)

    def leave(self, dbapi_connection: Any) -> None:
        key = _key(dbapi_connection)
        if key in self._held:
            self._held.discard(key)
            fcntl.flock(self._descriptors[key], fcntl.LOCK_UN)

    def forget(self, dbapi_connection: Any) -> None:
        """The connection is closed: close its descriptor (which also unlocks it)."""
        key = _key(dbapi_connection)
        self._held.discard(key)
        descriptor = self._descriptors.pop(key, None)
        if descriptor is not None:
            os.close(descriptor)


def _key(dbapi_connection: Any) -> int:
    # The pool's proxy (commit, rollback) or the driver's connection itself (checkin).
    return id(getattr(dbapi_connection, "dbapi_connection", dbapi_connection))


def _leave_queue_at_checkin(engine: Engine, queue: WriterQueue) -> None:
    """Leave the queue when a connection goes back to the pool, whatever happened to it
    (the unit of work leaves it as soon as it has committed: leave_writer_queue)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        queue.leave(dbapi_connection)

    @event.listens_for(engine, "close")
    def _on_close(dbapi_connection: Any, _record: Any) -> None:
        queue.forget(dbapi_connection)

    @event.listens_for(engine, "close_detached")
    def _on_close_detached(dbapi_connection: Any) -> None:
        queue.forget(dbapi_connection)


_QUEUES: weakref.WeakKeyDictionary[Engine, WriterQueue] = weakref.WeakKeyDictionary()


def leave_writer_queue(connection: Connection) -> None:
    """Called once a transaction has ended (COMMIT or ROLLBACK has run): the next writer
    may begin. SQLAlchemy's commit and rollback events fire before the statement runs,
    while SQLite still holds its lock, so the unit of work calls this after them."""
    queue = _QUEUES.get(connection.engine)
    if queue is not None:
        queue.leave(connection.connection.dbapi_connection)
