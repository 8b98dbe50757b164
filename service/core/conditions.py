"""Conditions in their one validated intermediate form, and the reference evaluator.

Rule files are parsed into these nodes (``not`` already pushed down to the leaves),
then compiled to two targets: durable-rules' declarative JSON and the plain-Python
closures below. Both must mean the same thing, so the meaning is written down here:

* A fact is a flat mapping of path -> value: ``amount``, ``customer.tier``,
  ``local.weekday``. Values are str, Decimal, bool, a tuple of str (tags) or a tuple
  of mappings (line items). A path that is absent has no value.
* A comparison on an absent path is false, and so is its opposite operator (``ne``):
  an unknown value satisfies no comparison. ``exists`` is the way to ask about absence.
* ``not: X`` holds exactly when ``X`` does not: ``not: {category: red}`` is
  ``category ne red`` *or* ``category`` absent (see ``negate``). Facts are coerced to
  their field's type before evaluation (a value that does not coerce is left out), so
  "present with another type" does not occur and absence is the only other case.
* Numbers compare as numbers and strings as strings; the compiler has already
  coerced every literal to its field's type, so the two never meet.
* ``any`` over an array is true when one element satisfies the element condition;
  ``all`` is true when the array is non-empty and every element does.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from service.core.patterns import compile_full_match

Scalar = str | Decimal | bool
Facts = Mapping[str, object]

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte")
NEGATED = {"eq": "ne", "ne": "eq", "gt": "lte", "lte": "gt", "gte": "lt", "lt": "gte"}
_PYTHON_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
# Within an array element, the element itself (a tag, for arrays of strings).
ELEMENT = ""


@dataclass(frozen=True, slots=True)
class Compare:
    path: str
    op: str  # one of COMPARISONS
    value: Scalar


@dataclass(frozen=True, slots=True)
class Exists:
    path: str
    present: bool


@dataclass(frozen=True, slots=True)
class Matches:
    """Full match of a string against a pattern in the restricted regex dialect."""

    path: str
    pattern: str


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class ArrayAny:
    path: str
    element: Condition  # paths inside are relative to the element; ELEMENT is the element


@dataclass(frozen=True, slots=True)
class ArrayAll:
    path: str
    element: Condition


Condition = Compare | Exists | Matches | AllOf | AnyOf | ArrayAny | ArrayAll
Predicate = Callable[[Facts], bool]


def negate(condition: Condition) -> Condition:
    """The condition that holds exactly when ``condition`` does not, leaves pushed down.

    A comparison is false on an absent path, so its complement is the opposite
    comparison or the path's absence: ``not amount > 10`` is ``amount <= 10 or amount
    absent``. Raises ValueError for what has no negation in this form: a regex match
    and the array quantifiers.
    """
    match condition:
        case Compare(path, op, value):
            return AnyOf((Compare(path, NEGATED[op], value), Exists(path, False)))
        case Exists(path, present):
            return Exists(path, not present)
        case AllOf(items):
            return AnyOf(tuple(negate(item) for item in items))
        case AnyOf(items):
            compares = _one_path_comparisons(items)
            if compares:
                # not (a or b) on one field: absent, or present and neither. Written so,
                # not as a product of (ne or absent) pairs: `not in [100 values]` stays
                # two alternatives for durable-rules instead of 2**100.
                opposites = tuple(Compare(c.path, NEGATED[c.op], c.value) for c in compares)
                return AnyOf((AllOf(opposites), Exists(compares[0].path, False)))
            return AllOf(tuple(negate(item) for item in items))
        case Matches():
            raise ValueError("`not` cannot wrap `matches`; write the pattern you do want")
        case ArrayAny() | ArrayAll():
            raise ValueError("`not` cannot wrap `any`/`all`; put the `not` inside the element")
    raise TypeError(condition)


def _one_path_comparisons(items: tuple[Condition, ...]) -> list[Compare]:
    """The items, when there are two or more and all compare one path; else nothing."""
    compares = [item for item in items if isinstance(item, Compare)]
    if len(items) < 2 or len(compares) < len(items):
        return []
    return compares if len({c.path for c in compares}) == 1 else []


def paths(condition: Condition) -> set[str]:
    """Every top-level fact path a condition reads."""
    match condition:
        case Compare(path) | Exists(path) | Matches(path) | ArrayAny(path) | ArrayAll(path):
            return {path}
        case AllOf(items) | AnyOf(items):
            return set().union(*(paths(item) for item in items))
    raise TypeError(condition)


# ---------------------------------------------------------------- reference compiler


def compile_predicate(condition: Condition) -> Predicate:
    """Compile a condition to a closure over a facts mapping."""
    match condition:
        case Compare(path, op, value):
            compare = _PYTHON_OPS[op]
            kind = type(value)

            def compare_fact(facts: Facts) -> bool:
                actual = facts.get(path)
                # bool is an int subclass in Python; keep types strictly apart as the docs say.
                if actual is None or type(actual) is not kind:
                    return False
                return compare(actual, value)

            return compare_fact
        case Exists(path, present):
            return lambda facts: (facts.get(path) is not None) == present
        case Matches(path, pattern):
            full_match = compile_full_match(pattern)  # RE2: linear time, no backtracking

            def matches_fact(facts: Facts) -> bool:
                actual = facts.get(path)
                return isinstance(actual, str) and full_match(actual)

            return matches_fact
        case AllOf(items):
            return _all_of(items)
        case AnyOf(items):
            return _any_of(items)
        case ArrayAny(path, element):
            on_element = _element_predicate(element)

            def any_element(facts: Facts) -> bool:
                array = facts.get(path)
                if not isinstance(array, tuple):
                    return False
                for item in array:  # noqa: SIM110 (no generator per call: the hot path)
                    if on_element(item):
                        return True
                return False

            return any_element
        case ArrayAll(path, element):
            on_element = _element_predicate(element)

            def all_elements(facts: Facts) -> bool:
                array = facts.get(path)
                if not isinstance(array, tuple) or not array:
                    return False
                for item in array:  # noqa: SIM110 (no generator per call: the hot path)
                    if not on_element(item):
                        return False
                return True

            return all_elements
    raise TypeError(condition)


def _all_of(items: tuple[Condition, ...]) -> Predicate:
    predicates = tuple(compile_predicate(item) for item in items)
    if len(predicates) == 1:
        return predicates[0]
    not_in = _same_path_set(items, "ne")
    if not_in is not None:
        # `not_in: [...]` of one type: present, of that type, and not in the set.
        path, by_kind = not_in
        if len(by_kind) == 1:
            ((kind, values),) = by_kind.items()
            return lambda facts: type(actual := facts.get(path)) is kind and actual not in values

    def all_of(facts: Facts) -> bool:
        for predicate in predicates:  # noqa: SIM110 (no generator per call: the hot path)
            if not predicate(facts):
                return False
        return True

    return all_of


def _any_of(items: tuple[Condition, ...]) -> Predicate:
    predicates = tuple(compile_predicate(item) for item in items)
    if len(predicates) == 1:
        return predicates[0]
    in_list = _same_path_set(items, "eq")
    if in_list is not None:
        # `in: [...]`: one set lookup instead of a comparison per value. Values are kept
        # apart by type, as Compare keeps them (1 is not true, "1" is not 1).
        path, by_kind = in_list
        return lambda facts: (actual := facts.get(path)) in by_kind.get(type(actual), ())

    def any_of(facts: Facts) -> bool:
        for predicate in predicates:  # noqa: SIM110 (no generator per call: the hot path)
            if predicate(facts):
                return True
        return False

    return any_of


def _same_path_set(
    items: tuple[Condition, ...], op: str
) -> tuple[str, dict[type, frozenset[object]]] | None:
    """``(path, {type: values})`` when every item is ``path <op> value`` on one path with
    hashable values; otherwise None."""
    if not items or not all(isinstance(item, Compare) and item.op == op for item in items):
        return None
    compares = [item for item in items if isinstance(item, Compare)]
    path = compares[0].path
    if any(c.path != path for c in compares):
        return None
    by_kind: dict[type, set[object]] = {}
    for compare in compares:
        try:
            hash(compare.value)
        except TypeError:
            return None
        by_kind.setdefault(type(compare.value), set()).add(compare.value)
    return path, {kind: frozenset(values) for kind, values in by_kind.items()}


def _element_predicate(element: Condition) -> Callable[[object], bool]:
    predicate = compile_predicate(element)

    def on_element(value: object) -> bool:
        if type(value) is dict or isinstance(value, Mapping):
            return predicate(value)
        return predicate({ELEMENT: value})

    return on_element


def explain_failure(condition: Condition, facts: Facts) -> str | None:
    """Say which part of a condition fails for these facts, or None when it holds."""
    if compile_predicate(condition)(facts):
        return None
    match condition:
        case AllOf(items):
            for item in items:
                reason = explain_failure(item, facts)
                if reason is not None:
                    return reason
            return None
        case AnyOf(items):
            return "none of: " + "; ".join(filter(None, (explain_failure(i, facts) for i in items)))
        case _:
            return f"{describe(condition)} (was {_shown(facts, condition)})"


def _shown(facts: Facts, condition: Condition) -> str:
    value = facts.get(getattr(condition, "path", ""))
    if value is None:
        return "absent"
    if isinstance(value, tuple):
        return f"{len(value)} element(s)"
    return repr(str(value)) if isinstance(value, str) else str(value).lower()


def describe(condition: Condition) -> str:
    """A condition as a reader of the rule file would write it."""
    match condition:
        case Compare(path, op, value):
            shown = f"'{value}'" if isinstance(value, str) else str(value).lower()
            return f"{path} {op} {shown}"
        case Exists(path, present):
            return f"{path} {'exists' if present else 'is absent'}"
        case Matches(path, pattern):
            return f"{path} matches {pattern!r}"
        case AllOf(items):
            return "all of (" + ", ".join(describe(i) for i in items) + ")"
        case AnyOf(items):
            return "any of (" + ", ".join(describe(i) for i in items) + ")"
        case ArrayAny(path, element):
            return f"{path} has any element with {describe(element)}"
        case ArrayAll(path, element):
            return f"{path} has only elements with {describe(element)}"
    raise TypeError(condition)
