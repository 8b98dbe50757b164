"""Can a condition ever hold? A small decision procedure over the condition form.

A condition is expanded into alternatives (disjunctive normal form, bounded), each a
conjunction of leaves; an alternative is impossible when two of its leaves contradict on
one field (``amount > 100`` and ``amount < 50``; ``type`` equal to two values; an ``eq``
outside an ``in`` list), when a leaf falls outside the field's domain (``local.hour >=
24``), or when it reads a field the event type it requires never carries (``amount`` on an
activity). Anything the procedure cannot judge (patterns, very large expansions) counts
as possible, so a finding is always a real contradiction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

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
    describe,
)
from service.core.events import EVENT_TYPES, INTERNAL_EVENT_TYPES
from service.core.facts import BOOLEAN, FIELD_TYPES, WEEKDAYS
from service.event_schema import INTERNAL_SCHEMAS, SCHEMAS

MAX_ALTERNATIVES = 512
_ZERO = Decimal(0)
# Numeric fields with known bounds (inclusive).
RANGES: Mapping[str, tuple[Decimal | None, Decimal | None]] = {
    "local.hour": (_ZERO, Decimal(23)),
    "local.minute": (_ZERO, Decimal(59)),
    "local.month": (Decimal(1), Decimal(12)),
    "local.day": (Decimal(1), Decimal(31)),
    "customer.rfm.recency": (Decimal(1), Decimal(5)),
    "customer.rfm.frequency": (Decimal(1), Decimal(5)),
    "customer.rfm.monetary": (Decimal(1), Decimal(5)),
    "amount": (_ZERO, None),
    "item_count": (_ZERO, None),
    "customer.balance": (_ZERO, None),
    "customer.points_pending": (_ZERO, None),
    "customer.lifetime_spend": (_ZERO, None),
    "customer.order_count": (_ZERO, None),
    "customer.days_since_last_purchase": (_ZERO, None),
    "customer.days_since_enrolment": (_ZERO, None),
    "quantity": (_ZERO, None),
    "price": (_ZERO, None),
}
ENUMERATED: Mapping[str, tuple[Scalar, ...]] = {
    "type": (*EVENT_TYPES, *INTERNAL_EVENT_TYPES),
    "local.weekday": WEEKDAYS,
    **{path: (True, False) for path, kind in FIELD_TYPES.items() if kind == BOOLEAN},
}
# The event's own fields, and which event types carry each (from the event contract).
_EVENT_FIELDS = frozenset(p for p in FIELD_TYPES if not p.startswith(("customer.", "local.")))


def _carried(schema_fields: Iterable[str]) -> frozenset[str]:
    names = set(schema_fields) & _EVENT_FIELDS
    if "items" in names:
        names.add("item_count")
    return frozenset(names | {"type"})


CARRIED: Mapping[str, frozenset[str]] = {
    kind: _carried(schema.fields) for kind, schema in {**SCHEMAS, **INTERNAL_SCHEMAS}.items()
}
ATTRIBUTES_CARRIED_BY = frozenset(
    kind
    for kind, schema in {**SCHEMAS, **INTERNAL_SCHEMAS}.items()
    if "attributes" in schema.fields
)


Bound = tuple[Scalar, bool]  # (value, inclusive)


class _TooLarge(Exception):
    pass


def alternatives(condition: Condition) -> list[tuple[Condition, ...]] | None:
    """The condition as alternatives of leaf conjunctions; None when there are too many."""
    try:
        return _dnf(condition)
    except _TooLarge:
        return None


def _dnf(condition: Condition) -> list[tuple[Condition, ...]]:
    if isinstance(condition, AllOf):
        result: list[tuple[Condition, ...]] = [()]
        for item in condition.items:
            parts = _dnf(item)
            result = [left + right for left in result for right in parts]
            if len(result) > MAX_ALTERNATIVES:
                raise _TooLarge
        return result
    if isinstance(condition, AnyOf):
        result = []
        for item in condition.items:
            result += _dnf(item)
            if len(result) > MAX_ALTERNATIVES:
                raise _TooLarge
        return result
    return [(condition,)]


@dataclass(slots=True)
class _Field:
    """What one conjunction says about one field."""

    equal: set[Scalar] = field(default_factory=set)
    unequal: set[Scalar] = field(default_factory=set)
    low: tuple[Scalar, bool] | None = None  # (bound, inclusive)
    high: tuple[Scalar, bool] | None = None
    present: bool | None = None  # True: must exist; False: must be absent
    first: Condition | None = None


def impossible(
    conjunction: Iterable[Condition],
    enumerations: Mapping[str, tuple[Scalar, ...]] | None = None,
    *,
    element: bool = False,
) -> str | None:
    """Why these leaves can never all hold together, or None when they can."""
    enumerated = {**ENUMERATED, **(enumerations or {})} if not element else {}
    fields: dict[str, _Field] = {}
    for leaf in conjunction:
        reason = _add(fields, leaf)
        if reason is not None:
            return reason
    for path, known in fields.items():
        reason = _field_reason(path, known, enumerated, element)
        if reason is not None:
            return reason
    if not element:
        return _carried_reason(fields)
    return None


def _add(fields: dict[str, _Field], leaf: Condition) -> str | None:
    path = getattr(leaf, "path", None)
    if path is None:
        return None
    known = fields.setdefault(path, _Field())
    known.first = known.first or leaf
    if isinstance(leaf, Exists):
        if known.present is not None and known.present != leaf.present:
            return f"{path} must both exist and be absent"
        known.present = leaf.present
        return None
    if known.present is False:
        return f"{describe(leaf)} needs {path}, which must be absent"
    known.present = True
    if isinstance(leaf, (ArrayAny, ArrayAll)):
        return _element_reason(leaf)
    if isinstance(leaf, Matches):
        return None
    assert isinstance(leaf, Compare)
    value, op = leaf.value, leaf.op
    if op == "eq":
        known.equal.add(value)
    elif op == "ne":
        known.unequal.add(value)
    elif op in ("gt", "gte"):
        bound = (value, op == "gte")
        if known.low is None or _tighter_low(bound, known.low):
            known.low = bound
    else:
        bound = (value, op == "lte")
        if known.high is None or _tighter_high(bound, known.high):
            known.high = bound
    return None


def _element_reason(leaf: ArrayAny | ArrayAll) -> str | None:
    options = alternatives(leaf.element)
    if options is None:
        return None
    reasons = [impossible(option, element=True) for option in options]
    if all(reason is not None for reason in reasons):
        return f"no element of {leaf.path} can satisfy it: {reasons[0]}"
    return None


def _tighter_low(new: tuple[Scalar, bool], old: tuple[Scalar, bool]) -> bool:
    return _less(old[0], new[0]) or (new[0] == old[0] and not new[1])


def _tighter_high(new: tuple[Scalar, bool], old: tuple[Scalar, bool]) -> bool:
    return _less(new[0], old[0]) or (new[0] == old[0] and not new[1])


def _less(a: Scalar, b: Scalar) -> bool:
    return type(a) is type(b) and a < b  # type: ignore[operator]


def _within(value: Scalar, low: Bound | None, high: Bound | None) -> bool:
    if type(value) is bool:
        return True
    if low is not None and (_less(value, low[0]) or (value == low[0] and not low[1])):
        return False
    return not (high is not None and (_less(high[0], value) or (value == high[0] and not high[1])))


def _empty(low: Bound | None, high: Bound | None) -> bool:
    if low is None or high is None or type(low[0]) is not type(high[0]):
        return False
    return _less(high[0], low[0]) or (low[0] == high[0] and not (low[1] and high[1]))


def _shown(value: Scalar) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value).lower()


def _field_reason(
    path: str, known: _Field, enumerated: Mapping[str, tuple[Scalar, ...]], element: bool
) -> str | None:
    where = f"items[].{path}" if element and path != ELEMENT else path
    if len(known.equal) > 1:
        values = " and ".join(_shown(v) for v in sorted(known.equal, key=str))
        return f"{where} cannot equal {values} at once"
    low, high = known.low, known.high
    domain_low, domain_high = RANGES.get(path, (None, None))
    if domain_low is not None and (low is None or _less(low[0], domain_low)):
        low = (domain_low, True)
    if domain_high is not None and (high is None or _less(domain_high, high[0])):
        high = (domain_high, True)
    domain = f" ({path} runs {_range(*RANGES[path])})" if path in RANGES else ""
    if known.equal:
        (value,) = known.equal
        if value in known.unequal:
            return f"{where} must equal and differ from {_shown(value)}"
        if not _within(value, low, high):
            return f"{where} equals {_shown(value)}, outside {_range(low, high)}{domain}"
        return None
    if _empty(known.low, known.high):
        return f"{where} cannot be {_range(known.low, known.high)}"
    if _empty(low, high):
        return f"{where} cannot be {_range(known.low, known.high)}{domain}"
    if low is not None and high is not None and low[0] == high[0] and low[0] in known.unequal:
        return f"{where} can only be {_shown(low[0])}, which it must differ from"
    allowed = enumerated.get(path)
    if allowed is not None:
        left = [v for v in allowed if v not in known.unequal and _within(v, low, high)]
        if not left:
            return f"{where} can take none of its values ({', '.join(map(_shown, allowed))})"
    return None


def _range(low: Bound | Scalar | None, high: Bound | Scalar | None) -> str:
    """``> 100 and < 50``; plain values are inclusive domain bounds."""
    parts = []
    if low is not None:
        value, inclusive = low if isinstance(low, tuple) else (low, True)
        parts.append(f"{'>=' if inclusive else '>'} {_shown(value)}")
    if high is not None:
        value, inclusive = high if isinstance(high, tuple) else (high, True)
        parts.append(f"{'<=' if inclusive else '<'} {_shown(value)}")
    return " and ".join(parts)


def _carried_reason(fields: Mapping[str, _Field]) -> str | None:
    types = fields.get("type")
    if types is None or len(types.equal) != 1:
        return None
    (kind,) = types.equal
    carried = CARRIED.get(str(kind))
    if carried is None:
        return None
    for path, known in fields.items():
        if known.present is not True:
            continue
        if path.startswith("attributes."):
            if kind not in ATTRIBUTES_CARRIED_BY:
                return f"{kind} events carry no attributes, so {path} is never there"
        elif path in _EVENT_FIELDS and path not in carried:
            return f"{kind} events carry no {path}"
    return None


def never_holds(
    condition: Condition, enumerations: Mapping[str, tuple[Scalar, ...]] | None = None
) -> str | None:
    """Why the condition can never hold, or None when it can (or cannot be judged)."""
    options = alternatives(condition)
    if not options:
        return None
    reasons = [impossible(option, enumerations) for option in options]
    if any(reason is None for reason in reasons):
        return None
    if len(reasons) == 1:
        return reasons[0]
    shown = list(dict.fromkeys(r for r in reasons if r))
    more = f"; and {len(shown) - 2} more" if len(shown) > 2 else ""
    return "none of its alternatives can hold: " + "; ".join(shown[:2]) + more


def can_hold_together(
    first: Condition,
    second: Condition,
    enumerations: Mapping[str, tuple[Scalar, ...]] | None = None,
) -> bool:
    """Is there an event on which both conditions hold?"""
    return never_holds(AllOf((first, second)), enumerations) is None
