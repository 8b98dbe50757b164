"""Test databases: a SQLite file and a PostgreSQL database made for this run.

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
def postgres_database() -> Iterator[str]:
    """A fresh, migrated database for this run; dropped afterwards."""
    require_postgres()
    name = f"loyalty_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{PG_SERVER}/{PG_ADMIN_DB}", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{PG_SERVER}/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database(directory: str) -> Iterator[str]:
    url = f"sqlite:///{directory}/loyalty-{uuid.uuid4().hex[:8]}.db"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url


def empty_tables(engine: Engine) -> None:
    """Delete every row, children first; faster than a new database per test."""
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }
