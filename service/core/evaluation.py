"""Deciding: (rules version, member snapshot, event) -> effects and a trace.

The one evaluation that live events, dry runs, rule-file tests and replays all call.
A matcher (durable-rules or the reference) says which rules' conditions hold; this
module applies what conditions cannot express: active windows, priority, per-member
limits, campaign budgets, referral safeguards, tier qualification and the points
arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from service.core.awards import points_for
from service.core.conditions import Facts, explain_failure
from service.core.customer import CustomerSnapshot
from service.core.effects import (
    BUDGET_SPENT,
    INACTIVE,
    LIMIT_REACHED,
    MATCHED,
    NOT_MATCHED,
    OUTRANKED,
    REFUSED,
    AwardPoints,
    ChangeTier,
    Effect,
    Evaluation,
    IssueOffer,
    SendMessage,
    TagCustomer,
    TraceEntry,
)
from service.core.events import Event
from service.core.facts import build_facts
from service.core.plan import plan_for
from service.core.programme import (
    Campaign,
    Limit,
    MessageSpec,
    OfferGrant,
    PointsFormula,
    Rule,
    RuleSet,
    TagChange,
    TierGrant,
)
from service.core.referrals import ReferralContext, referral_refusal
from service.core.segments import rfm_scores, segment_for
from service.core.tiers import qualified_change, rank


class Matcher(Protocol):
    """Says which rules' conditions hold for a set of facts."""

    name: str

    def match(self, facts: Facts) -> frozenset[str]:
        """Keys (campaign/rule) of every rule whose condition holds."""
        ...


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """What a campaign has spent so far, across all members."""

    points: int = 0
    offers: int = 0
    revenue: Decimal = Decimal(0)  # of the purchases it rewarded


@dataclass(slots=True)
class _Spending:
    used: dict[str, BudgetUse] = field(default_factory=dict)

    def of(self, campaign: str) -> BudgetUse:
        return self.used.get(campaign, BudgetUse())

    def add(
        self, campaign: str, points: int = 0, offers: int = 0, revenue: Decimal = Decimal(0)
    ) -> None:
        now = self.of(campaign)
        self.used[campaign] = BudgetUse(
            now.points + points, now.offers + offers, now.revenue + revenue
        )


def evaluate(
    ruleset: RuleSet,
    matcher: Matcher,
    customer: CustomerSnapshot,
    event: Event,
    *,
    budgets_used: Mapping[str, BudgetUse] | None = None,
    referral: ReferralContext | None = None,
    explain: bool = False,
) -> Evaluation:
    programme = ruleset.programme
    tier = customer.tier
    if tier is None and programme.tiers.levels:
        # A member with no tier yet stands on the lowest level, and rules see it so.
        tier = programme.tiers.levels[0].name
    plan = plan_for(ruleset)
    scores = None
    segment = customer.segment
    if plan.needs_rfm:
        rfm = rfm_scores(programme.rfm, customer, event.occurred_at)
        scores = (rfm.recency, rfm.frequency, rfm.monetary)
        if customer.segment is None:
            segment = segment_for(programme.rfm, rfm)
    if tier != customer.tier or segment != customer.segment:
        customer = replace(customer, tier=tier, segment=segment)  # one copy, not two
    facts = build_facts(
        event,
        customer,
        programme.timezone,
        ruleset.dynamic_fields,
        scores,
        local=plan.needs_local,
    )
    matched = matcher.match(facts)
    refusal = referral_refusal(event, customer, referral, programme.referrals)
    spending = _Spending(dict(budgets_used or {}))
    effects: list[Effect] = []
    trace: list[TraceEntry] = []

    winners: dict[str, str] = {}  # exclusive group -> the campaign that applied
    for campaign, rule in plan.rules_for(event.type):
        if rule.key not in matched:
            if explain:
                reason = explain_failure(rule.condition, facts) or "engine found no match"
                trace.append(TraceEntry(campaign.id, rule.name, NOT_MATCHED, reason))
            continue
        group = campaign.exclusive_group
        winner = winners.get(group) if group is not None else None
        stop = (
            (OUTRANKED, f"exclusive group {group}: campaign {winner} applied")
            if winner is not None and winner != campaign.id
            else _refusal(campaign, rule, customer, event, spending)
            or ((REFUSED, refusal) if refusal else None)
        )
        if stop is not None:
            trace.append(TraceEntry(campaign.id, rule.name, *stop))
            continue
        notes = _rule_effects(ruleset, campaign, rule, customer, event, facts, spending, effects)
        trace.append(TraceEntry(campaign.id, rule.name, MATCHED, "; ".join(notes)))
        if group is not None:
            winners[group] = campaign.id

    change = qualified_change(
        programme.tiers, _tier_now(customer, effects), customer, event, effects
    )
    if change is not None:
        effects.append(change)
    return Evaluation(tuple(effects), tuple(trace), ruleset.version, matcher.name)


def ordered(campaigns: tuple[Campaign, ...]) -> list[Campaign]:
    """Higher priority first; equal priorities in campaign-id order, never load order."""
    return sorted(campaigns, key=lambda c: (-c.priority, c.id))


