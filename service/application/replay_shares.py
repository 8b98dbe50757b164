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

import bisect
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


class BudgetWatch:
    """Budget use followed one event at a time, in event order: an event decides against
    the use before it, then spends (its positive changes) and gives back (a refund's
    negative ones). Its decision could not have been limited by a budget while the use
    before it plus what it spent stays below the budget; ``reached`` names the first
    campaign for which that fails."""

    def __init__(self, limits: Mapping[str, Limit], seed: Mapping[str, BudgetUse]) -> None:
        self._limits = limits
        self._used = {c: (seed[c].points, seed[c].offers) if c in seed else (0, 0) for c in limits}
        self.reached = next(
            (
                c
                for c, (points, offers) in self._used.items()
                if _reached(limits[c], points, offers)
            ),
            None,
        )
        self._position: int | None = None
        self._peak: dict[str, tuple[int, int]] = {}

    def feed(self, spends: Iterable[BudgetSpend]) -> str | None:
        """Spends in event order (one event's together); the campaign reached, if any."""
        used, peak = self._used, self._peak
        for spend in spends:
            if self.reached is not None:
                break
            if spend.position != self._position:
                self._settle()
                self._position, peak = spend.position, {}
                self._peak = peak
            points, offers = used.get(spend.campaign, (0, 0))
            top_points, top_offers = peak.get(spend.campaign, (points, offers))
            peak[spend.campaign] = (
                top_points + max(spend.points, 0),
                top_offers + max(spend.offers, 0),
            )
            used[spend.campaign] = (points + spend.points, offers + spend.offers)
        return self.reached

    def close(self) -> str | None:
        self._settle()
        return self.reached

    def _settle(self) -> None:
        for campaign, (points, offers) in self._peak.items():
            limit = self._limits.get(campaign)
            if self.reached is None and limit is not None and _reached(limit, points, offers):
                self.reached = campaign
        self._peak = {}


class SharesWatch:
    """One version's budgets while its shares run: each share's own use, and all the
    shares' use merged in event order as far as every share has got."""

    def __init__(self, limits: Mapping[str, Limit], seed: Mapping[str, BudgetUse], shares: int):
        self._own = [BudgetWatch(limits, seed) for _ in range(shares)]
        self._merged = BudgetWatch(limits, seed)
        self._waiting: list[list[BudgetSpend]] = [[] for _ in range(shares)]
        self._through = [0] * shares

    def add(self, share: int, spends: Sequence[BudgetSpend], through: int) -> str | None:
        """``spends``: the share's since its last report, through event ``through``."""
        reached = self._own[share].feed(spends)
        if reached is not None:
            return reached
        self._waiting[share].extend(spends)
        self._through[share] = through
        mark = min(self._through)
        ready = []
        for index, waiting in enumerate(self._waiting):
            cut = bisect.bisect_right(waiting, mark, key=lambda spend: spend.position)
            ready.append(waiting[:cut])
            self._waiting[index] = waiting[cut:]
        return self._merged.feed(heapq.merge(*ready, key=lambda spend: spend.position))

    def close(self) -> str | None:
        for own in self._own:
            if own.close() is not None:
                return own.reached
        self._merged.feed(heapq.merge(*self._waiting, key=lambda spend: spend.position))
        return self._merged.close()


def budgets_never_reached(
    limits: Mapping[str, Limit],
    seed: Mapping[str, BudgetUse],
    shares: Sequence[Sequence[BudgetSpend]],
) -> str | None:
    """None when no share's use of a budget, nor their use merged in event order, ever
    reached the budget; otherwise the campaign whose budget was reached."""
    watch = SharesWatch(limits, seed, len(shares))
    for index, spends in enumerate(shares):
        if (reached := watch.add(index, spends, 0)) is not None:
            return reached
    return watch.close()


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
