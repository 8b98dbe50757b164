"""Test databases: a SQLite file and a PostgreSQL database made for this run (for each
xdist worker), one engine on each shared by every test, and emptying them between tests.

PostgreSQL runs against the server on 127.0.0.1:5432. Where it is not reachable the
PostgreSQL cases skip with the reason, except under CI=true, where they fail instead:
CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from service.observability import metrics
from service.storage.database import make_engine
from service.storage.migrate import upgrade
from service.storage.tables import metadata

PG_SERVER = os.environ.get("LOYALTY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
PG_ADMIN_DB = "test"


def postgres_unavailable() -> str | None:
    try:
        engine = create_engine(f"{PG_SERVER}/{PG_ADMIN_DB}", connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        return f"PostgreSQL at {PG_SERVER} is not reachable: {type(error).__name__}: {error}"
    return None


def require_postgres() -> None:
    reason = postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
    pytest.skip(reason)


@contextmanager
def postgres_database(*, synchronous_commit: bool = True) -> Iterator[str]:
    """A fresh, migrated database for this run; dropped afterwards.

    ``synchronous_commit=False``: a commit does not wait for its WAL to reach the disk
    (2.5 ms of each on this machine). Only a crash of the PostgreSQL server itself could
    lose such a commit, which no test does; locks, isolation and constraints, all that
    the storage tests hold the service to, are unchanged.
    """
    require_postgres()
    name = f"loyalty_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{PG_SERVER}/{PG_ADMIN_DB}", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
        if not synchronous_commit:
            connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    url = f"{PG_SERVER}/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        dispose_shared_engine(url)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database(directory: str) -> Iterator[str]:
    url = f"sqlite:///{directory}/loyalty-{uuid.uuid4().hex[:8]}.db"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        dispose_shared_engine(url)


_SHARED: dict[str, Engine] = {}


def shared_engine(url: str) -> Engine:
    """The engine every test of this process uses for the database at ``url``: its pool
    stays open from test to test, where an engine per test connected afresh each time."""
    engine = _SHARED.get(url)
    if engine is None:
        engine = _SHARED[url] = make_engine(url)
        metrics.count_database_calls(engine)  # once: build_services leaves it to its owner
    return engine


def dispose_shared_engine(url: str) -> None:
    engine = _SHARED.pop(url, None)
    if engine is not None:
        engine.dispose()


# Children first. PostgreSQL takes them all in one round trip (TRUNCATE would take a
# quarter of a second, making new files for every table); SQLite runs one at a time.
_DELETE_ALL = "; ".join(
    str(table.delete().compile(dialect=postgresql.dialect()))
    for table in reversed(metadata.sorted_tables)
)


def empty_tables(engine: Engine) -> None:
    """Delete every row: what a test leaves is gone before the next one starts.

    A pooled connection that a test's server-side kill left dead fails once and is
    replaced (the pool drops every connection older than the failure); then it is tried
    again on a new one.
    """
    try:
        _delete_all(engine)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        _delete_all(engine)


def _delete_all(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(_DELETE_ALL)
            return
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows in each table, read in one statement."""
    tables = metadata.sorted_tables
    counts = select(
        *(select(func.count()).select_from(t).scalar_subquery().label(t.name) for t in tables)
    )
    with engine.connect() as connection:
        row = connection.execute(counts).one()
    return {table.name: int(count) for table, count in zip(tables, row, strict=True)}
