"""What evaluation can work out once per rules version rather than once per event:
the rules each event type reaches, in order, and which groups of facts any rule reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.core.conditions import paths
from service.core.events import EVENT_TYPES, INTERNAL_EVENT_TYPES
from service.core.programme import Campaign, PointsFormula, Rule, RuleSet

MAX_CACHED_PLANS = 64


@dataclass(frozen=True, slots=True)
class EvaluationPlan:
    by_type: Mapping[str, tuple[tuple[Campaign, Rule], ...]]
    untyped: tuple[tuple[Campaign, Rule], ...]
    needs_local: bool  # some rule reads local.* (the member's clock)
    needs_rfm: bool  # some rule reads customer.rfm.* or customer.segment

    def rules_for(self, event_type: str) -> tuple[tuple[Campaign, Rule], ...]:
        return self.by_type.get(event_type, self.untyped)


_plans: dict[int, tuple[RuleSet, EvaluationPlan]] = {}


def plan_for(ruleset: RuleSet) -> EvaluationPlan:
    """The plan of a rules version, made on first use and kept while it is in use."""
    cached = _plans.get(id(ruleset))
    if cached is not None and cached[0] is ruleset:
        return cached[1]
    plan = _make_plan(ruleset)
    if len(_plans) >= MAX_CACHED_PLANS:
        _plans.clear()
    _plans[id(ruleset)] = (ruleset, plan)
    return plan


def _make_plan(ruleset: RuleSet) -> EvaluationPlan:
    ordered = sorted(ruleset.campaigns, key=lambda c: (-c.priority, c.id))
    pairs = [(campaign, rule) for campaign in ordered for rule in campaign.rules]
    by_type = {
        kind: tuple(p for p in pairs if p[1].event_type in (None, kind))
        for kind in (*EVENT_TYPES, *INTERNAL_EVENT_TYPES)
    }
    read: set[str] = set()
    for _, rule in pairs:
        read |= paths(rule.condition)
        read |= {e.of for e in rule.effects if isinstance(e, PointsFormula) and e.of}
    return EvaluationPlan(
        by_type=by_type,
        untyped=tuple(p for p in pairs if p[1].event_type is None),
        needs_local=any(p.startswith("local.") for p in read),
        needs_rfm=any(p.startswith("customer.rfm.") or p == "customer.segment" for p in read),
    )
