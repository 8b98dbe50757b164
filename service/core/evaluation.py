"""Deciding: (rules version, member snapshot, event) -> effects and a trace.

The one evaluation that live events, dry runs, rule-file tests and replays all call.
A matcher (durable-rules or the reference) says which rules' conditions hold; this
module applies what conditions cannot express: active windows, priority, per-member
limits, campaign budgets, and the points arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Protocol

from service.core.conditions import Facts, explain_failure
from service.core.customer import CustomerSnapshot
from service.core.effects import (
    BUDGET_SPENT,
    INACTIVE,
    LIMIT_REACHED,
    MATCHED,
    NOT_MATCHED,
    AwardPoints,
    Effect,
    Evaluation,
    TagCustomer,
    TraceEntry,
)
from service.core.events import Event
from service.core.facts import build_facts
from service.core.programme import Campaign, Limit, PointsFormula, Rule, RuleSet, TagChange

_ROUNDING = {"floor": ROUND_FLOOR, "ceil": ROUND_CEILING, "nearest": ROUND_HALF_UP}


class Matcher(Protocol):
    """Says which rules' conditions hold for a set of facts."""

    name: str

    def match(self, facts: Facts) -> frozenset[str]:
        """Keys (campaign/rule) of every rule whose condition holds."""
        ...


def evaluate(
    ruleset: RuleSet,
    matcher: Matcher,
    customer: CustomerSnapshot,
    event: Event,
    *,
    budgets_used: Mapping[str, int] | None = None,
    explain: bool = False,
) -> Evaluation:
    if customer.tier is None and ruleset.programme.tiers.levels:
        # A member with no tier yet stands on the lowest level, and rules see it so.
        customer = replace(customer, tier=ruleset.programme.tiers.levels[0].name)
    facts = build_facts(event, customer, ruleset.programme.timezone, ruleset.dynamic_fields)
    matched = matcher.match(facts)
    tier_multiplier = ruleset.programme.tiers.multiplier(customer.tier)
    used = dict(budgets_used or {})
    effects: list[Effect] = []
    trace: list[TraceEntry] = []

    for campaign in ordered(ruleset.campaigns):
        for rule in campaign.rules:
            if rule.event_type is not None and rule.event_type != event.type:
                continue
            if rule.key not in matched:
                if explain:
                    reason = explain_failure(rule.condition, facts) or "engine found no match"
                    trace.append(TraceEntry(campaign.id, rule.name, NOT_MATCHED, reason))
                continue
            refusal = _refusal(campaign, rule, customer, event.occurred_at, used)
            if refusal is not None:
                trace.append(TraceEntry(campaign.id, rule.name, *refusal))
                continue
            granted, note = _rule_effects(campaign, rule, facts, tier_multiplier, used, effects)
            trace.append(TraceEntry(campaign.id, rule.name, MATCHED, note))
            if granted and campaign.budget is not None:
                used[campaign.id] = used.get(campaign.id, 0) + granted
    return Evaluation(tuple(effects), tuple(trace), ruleset.version, matcher.name)


def ordered(campaigns: tuple[Campaign, ...]) -> list[Campaign]:
    """Higher priority first; equal priorities in campaign-id order, never load order."""
    return sorted(campaigns, key=lambda c: (-c.priority, c.id))


def _refusal(
    campaign: Campaign,
    rule: Rule,
    customer: CustomerSnapshot,
    at: datetime,
    used: Mapping[str, int],
) -> tuple[str, str] | None:
    if not campaign.is_active(at):
        return INACTIVE, _inactive_reason(campaign, at)
    if rule.limit is not None and limit_reached(
        rule.limit, customer.rule_firings.get(rule.key, ()), at
    ):
        return LIMIT_REACHED, f"already fired {rule.limit.per_customer} time(s) in the window"
    if campaign.budget is not None and used.get(campaign.id, 0) >= campaign.budget.points:
        return BUDGET_SPENT, f"budget of {campaign.budget.points} points is spent"
    return None


def _inactive_reason(campaign: Campaign, at: datetime) -> str:
    if campaign.active_from is not None and at < campaign.active_from:
        return f"starts {campaign.active_from.isoformat()}"
    return f"ended {campaign.active_until.isoformat() if campaign.active_until else ''}"


def limit_reached(limit: Limit, firings: tuple[datetime, ...], at: datetime) -> bool:
    """Has the rule fired its allowance within ``window`` of ``at``, on either side?

    Counting both sides keeps the promise for events that arrive out of order.
    """
    if limit.window is None:
        return len(firings) >= limit.per_customer
    near = sum(1 for fired in firings if abs(fired - at) < limit.window)
    return near >= limit.per_customer


def _rule_effects(
    campaign: Campaign,
    rule: Rule,
    facts: Facts,
    tier_multiplier: Decimal,
    used: Mapping[str, int],
    effects: list[Effect],
) -> tuple[int, str]:
    granted, notes = 0, []
    for spec in rule.effects:
        if isinstance(spec, PointsFormula):
            points = points_for(spec, facts, tier_multiplier)
            if campaign.budget is not None:
                left = campaign.budget.points - used.get(campaign.id, 0) - granted
                if points > left:
                    notes.append(f"capped from {points} to the {left} points left in the budget")
                    points = max(0, left)
            if points > 0:
                effects.append(AwardPoints(points, campaign.id, rule.name))
                granted += points
        elif isinstance(spec, TagChange):
            effects.append(TagCustomer(spec.add, spec.remove, campaign.id, rule.name))
    return granted, "; ".join(notes)


def points_for(spec: PointsFormula, facts: Facts, tier_multiplier: Decimal) -> int:
    if spec.of is None:
        base = spec.points
    else:
        value = facts.get(spec.of)
        if not isinstance(value, Decimal):
            return 0
        # "5 points for every 10 CNY": only whole multiples of `per` earn.
        base = (value / spec.per).to_integral_value(rounding=ROUND_FLOOR) * spec.points
    raw = base * spec.multiplier * (tier_multiplier if spec.tier_multiplier else Decimal(1))
    points = int(raw.quantize(Decimal(1), rounding=_ROUNDING[spec.round]))
    if spec.max is not None:
        points = min(points, spec.max)
    return max(points, 0)
