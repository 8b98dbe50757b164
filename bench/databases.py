"""The databases a benchmark runs on: a SQLite file under var/bench/, or a fresh
PostgreSQL database on the local server, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PG_SERVER = os.environ.get("LOYALTY_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
PG_ADMIN_DB = "test"


@contextlib.contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{uuid.uuid4().hex[:8]}.db"
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm", "-journal", ".writers"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()


def _admin_connection() -> Any:
    import psycopg

    conninfo = PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + f"/{PG_ADMIN_DB}"
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)


def postgres_available() -> str | None:
    try:
        with _admin_connection() as connection:
            connection.execute("SELECT 1")
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def postgres_version() -> str | None:
    try:
        with _admin_connection() as connection:
            row = connection.execute("SHOW server_version").fetchone()
    except Exception:
        return None
    return str(row[0]) if row else None


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database loyalty_bench_<random> on the local server, dropped afterwards."""
    name = f"loyalty_bench_{uuid.uuid4().hex[:10]}"
    with _admin_connection() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with _admin_connection() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stored_events(database_url: str) -> int | None:
    """Events the database holds: the check that 2xx answers were real writes."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM events")).scalar_one())
    except Exception:
        return None
    finally:
        engine.dispose()
