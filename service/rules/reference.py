"""The reference engine: plain-Python predicates, indexed by event type.

It defines what a rule means (service.core.conditions), takes over any event the
durable-rules engine fails on, and is the oracle the differential tests hold that
engine to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from service.core.conditions import Facts, Predicate, compile_predicate
from service.core.programme import Rule


class ReferenceMatcher:
    name = "reference"

    def __init__(self, rules: Iterable[Rule]) -> None:
        by_type: dict[str | None, list[tuple[str, Predicate]]] = defaultdict(list)
        for rule in rules:
            by_type[rule.event_type].append((rule.key, compile_predicate(rule.condition)))
        self._any_type = tuple(by_type.pop(None, ()))
        self._by_type = {kind: tuple(entries) for kind, entries in by_type.items()}

    def match(self, facts: Facts) -> frozenset[str]:
        candidates = self._by_type.get(facts.get("type"), ())  # type: ignore[call-overload]
        return frozenset(key for key, holds in (*candidates, *self._any_type) if holds(facts))
