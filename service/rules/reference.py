"""The reference engine: plain-Python predicates, indexed by event type and by one
required value per rule.

It defines what a rule means (service.core.conditions), takes over any event the
durable-rules engine fails on, and is the oracle the differential tests hold that
engine to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from service.core.conditions import (
    AllOf,
    AnyOf,
    Compare,
    Condition,
    Facts,
    Predicate,
    compile_predicate,
)
from service.core.programme import Rule

Entry = tuple[str, Predicate]
Key = tuple[type, object]  # a value with its type: 1 and True and "1" stay apart


class ReferenceMatcher:
    name = "reference"

    def __init__(self, rules: Iterable[Rule]) -> None:
        by_type: dict[str | None, list[Rule]] = defaultdict(list)
        for rule in rules:
            by_type[rule.event_type].append(rule)
        self._any_type = _Candidates(by_type.pop(None, ()))
        self._by_type = {kind: _Candidates(entries) for kind, entries in by_type.items()}

    def match(self, facts: Facts) -> frozenset[str]:
        kind = facts.get("type")
        typed = self._by_type.get(kind) if isinstance(kind, str) else None
        found = typed.matching(facts) if typed is not None else []
        found.extend(self._any_type.matching(facts))
        return frozenset(found)


class _Candidates:
    """Rules of one event type. A rule that requires a field to equal one of a few values
    (``channel: store``, ``store_id: {in: [...]}``) is filed under each of them and only
    tried on facts that carry one; the others are tried on every fact."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        always: list[Entry] = []
        filed: dict[str, dict[Key, list[Entry]]] = defaultdict(lambda: defaultdict(list))
        for rule in rules:
            entry = (rule.key, compile_predicate(rule.condition))
            required = _required_values(rule.condition)
            if required is None:
                always.append(entry)
                continue
            path, keys = required
            for key in keys:
                filed[path][key].append(entry)
        self._always = tuple(always)
        self._filed = {
            path: {key: tuple(entries) for key, entries in table.items()}
            for path, table in filed.items()
        }

    def matching(self, facts: Facts) -> list[str]:
        found = [key for key, holds in self._always if holds(facts)]
        for path, table in self._filed.items():
            actual = facts.get(path)
            if actual is None:
                continue
            try:
                entries = table.get((type(actual), actual), ())
            except TypeError:  # an unhashable value equals none of the filed ones
                continue
            found.extend(key for key, holds in entries if holds(facts))
        return found


def _required_values(condition: Condition) -> tuple[str, frozenset[Key]] | None:
    """The most selective ``path == one of these values`` that the whole condition
    requires, or None. Only the top level counts: an ``all_of`` item must hold."""
    items = condition.items if isinstance(condition, AllOf) else (condition,)
    best: tuple[str, frozenset[Key]] | None = None
    for item in items:
        found = _one_of(item)
        if found is not None and (best is None or len(found[1]) < len(best[1])):
            best = found
    return best


def _one_of(condition: Condition) -> tuple[str, frozenset[Key]] | None:
    alternatives = condition.items if isinstance(condition, AnyOf) else (condition,)
    if not alternatives:
        return None
    path = None
    keys = set()
    for alternative in alternatives:
        if not isinstance(alternative, Compare) or alternative.op != "eq":
            return None
        if path is not None and alternative.path != path:
            return None
        path = alternative.path
        try:
            hash(alternative.value)
        except TypeError:
            return None
        keys.add((type(alternative.value), alternative.value))
    assert path is not None
    return path, frozenset(keys)
