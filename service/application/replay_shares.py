"""Replaying members in shares, one process each, and putting the shares back together.

Members are independent in a replay except for two things:
- referrals: a referral touches the referee and the referrer, and the referrer is later
  rewarded for the referee's purchases. Members linked by referrals (in the events, or a
  seeded member's ``referred_by``) are kept in one share.
- campaign budgets, shared by every member. Each share replays with real budget checks
  against its own use only and notes every change of a budget's use with the event's
  position. ``budgets_never_reached`` then merges those notes in event order: if no
  share's use and no merged use ever reaches a points or offers budget, no decision in
  any share was limited by a budget, nor would it have been in one process, and the
  shares' results are exact. Otherwise the caller replays in one process.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from service.application.replay import BudgetSpend
from service.application.replay_records import (
    CampaignTally,
    CustomerOutcome,
    MemberSeed,
    ReplayResult,
)
from service.core.evaluation import BudgetUse
from service.core.programme import RuleSet


class Links:
    """Members linked by referrals (a union-find): each group is replayed in one share."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def link(self, one: str, other: str) -> None:
        a, b = self._root(one), self._root(other)
        if a != b:
            # The smaller id leads, so the grouping does not depend on the order of links.
            low, high = (a, b) if a < b else (b, a)
            self._parent[high] = low

    def link_seeds(self, seeds: Mapping[str, MemberSeed]) -> None:
        for customer_id, seed in seeds.items():
            if seed.record.referred_by is not None:
                self.link(customer_id, seed.record.referred_by)

    def _root(self, member: str) -> str:
        parent = self._parent.setdefault(member, member)
        if parent == member:
            return member
        root = self._root(parent)
        self._parent[member] = root
        return root

    def leaders(self) -> dict[str, str]:
        """member -> the member leading its group, for every linked member."""
        return {member: self._root(member) for member in list(self._parent)}


@dataclass(frozen=True, slots=True)
class Shares:
    """Which share replays a member: a hash of its group's leader (of itself, if unlinked)."""

    count: int
    leaders: dict[str, str] = field(default_factory=dict)

    def of(self, customer_id: str) -> int:
        leader = self.leaders.get(customer_id, customer_id)
        return zlib.crc32(leader.encode()) % self.count


# -- budgets


@dataclass(frozen=True, slots=True)
class Limit:
    points: int | None
    offers: int | None


def budget_limits(ruleset: RuleSet) -> dict[str, Limit]:
    return {
        c.id: Limit(c.budget.points, c.budget.offers)
        for c in ruleset.campaigns
        if c.budget is not None
    }


def revenue_budgets(ruleset: RuleSet) -> list[str]:
    """Campaigns whose budget follows revenue: the shares cannot be checked against it."""
    return sorted(
        c.id
        for c in ruleset.campaigns
        if c.budget is not None and c.budget.share_of_revenue is not None
    )


def budgets_never_reached(
    limits: Mapping[str, Limit],
    seed: Mapping[str, BudgetUse],
    shares: Sequence[Sequence[BudgetSpend]],
) -> str | None:
    """None when no share's use of a budget, nor their use merged in event order, ever
    reached the budget; otherwise the campaign whose budget was reached."""
    for spends in shares:
        reached = _first_reached(limits, seed, spends)
        if reached is not None:
            return reached
    merged = heapq.merge(*shares, key=lambda spend: spend.position)
    return _first_reached(limits, seed, merged)


def _first_reached(
    limits: Mapping[str, Limit], seed: Mapping[str, BudgetUse], spends: Iterable[BudgetSpend]
) -> str | None:
    """Walk one event at a time: an event decides against the use before it, then spends
    (its positive changes) and gives back (a refund's negative ones). The decision could
    not have been limited while the use before it plus what it spent stays below the
    budget."""
    used = {c: (seed[c].points, seed[c].offers) if c in seed else (0, 0) for c in limits}
    for campaign, (points, offers) in used.items():
        if _reached(limits[campaign], points, offers):
            return campaign
    position: int | None = None
    peak: dict[str, tuple[int, int]] = {}
    for spend in spends:
        if spend.position != position:
            if (reached := _settle(limits, used, peak)) is not None:
                return reached
            position, peak = spend.position, {}
        points, offers = used.get(spend.campaign, (0, 0))
        top_points, top_offers = peak.get(spend.campaign, (points, offers))
        peak[spend.campaign] = (
            top_points + max(spend.points, 0),
            top_offers + max(spend.offers, 0),
        )
        used[spend.campaign] = (points + spend.points, offers + spend.offers)
    return _settle(limits, used, peak)


def _settle(
    limits: Mapping[str, Limit], used: dict[str, tuple[int, int]], peak: dict[str, tuple[int, int]]
) -> str | None:
    for campaign, (points, offers) in peak.items():
        limit = limits.get(campaign)
        if limit is not None and _reached(limit, points, offers):
            return campaign
    return None


def _reached(limit: Limit, points: int, offers: int) -> bool:
    return (limit.points is not None and points >= limit.points) or (
        limit.offers is not None and offers >= limit.offers
    )


# -- results


def merge_results(
    version: str, parts: Sequence[ReplayResult], seed: Mapping[str, BudgetUse]
) -> ReplayResult:
    """One version's result from its shares' (each member is in one share; every share
    started from the same budgets ``seed``)."""
    merged = ReplayResult(version)
    budgets: dict[str, tuple[int, int, Decimal]] = {}
    tiers: dict[str, int] = {}
    for part in parts:
        merged.events += part.events
        merged.duplicates += part.duplicates
        merged.points_issued += part.points_issued
        merged.points_clawed += part.points_clawed
        merged.offers += part.offers
        merged.messages += part.messages
        merged.tier_changes += part.tier_changes
        for campaign, tally in part.campaigns.items():
            _add_tally(merged.campaigns.setdefault(campaign, CampaignTally()), tally)
        for customer_id, outcome in part.customers.items():
            _add_outcome(merged.customers.setdefault(customer_id, CustomerOutcome()), outcome)
        for tier, members in part.tiers.items():
            tiers[tier] = tiers.get(tier, 0) + members
        for campaign, use in part.budgets.items():
            start = seed.get(campaign, BudgetUse())
            points, offers, revenue = budgets.get(campaign, (0, 0, Decimal(0)))
            budgets[campaign] = (
                points + use.points - start.points,
                offers + use.offers - start.offers,
                revenue + use.revenue - start.revenue,
            )
    for campaign, (points, offers, revenue) in budgets.items():
        start = seed.get(campaign, BudgetUse())
        budgets_use = BudgetUse(
            start.points + points, start.offers + offers, start.revenue + revenue
        )
        merged.budgets[campaign] = budgets_use
    merged.budgets = dict(sorted(merged.budgets.items()))
    merged.tiers = dict(sorted(tiers.items()))
    return merged


def _add_tally(into: CampaignTally, tally: CampaignTally) -> None:
    into.points += tally.points
    into.awards += tally.awards
    into.offers += tally.offers
    into.messages += tally.messages
    into.tier_grants += tally.tier_grants
    into.tags += tally.tags
    for member, points in tally.members.items():
        into.members[member] = into.members.get(member, 0) + points


def _add_outcome(into: CustomerOutcome, outcome: CustomerOutcome) -> None:
    into.points += outcome.points
    into.offers += outcome.offers
    into.messages += outcome.messages
    into.tier_changes += outcome.tier_changes
    into.balance += outcome.balance
    into.debt += outcome.debt
    into.tier = outcome.tier if outcome.tier is not None else into.tier
