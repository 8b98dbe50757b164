"""Shared fixtures: settings, databases (SQLite and PostgreSQL from one parametrised
fixture), services and the Flask app."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.api.app import create_app
from service.bootstrap import Services, build_services
from service.settings import DEV_API_KEY, Settings
from tests.databases import empty_tables, postgres_database, sqlite_database

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "rules"
AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}


class FixedClock:
    """A clock tests set; the service reads it wherever it needs 'now'."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sqlite_database(str(tmp_path_factory.mktemp("sqlite"))) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs once per database."""
    return request.getfixturevalue(f"{request.param}_url")  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, rules_dir=str(RULES_DIR), engine="durable")


@pytest.fixture
def services(settings: Settings, clock: FixedClock) -> Iterator[Services]:
    built = build_services(settings, clock=clock)
    empty_tables(built.db)
    built.reload_rules()
    yield built
    built.db.dispose()


@pytest.fixture
def app(services: Services) -> Flask:
    app = create_app(services=services)
    app.testing = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
