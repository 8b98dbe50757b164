"""Choosing the matcher a process serves with, and falling back when the engine fails.

Importing this module does not load durable-rules; only build_matcher(engine="durable")
does, through service.rules.durable_engine.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable

from service.core.conditions import Facts
from service.core.evaluation import Matcher
from service.core.programme import Rule
from service.rules.reference import ReferenceMatcher

ENGINES = ("durable", "reference")

FallbackCallback = Callable[[str], None]


class FallbackMatcher:
    """The primary matcher, with the reference answering whenever the primary raises.

    ``name`` stays the primary's, since that is the engine the version was set to use;
    which engine actually answered the latest call on this thread is ``answered_by``,
    and ``fallbacks`` counts the calls the reference took over.
    """

    def __init__(self, primary: Matcher, reference: Matcher, on_fallback: FallbackCallback) -> None:
        self.name = primary.name
        self.primary = primary
        self.reference = reference
        self._on_fallback = on_fallback
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self.fallbacks = 0

    @property
    def answered_by(self) -> str | None:
        answered: str | None = getattr(self._local, "answered_by", None)
        return answered

    def match(self, facts: Facts) -> frozenset[str]:
        try:
            matched = self.primary.match(facts)
        except Exception as error:  # any failure of the primary is the reference's to answer
            with self._count_lock:
                self.fallbacks += 1
            # A failing metric or log must not turn a recoverable event into an error.
            with contextlib.suppress(Exception):
                self._on_fallback(f"{type(error).__name__}: {error}")
            self._local.answered_by = self.reference.name
            return self.reference.match(facts)
        self._local.answered_by = self.primary.name
        return matched

    def close(self) -> None:
        close: Callable[[], None] | None = getattr(self.primary, "close", None)
        if close is not None:
            close()


def build_matcher(
    rules: Iterable[Rule], version: str, engine: str, on_fallback: FallbackCallback
) -> Matcher:
    """The matcher for LOYALTY_ENGINE: "durable" (with the reference behind it) or "reference".

    If durable-rules refuses the whole ruleset, on_fallback hears why once and the plain
    reference matcher is returned, so evaluations record the engine that really decided.
    """
    rules = tuple(rules)
    reference = ReferenceMatcher(rules)
    if engine == "reference":
        return reference
    if engine != "durable":
        raise ValueError(f"unknown rule engine {engine!r}; expected one of {', '.join(ENGINES)}")
    from service.rules.durable_engine import DurableMatcher, EngineFailure

    try:
        primary = DurableMatcher(rules, version)
    except EngineFailure as error:
        on_fallback(f"durable-rules could not load version {version}: {error}")
        return reference
    return FallbackMatcher(primary, reference, on_fallback)
