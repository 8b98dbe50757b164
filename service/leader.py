"""The scheduler's leader lock: only one scheduler acts at a time.

PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) held on a dedicated
connection; it goes when the holder's connection does, so a scheduler that dies hands
over at once. SQLite: a lease row renewed by a heartbeat; a scheduler that dies hands
over when its lease runs out.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from service.application.job_ports import JobUnitOfWorkFactory

log = logging.getLogger("loyalty.scheduler")
LOCK_NAME = "loyalty-scheduler"


class LeaderLock(Protocol):
    holder: str

    def acquire(self) -> bool:
        """Try once, without waiting; True if this process holds the lock (now or already)."""
        ...

    def still_held(self) -> bool:
        """Renew or check the lock; False if it was lost."""
        ...

    def release(self) -> None: ...

    def dispose(self) -> None:
        """Release, and close what the lock holds open."""
        ...


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_try_advisory_lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class AdvisoryLock:
    """PostgreSQL session advisory lock on a connection of its own (no pool, so closing it
    really closes the session and frees the lock)."""

    def __init__(self, engine: Engine, holder: str, name: str = LOCK_NAME) -> None:
        self.holder = holder
        self._engine = create_engine(engine.url, poolclass=NullPool)
        self._key = lock_key(name)
        self._connection: Connection | None = None

    def acquire(self) -> bool:
        if self._connection is not None:
            return self.still_held()
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar_one()
        except Exception:
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        self._connection = connection
        return True

    def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
        except Exception:
            log.warning("lost the database connection that held the scheduler lock")
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except Exception:
            log.warning("could not unlock the scheduler lock; closing its session frees it")
        self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                connection.invalidate()

    def dispose(self) -> None:
        self.release()
        self._engine.dispose()


class LeaseLock:
    """A lease row (scheduler_leases), renewed while held; for databases without advisory
    locks. ``ttl`` must be several heartbeats long."""

    def __init__(
        self,
        uow_factory: JobUnitOfWorkFactory,
        holder: str,
        *,
        ttl: timedelta = timedelta(seconds=60),
        name: str = LOCK_NAME,
        clock: Callable[[], datetime],
    ) -> None:
        self.holder = holder
        self._uow = uow_factory
        self._ttl = ttl
        self._name = name
        self._clock = clock
        self._held = False

    def acquire(self) -> bool:
        with self._uow() as uow:
            self._held = uow.store.take_lease(self._name, self.holder, self._clock(), self._ttl)
            uow.commit()
        return self._held

    def still_held(self) -> bool:
        if not self._held:
            return False
        held = self.acquire()
        if not held:
            log.warning("the scheduler lease was taken over by another scheduler")
        return held

    def release(self) -> None:
        if not self._held:
            return
        with self._uow() as uow:
            uow.store.drop_lease(self._name, self.holder)
            uow.commit()
        self._held = False

    def dispose(self) -> None:
        self.release()


def leader_lock(
    engine: Engine,
    uow_factory: JobUnitOfWorkFactory,
    holder: str,
    name: str = LOCK_NAME,
    *,
    clock: Callable[[], datetime],
) -> AdvisoryLock | LeaseLock:
    """``clock``: what a lease's renewals and expiry are timed by (the scheduler's own)."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, holder, name)
    return LeaseLock(uow_factory, holder, name=name, clock=clock)
