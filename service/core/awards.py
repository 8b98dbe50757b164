"""Points arithmetic: how many points one award formula gives for one event."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from functools import lru_cache

from service.core.conditions import Condition, Facts, Predicate, compile_predicate
from service.core.events import Event
from service.core.facts import item_facts
from service.core.programme import PointsFormula

_ROUNDING = {"floor": ROUND_FLOOR, "ceil": ROUND_CEILING, "nearest": ROUND_HALF_UP}
DEFAULT_RATE = "*"


def points_for(spec: PointsFormula, facts: Facts, event: Event, tier_multiplier: Decimal) -> int:
    """``points`` for every whole ``per`` of the base, times the multipliers, rounded, capped."""
    if spec.of is None:
        base = spec.points
    else:
        value = _earning_value(spec, facts, event)
        if value is None:
            return 0
        # "5 points for every 10 CNY": only whole multiples of `per` earn.
        base = (value / spec.per).to_integral_value(rounding=ROUND_FLOOR) * spec.points
    raw = base * spec.multiplier * tier_multiplier
    points = int(raw.quantize(Decimal(1), rounding=_ROUNDING[spec.round]))
    if spec.max is not None:
        points = min(points, spec.max)
    return max(points, 0)


def _earning_value(spec: PointsFormula, facts: Facts, event: Event) -> Decimal | None:
    excluded = _predicate(spec.exclude) if spec.exclude is not None else None
    if spec.of == "items":
        total = Decimal(0)
        for item in event.items:
            lines = item_facts(item)
            if excluded is not None and excluded(lines):
                continue
            rate = spec.rates.get(item.category or "", spec.rates.get(DEFAULT_RATE, Decimal(1)))
            total += item.price * item.quantity * rate
        return total
    value = facts.get(spec.of or "")
    if not isinstance(value, Decimal):
        return None
    if excluded is not None and spec.of == "amount":
        # Lines that never earn come off the order's amount.
        left_out = sum(
            (i.price * i.quantity for i in event.items if excluded(item_facts(i))), Decimal(0)
        )
        value = max(value - left_out, Decimal(0))
    return value


@lru_cache(maxsize=1024)
def _predicate(condition: Condition) -> Predicate:
    return compile_predicate(condition)
