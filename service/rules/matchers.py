"""Choosing the matcher a process serves with, and falling back when the engine fails.

Importing this module does not load durable-rules; only build_matcher(engine="durable")
and why_durable_cannot_load() do, through service.rules.durable_engine. Where durable-rules
cannot be imported (its 2.0.28 extension needs a patched build on Python 3.13), a process
configured for it serves with the reference engine, and engine_in_use() says why.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable

from service.core.conditions import Facts
from service.core.evaluation import Matcher
from service.core.programme import Rule
from service.rules.reference import ReferenceMatcher

ENGINES = ("durable", "reference")

FallbackCallback = Callable[[str], None]


@functools.cache
def why_durable_cannot_load() -> str | None:
    """Why durable-rules cannot be imported in this process, or None when it can.

    Asked once per process: an import that failed stays failed until a restart.
    """
    try:
        import service.rules.durable_engine  # noqa: F401 - the import is the check
    except ImportError as error:
        return f"{type(error).__name__}: {error}"
    return None


def engine_in_use(engine: str) -> tuple[str, str | None]:
    """The engine a process configured for ``engine`` really serves with, and a note
    saying why when that is not the configured one."""
    if engine == "durable":
        missing = why_durable_cannot_load()
        if missing is not None:
            return "reference", f"durable-rules unavailable: {missing}"
    return engine, None


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
    Where durable-rules cannot be imported at all, the reference is returned without a
    word here: that is said once at start (engine_in_use), not at every load.
    """
    rules = tuple(rules)
    reference = ReferenceMatcher(rules)
    if engine == "reference":
        return reference
    if engine != "durable":
        raise ValueError(f"unknown rule engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if why_durable_cannot_load() is not None:
        return reference
    from service.rules.durable_engine import DurableMatcher, EngineFailure

    try:
        primary = DurableMatcher(rules, version)
    except EngineFailure as error:
        on_fallback(f"durable-rules could not load version {version}: {error}")
        return reference
    return FallbackMatcher(primary, reference, on_fallback)
