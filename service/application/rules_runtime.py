"""The rules version a process serves, swapped whole so a reload is atomic."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from service.core.evaluation import Matcher
from service.core.programme import RuleSet
from service.rules.campaign_parser import RuleCase
from service.rules.loader import load_rules, version_of

MatcherFactory = Callable[[RuleSet], Matcher]


@dataclass(frozen=True, slots=True)
class ActiveRules:
    ruleset: RuleSet
    matcher: Matcher
    cases: tuple[RuleCase, ...]
    # Asked on every event, so worked out once per version.
    budgeted: tuple[str, ...] = field(init=False)  # campaigns with a budget, sorted
    limited: tuple[str, ...] = field(init=False)  # keys of rules with a limit

    def __post_init__(self) -> None:
        campaigns = self.ruleset.campaigns
        budgeted = tuple(sorted(c.id for c in campaigns if c.budget is not None))
        object.__setattr__(self, "budgeted", budgeted)
        limited = tuple(rule.key for rule in self.ruleset.rules if rule.limit is not None)
        object.__setattr__(self, "limited", limited)

    @property
    def version(self) -> str:
        return self.ruleset.version


class RulesRuntime:
    """Holds the active rules. A load that fails raises and leaves the active version alone."""

    def __init__(self, make_matcher: MatcherFactory) -> None:
        self._make_matcher = make_matcher
        self._active: ActiveRules | None = None
        self._lock = threading.Lock()

    @property
    def active(self) -> ActiveRules:
        active = self._active
        if active is None:
            raise RuntimeError("no rules loaded")
        return active

    @property
    def loaded(self) -> bool:
        return self._active is not None

    def compile(self, files: Mapping[str, str]) -> ActiveRules:
        """Validate and compile files without making them active (dry runs with sent rules)."""
        loaded = load_rules(files)
        return ActiveRules(loaded.ruleset, self._make_matcher(loaded.ruleset), loaded.cases)

    def load(self, files: Mapping[str, str]) -> ActiveRules:
        with self._lock:
            if self._active is not None and self._active.version == version_of(files):
                return self._active
            candidate = self.compile(files)
            replaced, self._active = self._active, candidate
        if replaced is not None:
            # Frees the engine's memory for the old version; a request still holding it
            # is answered by the reference engine.
            close_matcher(replaced.matcher)
        return candidate

    @contextmanager
    def temporary(self, files: Mapping[str, str]) -> Iterator[ActiveRules]:
        """Rules for one dry run, closed afterwards so no engine memory stays behind."""
        rules = self.compile(files)
        try:
            yield rules
        finally:
            close_matcher(rules.matcher)


def close_matcher(matcher: Matcher) -> None:
    close = getattr(matcher, "close", None)
    if callable(close):
        close()