def _tier_now(customer: CustomerSnapshot, effects: list[Effect]) -> str | None:
    grants = [e.to_tier for e in effects if isinstance(e, ChangeTier)]
    return grants[-1] if grants else customer.tier


def _refusal(
    campaign: Campaign, rule: Rule, customer: CustomerSnapshot, event: Event, spending: _Spending
) -> tuple[str, str] | None:
    at = event.occurred_at
    if not campaign.is_active(at):
        return INACTIVE, _inactive_reason(campaign, at)
    firings = customer.rule_firings.get(rule.key, ())
    if rule.limit is not None and limit_reached(rule.limit, firings, at):
        return LIMIT_REACHED, f"already fired {rule.limit.per_customer} time(s) in the window"
    budget = campaign.budget
    if budget is None:
        return None
    used = spending.of(campaign.id)
    awards = any(isinstance(e, PointsFormula) for e in rule.effects)
    offers = any(isinstance(e, OfferGrant) for e in rule.effects)
    if awards and budget.points is not None and used.points >= budget.points:
        return BUDGET_SPENT, f"budget of {budget.points} points is spent"
    if offers and budget.offers is not None and used.offers >= budget.offers:
        return BUDGET_SPENT, f"budget of {budget.offers} offers is spent"
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


def points_left(campaign: Campaign, used: BudgetUse, event: Event) -> int | None:
    """How many points the campaign may still give on this event; None: no limit."""
    budget = campaign.budget
    if budget is None:
        return None
    limits = []
    if budget.points is not None:
        limits.append(budget.points - used.points)
    if budget.share_of_revenue is not None:
        revenue = used.revenue + (event.amount or Decimal(0) if event.type == "purchase" else 0)
        limits.append(int(budget.share_of_revenue * revenue) - used.points)
    return max(0, min(limits)) if limits else None


def _rule_effects(
    ruleset: RuleSet,
    campaign: Campaign,
    rule: Rule,
    customer: CustomerSnapshot,
    event: Event,
    facts: Facts,
    spending: _Spending,
    effects: list[Effect],
) -> list[str]:
    programme = ruleset.programme
    notes: list[str] = []
    for spec in rule.effects:
        if isinstance(spec, PointsFormula):
            multiplier = programme.tiers.multiplier(customer.tier)
            _award(
                campaign, rule, spec, multiplier, customer, event, facts, spending, effects, notes
            )
        elif isinstance(spec, TagChange):
            effects.append(TagCustomer(spec.add, spec.remove, campaign.id, rule.name))
        elif isinstance(spec, OfferGrant):
            offer = programme.offer(spec.offer)
            budget = campaign.budget
            if offer is None:
                notes.append(f"offer {spec.offer!r} is not in the catalogue")
            elif (
                budget
                and budget.offers is not None
                and spending.of(campaign.id).offers >= budget.offers
            ):
                notes.append(
                    f"offer {spec.offer!r} not issued: budget of {budget.offers} offers spent"
                )
            else:
                effects.append(
                    IssueOffer(
                        offer.id, event.occurred_at + offer.valid_for, campaign.id, rule.name
                    )
                )
                spending.add(campaign.id, offers=1)
        elif isinstance(spec, MessageSpec):
            effects.append(
                SendMessage(
                    spec.template,
                    spec.channel,
                    spec.category,
                    campaign.id,
                    rule.name,
                    urgent=spec.urgent,
                    dedupe_key=spec.dedupe,
                    stale_after=spec.stale_after,
                )
            )
        elif isinstance(spec, TierGrant):
            current = _tier_now(customer, effects)
            tiers = programme.tiers
            if rank(tiers, spec.tier) > rank(tiers, current):
                until = event.occurred_at + spec.duration if spec.duration else None
                effects.append(
                    ChangeTier(current, spec.tier, "fast_track", until, campaign.id, rule.name)
                )
            else:
                notes.append(f"already at {current!r}, not below {spec.tier!r}")
    return notes


def _award(
    campaign: Campaign,
    rule: Rule,
    spec: PointsFormula,
    tier_multiplier: Decimal,
    customer: CustomerSnapshot,
    event: Event,
    facts: Facts,
    spending: _Spending,
    effects: list[Effect],
    notes: list[str],
) -> None:
    recipient = None
    if spec.to == "referrer":
        recipient = event.referrer_id if event.type == "referral" else customer.referred_by
        if recipient is None:
            notes.append("no referrer to reward")
            return
    # A referrer's own tier is not known here; their reward is the rule's number as written.
    multiplier = tier_multiplier if spec.tier_multiplier and recipient is None else Decimal(1)
    points = points_for(spec, facts, event, multiplier)
    left = points_left(campaign, spending.of(campaign.id), event)
    if left is not None and points > left:
        notes.append(f"capped from {points} to the {left} points left in the budget")
        points = left
    if points <= 0:
        return
    effects.append(AwardPoints(points, campaign.id, rule.name, recipient))
    revenue = event.amount if event.type == "purchase" and event.amount is not None else Decimal(0)
    rewarded_before = any(
        isinstance(e, AwardPoints) and e.campaign == campaign.id for e in effects[:-1]
    )
    spending.add(campaign.id, points=points, revenue=Decimal(0) if rewarded_before else revenue)
