"""One database transaction per use case."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from service.application.ports import ConnectionLost
from service.storage.database import leave_writer_queue
from service.storage.store import SqlStore


class SqlUnitOfWork:
    """``with uow: ...; uow.commit()``. Leaving the block without commit rolls back."""

    store: SqlStore
    store_type: type[SqlStore] = SqlStore  # a subclass may measure what its store does

    def __init__(self, engine: Engine, *, readonly: bool = False) -> None:
        self._engine = engine
        self._readonly = readonly
        self._connection: Connection | None = None

    def __enter__(self) -> SqlUnitOfWork:
        try:
            connection = self._engine.connect()
        except OperationalError as error:
            raise ConnectionLost(str(error.orig)) from error
        if self._readonly:
            connection = connection.execution_options(readonly=True)
        self._connection = connection
        connection.begin()
        self.store = self.store_type(connection)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._connection is not None
        lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
        try:
            if self._connection.in_transaction():
                self._connection.rollback()
                leave_writer_queue(self._connection)
        finally:
            self._connection.close()
            self._connection = None
        if lost:
            raise ConnectionLost(str(exc)) from exc

    def commit(self) -> None:
        assert self._connection is not None
        self._connection.commit()
        leave_writer_queue(self._connection)
