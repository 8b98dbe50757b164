"""Shared fixtures: settings, databases (SQLite and PostgreSQL from one parametrised
fixture), services, the Flask app, and the event path's use cases over the in-memory
store (service.application.memory_store) as well as over either database.

What costs time is made once per test session (per xdist worker) and shared: each
database, migrated; one engine on it, its pool kept open; each rules version compiled
(YAML, validation, the durable-rules ruleset). Each test then gets services of its own
on emptied tables, in a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from service.api.app import create_app
from service.application.apply_event import EventUnitOfWorkFactory
from service.application.memory_store import MemoryDatabase
from service.application.rules_runtime import ActiveRules, RulesRuntime
from service.bootstrap import Services, build_services, matcher_factory
from service.core.conditions import Facts
from service.core.evaluation import Matcher
from service.rules.loader import read_rules_dir, version_of
from service.settings import DEV_API_KEY, Settings
from service.storage.tables import ledger_entries, members, point_lots
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


# -- the event path's use cases, over the in-memory store or a database


@dataclass
class EventPath:
    """What apply_event, apply_batch and apply_group take, over one store, and how to read
    a member's (available points, sum of their ledger, what their lots have left)."""

    uow: EventUnitOfWorkFactory
    rules: ActiveRules
    clock: FixedClock
    balance: Callable[[str], tuple[int, int, int]]


def memory_event_path(rules: ActiveRules, clock: FixedClock) -> EventPath:
    database = MemoryDatabase()

    def balance(customer_id: str) -> tuple[int, int, int]:
        state = database.state
        ledger = sum(line.points for c, _e, line in state.ledger if c == customer_id)
        lots = sum(lot.remaining for c, lot in state.lots.values() if c == customer_id)
        return state.members[customer_id].points_available, ledger, lots

    return EventPath(database.unit_of_work, rules, clock, balance)


def database_event_path(services: Services, rules: ActiveRules) -> EventPath:
    def balance(customer_id: str) -> tuple[int, int, int]:
        with services.db.connect() as connection:
            row = connection.execute(
                select(
                    members.c.points_available,
                    select(func.coalesce(func.sum(ledger_entries.c.points), 0))
                    .where(ledger_entries.c.customer_id == customer_id)
                    .scalar_subquery(),
                    select(func.coalesce(func.sum(point_lots.c.remaining), 0))
                    .where(point_lots.c.customer_id == customer_id)
                    .scalar_subquery(),
                ).where(members.c.customer_id == customer_id)
            ).one()
        available, ledger, lots = row
        return int(available), int(ledger), int(lots)

    return EventPath(services.uow, rules, services.clock, balance)


@pytest.fixture(scope="session")
def example_rules() -> ActiveRules:
    """rules/ on the reference engine, compiled once a session."""
    settings = Settings(database_url="", rules_dir=str(RULES_DIR), engine="reference")
    return SessionRules(settings).compile(read_rules_dir(str(RULES_DIR)))


@pytest.fixture
def memory_path(example_rules: ActiveRules) -> EventPath:
    """The event path over the in-memory store: use cases where no database is the point."""
    return memory_event_path(example_rules, FixedClock())


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def event_path(request: pytest.FixtureRequest, example_rules: ActiveRules) -> EventPath:
    """The event path over the in-memory store, SQLite and PostgreSQL: a promise of the
    use cases shown on all three."""
    clock = FixedClock()
    if request.param == "memory":
        return memory_event_path(example_rules, clock)
    url = request.getfixturevalue(f"{request.param}_url")
    settings = Settings(database_url=url, rules_dir=str(RULES_DIR), engine="reference")
    return database_event_path(fresh_services(settings, clock), example_rules)
