"""Shared fixtures: settings, databases (SQLite and PostgreSQL from one parametrised
fixture), services and the Flask app.

What costs time is made once per test session (per xdist worker) and shared: each
database, migrated; one engine on it, its pool kept open; each rules version compiled
(YAML, validation, the durable-rules ruleset). Each test then gets services of its own
on emptied tables, in a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.api.app import create_app
from service.application.rules_runtime import ActiveRules, RulesRuntime
from service.bootstrap import Services, build_services, matcher_factory
from service.core.conditions import Facts
from service.core.evaluation import Matcher
from service.rules.loader import version_of
from service.settings import DEV_API_KEY, Settings
from tests.databases import empty_tables, postgres_database, shared_engine, sqlite_database

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "rules"
AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}


class FixedClock:
    """A clock tests set; the service reads it wherever it needs 'now'."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class SharedMatcher:
    """A compiled version's matcher, used by every test that serves the version: closing
    it (a reload replacing it, the end of a dry run) leaves it open for the next test."""

    def __init__(self, inner: Matcher) -> None:
        self.inner = inner
        self.name = inner.name

    def match(self, facts: Facts) -> frozenset[str]:
        return self.inner.match(facts)

    def close(self) -> None:
        """Kept open: the process's end frees it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


_COMPILED: dict[tuple[str, str], ActiveRules] = {}


class SessionRules(RulesRuntime):
    """The service's RulesRuntime, except that each set of files is compiled once per
    test session (for each engine), not once per test."""

    def __init__(self, settings: Settings) -> None:
        factory = matcher_factory(settings)
        super().__init__(lambda ruleset: SharedMatcher(factory(ruleset)))
        self.engine = settings.engine

    def compile(self, files: Mapping[str, str]) -> ActiveRules:
        key = (self.engine, version_of(files))
        compiled = _COMPILED.get(key)
        if compiled is None:
            compiled = _COMPILED[key] = super().compile(files)
        return compiled


def fresh_services(settings: Settings, clock: FixedClock) -> Services:
    """Services on the session's engine for the database and its compiled rules, on
    emptied tables, with the rules version loaded and recorded as at startup."""
    services = build_services(
        settings,
        clock=clock,
        load_rules=False,
        db=shared_engine(settings.database_url),
        rules=SessionRules(settings),
    )
    empty_tables(services.db)
    services.reload_rules()
    return services


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sqlite_database(str(tmp_path_factory.mktemp("sqlite"))) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_database(synchronous_commit=False) as url:
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
def services(settings: Settings, clock: FixedClock) -> Services:
    return fresh_services(settings, clock)


@pytest.fixture
def app(services: Services) -> Flask:
    app = create_app(services=services)
    app.testing = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
