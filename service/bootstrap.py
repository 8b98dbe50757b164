"""The composition root: builds every service from explicit settings.

Called inside each gunicorn worker (never at import, never before the fork), by the CLI,
and by tests with settings of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from service.application.apply_event import apply_group
from service.application.group_commit import GroupCommit
from service.application.ports import Clock, UnitOfWork
from service.application.rules_runtime import MatcherFactory, RulesRuntime
from service.clock import system_clock
from service.core.evaluation import Matcher
from service.core.programme import RuleSet
from service.observability import metrics
from service.observability.instrument import MeasuredUnitOfWork, TimedMatcher
from service.rules.loader import read_rules_dir
from service.rules.matchers import build_matcher
from service.settings import Settings
from service.storage.database import make_engine
from service.storage.unit_of_work import SqlUnitOfWork

log = logging.getLogger("loyalty")


@dataclass
class Services:
    settings: Settings
    db: Engine
    rules: RulesRuntime
    clock: Clock
    on_engine_fallback: Callable[[str], None]
    events: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.events = GroupCommit(
            lambda rules, events: apply_group(self.uow, rules, events, self.clock),
            on_group=metrics.observe_group,
        )

    def uow(self) -> UnitOfWork:
        # Measured: the time from writing the changes to the commit is a metric.
        return MeasuredUnitOfWork(self.db)

    def read_uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.db, readonly=True)

    def reload_rules(self) -> str:
        """Load rules_dir; a broken version raises and the active one stays."""
        files = read_rules_dir(self.settings.rules_dir)
        active = self.rules.load(files)
        with self.uow() as uow:
            uow.store.record_rules_version(active.version, dict(files), self.clock())
            uow.commit()
        metrics.rules_loaded(active.version)
        return active.version


def _log_fallback(reason: str) -> None:
    metrics.record_engine_fallback()
    log.warning("rule engine failed on an event; the reference engine answered: %s", reason)


def matcher_factory(
    settings: Settings, on_engine_fallback: Callable[[str], None] = _log_fallback
) -> MatcherFactory:
    """How each rules version gets its matcher: the configured engine, timed."""

    def matcher_for(ruleset: RuleSet) -> Matcher:
        return TimedMatcher(
            build_matcher(ruleset.rules, ruleset.version, settings.engine, on_engine_fallback)
        )

    return matcher_for


def build_services(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    on_engine_fallback: Callable[[str], None] = _log_fallback,
    load_rules: bool = True,
    db: Engine | None = None,
    rules: RulesRuntime | None = None,
) -> Services:
    """``db`` and ``rules`` are for a caller that shares them between many Services (the
    tests: one engine per database, each rules version compiled once); such an engine's
    statements are the caller's to count (metrics.count_database_calls), once."""
    if db is None:
        db = make_engine(settings.database_url)
        metrics.count_database_calls(db)
    services = Services(
        settings=settings,
        db=db,
        rules=rules
        if rules is not None
        else RulesRuntime(matcher_factory(settings, on_engine_fallback)),
        clock=clock,
        on_engine_fallback=on_engine_fallback,
    )
    if load_rules:
        services.reload_rules()
    return services
