"""Turning a rule's ``when:`` mapping into the condition intermediate form.

Every literal is coerced to its field's type here (a store id written as 123 becomes
"123"; an amount written "50" becomes 50), so neither engine ever compares a string
with a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from service.core.conditions import (
    ELEMENT,
    AllOf,
    AnyOf,
    ArrayAll,
    ArrayAny,
    Compare,
    Condition,
    Exists,
    Matches,
    Scalar,
    negate,
)
from service.core.durations import parse_duration
from service.core.events import EVENT_TYPES, INTERNAL_EVENT_TYPES
from service.core.facts import (
    BOOLEAN,
    DYNAMIC_PREFIXES,
    FIELD_TYPES,
    ITEM_FIELDS,
    ITEMS,
    NUMBER,
    STRING,
    STRINGS,
    WEEKDAYS,
)
from service.core.patterns import validate_pattern
from service.rules.problems import Problems, kind_of, suggest
from service.rules.yaml_source import LocatedDict, LocatedList

OPERATORS = (
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "not_in",
    "exists",
    "matches",
    "any",
    "all",
)
COMBINATORS = ("all_of", "any_of", "not")
SCHEDULES = ("schedule", "inactive_for")
SCHEDULE_KINDS = ("birthday", "anniversary", "inactive")
MAX_IN_VALUES = 500
ORDERED_TYPES = (NUMBER, STRING)
# Values a field may take, where the product knows them all.
ENUMERATIONS: Mapping[str, tuple[str, ...]] = {
    "type": (*EVENT_TYPES, *INTERNAL_EVENT_TYPES),
    "local.weekday": WEEKDAYS,
}


class ConditionParser:
    """Parses conditions of one file; remembers the types it gave to dynamic fields."""

    def __init__(self, problems: Problems, tiers: tuple[str, ...], dynamic: dict[str, str]) -> None:
        self.problems = problems
        self.enumerations = dict(ENUMERATIONS)
        if tiers:
            self.enumerations["customer.tier"] = tiers
        self.dynamic = dynamic

    def parse(self, when: Any, line: int) -> Condition | None:
        mapping = self.problems.mapping(when, line, "`when`")
        if mapping is None:
            return None
        if not mapping:
            self.problems.add(line, "`when` is empty; a rule must say when it applies")
            return None
        return self._mapping(mapping, {}, "")

    def element(
        self, mapping: LocatedDict, scope: Mapping[str, str], prefix: str
    ) -> Condition | None:
        """A condition over one element of a list (an item's fields, for instance)."""
        return self._mapping(mapping, scope, prefix)

    # A mapping is a conjunction of its entries.
    def _mapping(
        self, mapping: LocatedDict, scope: Mapping[str, str], prefix: str
    ) -> Condition | None:
        parts: list[Condition | None] = []
        for key, value in mapping.items():
            line = mapping.line_of(key)
            if key in ("all_of", "any_of"):
                parts.append(self._combination(key, value, line, scope, prefix))
            elif key in SCHEDULES and not scope:
                parts.append(self._schedule(key, value, line))
            elif key == "not":
                inner_map = self.problems.mapping(value, line, "`not`")
                inner = self._mapping(inner_map, scope, prefix) if inner_map else None
                parts.append(self._negated(inner, line))
            else:
                parts.append(self._field(key, value, line, scope, prefix))
        if any(part is None for part in parts):
            return None
        return _conjunction([p for p in parts if p is not None])

    def _schedule(self, key: str, value: Any, line: int) -> Condition | None:
        """``schedule: birthday`` and ``inactive_for: 60d``: campaigns a daily job triggers,
        written as conditions on the job's schedule events."""
        if key == "schedule":
            if value not in SCHEDULE_KINDS[:2]:
                self.problems.add(line, f"schedule is one of {', '.join(SCHEDULE_KINDS[:2])}")
                return None
            return AllOf((Compare("type", "eq", "schedule"), Compare("kind", "eq", value)))
        try:
            days = Decimal(parse_duration(value).days) if isinstance(value, str) else None
        except ValueError:
            days = None
        if not days:
            self.problems.add(line, "inactive_for takes whole days, e.g. 60d")
            return None
        return AllOf(
            (
                Compare("type", "eq", "schedule"),
                Compare("kind", "eq", "inactive"),
                Compare("customer.days_since_last_purchase", "gte", days),
            )
        )

    def _combination(
        self, key: str, value: Any, line: int, scope: Mapping[str, str], prefix: str
    ) -> Condition | None:
        items = self.problems.sequence(value, line, f"`{key}`")
        if items is None:
            return None
        if not items:
            # durable-rules hangs the process on an empty conjunction; say so here instead.
            self.problems.add(line, f"`{key}` is empty; list at least one condition")
            return None
        parsed = []
        for index, item in enumerate(items):
            entry = self.problems.mapping(item, items.line_of(index), f"an entry of `{key}`")
            parsed.append(self._mapping(entry, scope, prefix) if entry is not None else None)
        if any(p is None for p in parsed):
            return None
        conditions = tuple(p for p in parsed if p is not None)
        return AllOf(conditions) if key == "all_of" else AnyOf(conditions)

    def _negated(self, inner: Condition | None, line: int) -> Condition | None:
        if inner is None:
            return None
        try:
            return negate(inner)
        except ValueError as error:
            self.problems.add(line, str(error))
            return None

    def _field(
        self, path: str, value: Any, line: int, scope: Mapping[str, str], prefix: str
    ) -> Condition | None:
        kind = self._type_of(path, value, line, scope, prefix)
        if kind is None:
            return None
        if isinstance(value, LocatedDict):
            return self._operators(path, kind, value, scope, prefix)
        if isinstance(value, LocatedList):
            self.problems.add(line, f"{prefix}{path}: a list needs an operator, e.g. `in: [...]`")
            return None
        literal = self._literal(path, kind, value, line, prefix)
        return None if literal is None else Compare(path, "eq", literal)

    def _type_of(
        self, path: str, value: Any, line: int, scope: Mapping[str, str], prefix: str
    ) -> str | None:
        if scope:
            if path in scope:
                return scope[path]
            self.problems.add(line, f"unknown field {prefix}{path!r}{suggest(path, scope)}")
            return None
        if path in FIELD_TYPES:
            return FIELD_TYPES[path]
        if path.startswith(DYNAMIC_PREFIXES) and len(path.split(".", 1)[1]) > 0:
            inferred = _infer_type(value)
            if inferred is None:
                self.problems.add(line, f"cannot tell the type of {path!r} from {kind_of(value)}")
                return None
            known = self.dynamic.setdefault(path, inferred)
            if known != inferred:
                self.problems.add(
                    line, f"{path!r} is compared with a {inferred} here and a {known} elsewhere"
                )
                return None
            return inferred
        self.problems.add(
            line,
            f"unknown field {path!r}{suggest(path, list(FIELD_TYPES))}; fields under "
            "attributes.* are free",
        )
        return None

    def _operators(
        self, path: str, kind: str, ops: LocatedDict, scope: Mapping[str, str], prefix: str
    ) -> Condition | None:
        if not ops:
            self.problems.add(ops.line, f"{prefix}{path}: no operator given")
            return None
        parts: list[Condition | None] = []
        for op, operand in ops.items():
            line = ops.line_of(op)
            parts.append(self._operator(path, kind, op, operand, line, scope, prefix))
        if any(p is None for p in parts):
            return None
        return _conjunction([p for p in parts if p is not None])

    def _operator(
        self,
        path: str,
        kind: str,
        op: str,
        operand: Any,
        line: int,
        scope: Mapping[str, str],
        prefix: str,
    ) -> Condition | None:
        where = f"{prefix}{path}"
        if kind in (ITEMS, STRINGS) and op not in ("any", "all"):
            self.problems.add(line, f"{where} is a list; use `any` or `all` to test its elements")
            return None
        if op not in OPERATORS:
            self.problems.add(line, f"{where}: unknown operator {op!r}{suggest(op, OPERATORS)}")
            return None
        if op in ("any", "all"):
            return self._quantifier(path, kind, op, operand, line, prefix)
        if op == "exists":
            if not isinstance(operand, bool):
                self.problems.add(line, f"{where}: `exists` takes true or false")
                return None
            return Exists(path, operand)
        if op == "matches":
            return self._matches(path, kind, operand, line, where)
        if op in ("in", "not_in"):
            return self._membership(path, kind, op, operand, line, prefix)
        if op in ("gt", "gte", "lt", "lte") and kind not in ORDERED_TYPES:
            self.problems.add(line, f"{where} is a {kind}; `{op}` needs a number or text")
            return None
        literal = self._literal(path, kind, operand, line, prefix)
        return None if literal is None else Compare(path, op, literal)

    def _matches(
        self, path: str, kind: str, operand: Any, line: int, where: str
    ) -> Condition | None:
        if kind != STRING:
            self.problems.add(line, f"{where} is a {kind}; `matches` needs text")
            return None
        if not isinstance(operand, str):
            self.problems.add(line, f"{where}: `matches` takes a pattern in quotes")
            return None
        error = validate_pattern(operand)
        if error is not None:
            self.problems.add(line, f"{where}: {error}")
            return None
        return Matches(path, operand)

    def _membership(
        self, path: str, kind: str, op: str, operand: Any, line: int, prefix: str
    ) -> Condition | None:
        values = self.problems.sequence(operand, line, f"{prefix}{path}: `{op}`")
        if values is None:
            return None
        if not values:
            self.problems.add(line, f"{prefix}{path}: `{op}` needs at least one value")
            return None
        if len(values) > MAX_IN_VALUES:
            self.problems.add(
                line, f"{prefix}{path}: `{op}` lists {len(values)} values; at most {MAX_IN_VALUES}"
            )
            return None
        literals = [
            self._literal(path, kind, v, values.line_of(i), prefix) for i, v in enumerate(values)
        ]
        if any(lit is None for lit in literals):
            return None
        unique = list(dict.fromkeys(lit for lit in literals if lit is not None))
        if op == "in":
            return _disjunction([Compare(path, "eq", v) for v in unique])
        return _conjunction([Compare(path, "ne", v) for v in unique])

    def _quantifier(
        self, path: str, kind: str, op: str, operand: Any, line: int, prefix: str
    ) -> Condition | None:
        where = f"{prefix}{path}"
        if kind not in (ITEMS, STRINGS):
            self.problems.add(line, f"{where} is a {kind}, not a list; `{op}` applies to lists")
            return None
        if kind == ITEMS:
            element_map = self.problems.mapping(operand, line, f"{where}: `{op}`")
            if element_map is None:
                return None
            element = self._mapping(element_map, ITEM_FIELDS, f"{path}[].")
        else:
            scope = {ELEMENT: STRING}
            if isinstance(operand, LocatedDict):
                element = self._operators(ELEMENT, STRING, operand, scope, f"{path}[]")
            else:
                literal = self._literal(ELEMENT, STRING, operand, line, f"{path}[]")
                element = None if literal is None else Compare(ELEMENT, "eq", literal)
        if element is None:
            return None
        return ArrayAny(path, element) if op == "any" else ArrayAll(path, element)

    def _literal(self, path: str, kind: str, value: Any, line: int, prefix: str) -> Scalar | None:
        where = f"{prefix}{path}"
        literal = _coerce_literal(kind, value)
        if literal is None:
            self.problems.add(line, f"{where} is a {kind}; {kind_of(value)} is not")
            return None
        allowed = self.enumerations.get(path) if not prefix else None
        if allowed is not None and literal not in allowed:
            hint = suggest(str(literal), allowed)
            self.problems.add(
                line, f"{where}: {literal!r} is not one of {', '.join(allowed)}{hint}"
            )
            return None
        return literal


def _coerce_literal(kind: str, value: Any) -> Scalar | None:
    if kind == BOOLEAN:
        return value if isinstance(value, bool) else None
    if kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            return None
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    if kind == STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime):
            return None
        if isinstance(value, date):  # YAML reads 2026-12-05 as a date
            return value.isoformat()
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def _infer_type(value: Any) -> str | None:
    sample = value
    if isinstance(value, LocatedDict):
        operands = [v for op, v in value.items() if op != "exists"]
        if not operands:
            return STRING  # only presence is asked; the type does not matter
        sample = operands[0]
        if isinstance(sample, LocatedList) and sample:
            sample = sample[0]
    if isinstance(sample, bool):
        return BOOLEAN
    if isinstance(sample, (int, float, Decimal)):
        return NUMBER
    if isinstance(sample, str):
        return STRING
    return None


def _conjunction(parts: list[Condition]) -> Condition:
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _disjunction(parts: list[Condition]) -> Condition:
    return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))
