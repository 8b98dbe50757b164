"""The real server: `loyalty serve` (gunicorn, several workers) on a fresh database.

One server per database for the whole session, shared by every e2e test; the tests carry
`xdist_group("e2e")` so that under `pytest -n N --dist loadgroup` they all run in the
worker that owns the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import postgres_database, sqlite_database
from tests.e2e.live import LiveServer, live_server

WORKERS = 2


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("e2e-sqlite")
    with sqlite_database(str(directory)) as database_url:
        yield from serve(database_url, directory)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("e2e-postgres")
    with postgres_database() as database_url:
        yield from serve(database_url, directory)


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> LiveServer:
    """Each e2e test runs against both servers; each server starts once a session."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


def serve(database_url: str, directory: Path) -> Iterator[LiveServer]:
    """`loyalty serve` on the database, yielded once ready, stopped after."""
    with live_server(database_url, directory, workers=WORKERS) as started:
        yield started
