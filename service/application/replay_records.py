"""The records of an in-memory replay (service.application.replay): what a member starts
with, a member's orders with their window sums, and what the replay counts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from service.application.ports import (
    HeldRefund,
    MemberRecord,
    OrderAward,
    OrderRecord,
    ReferrerAward,
)
from service.core.effects import (
    AwardPoints,
    ChangeTier,
    ClawBackPoints,
    Effect,
    IssueOffer,
    TagCustomer,
)
from service.core.evaluation import BudgetUse


@dataclass(slots=True)
class MemberSeed:
    """A member's state before the first replayed event (from the database), so both
    versions start from what the members really had."""

    record: MemberRecord
    orders: list[OrderRecord] = field(default_factory=list)
    order_awards: dict[str, list[OrderAward]] = field(default_factory=dict)
    earned: list[tuple[datetime, int]] = field(default_factory=list)
    firings: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    referrals_rewarded: list[datetime] = field(default_factory=list)
    held: list[HeldRefund] = field(default_factory=list)  # refunds still waiting for a purchase
    referrer_awards: dict[str, list[ReferrerAward]] = field(default_factory=dict)  # by order


@dataclass(slots=True)
class MemberOrders:
    """A member's orders, with the sums the tier and RFM windows read kept up to date, so a
    window that holds every order (the usual case in a replay) costs nothing to sum."""

    by_id: dict[str, OrderRecord] = field(default_factory=dict)
    spend: Decimal = Decimal(0)  # net of refunds, over the orders not wholly refunded
    count: int = 0
    oldest: datetime | None = None  # bounds on the orders' times (never narrowed)
    newest: datetime | None = None

    def include(self, order: OrderRecord) -> None:
        self.by_id[order.order_id] = order
        if order.refunded_amount < order.amount:
            self.spend += order.amount - order.refunded_amount
            self.count += 1
        at = order.occurred_at
        self.oldest = at if self.oldest is None or at < self.oldest else self.oldest
        self.newest = at if self.newest is None or at > self.newest else self.newest

    def exclude(self, order: OrderRecord) -> None:
        """Take an order out of the sums before changing it; include() it again after."""
        if order.refunded_amount < order.amount:
            self.spend -= order.amount - order.refunded_amount
            self.count -= 1

    def between(self, since: datetime, until: datetime) -> tuple[Decimal, int]:
        """As the store answers it: orders in (since, until], net of refunds."""
        if self.oldest is None or self.newest is None:
            return Decimal(0), 0
        if self.oldest > since and self.newest <= until:
            return self.spend, self.count
        return _orders_between(self.by_id.values(), since, until)


@dataclass(slots=True)
class CampaignTally:
    points: int = 0  # awarded, before refunds
    awards: int = 0
    offers: int = 0
    messages: int = 0  # queued in the outbox: its rules' messages, and notices of its offers
    tier_grants: int = 0
    tags: int = 0
    members: dict[str, int] = field(default_factory=dict)  # member -> points from it


@dataclass(slots=True)
class CustomerOutcome:
    points: int = 0  # awarded to this member
    offers: int = 0
    messages: int = 0
    tier_changes: int = 0
    balance: int = 0  # available + pending at the end
    debt: int = 0
    tier: str | None = None


@dataclass(slots=True)
class ReplayResult:
    version: str
    events: int = 0
    duplicates: int = 0
    points_issued: int = 0
    points_clawed: int = 0
    offers: int = 0
    messages: int = 0
    tier_changes: int = 0
    campaigns: dict[str, CampaignTally] = field(default_factory=dict)
    customers: dict[str, CustomerOutcome] = field(default_factory=dict)
    budgets: dict[str, BudgetUse] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)  # members per tier at the end

    def count(self, customer_id: str, effects: Iterable[Effect]) -> None:
        """What one event's effects add: ``customer_id`` is the event's member."""
        self.events += 1
        tally = self.campaigns
        outcomes = self.customers
        own = outcomes.get(customer_id)
        if own is None:
            own = outcomes[customer_id] = CustomerOutcome()
        for effect in effects:
            if isinstance(effect, AwardPoints):
                who = effect.customer_id or customer_id
                campaign = _tally_of(tally, effect.campaign)
                campaign.points += effect.points
                campaign.awards += 1
                campaign.members[who] = campaign.members.get(who, 0) + effect.points
                self.points_issued += effect.points
                receiver = own if who == customer_id else outcomes.get(who)
                if receiver is None:
                    receiver = outcomes[who] = CustomerOutcome()
                receiver.points += effect.points
            elif isinstance(effect, IssueOffer):
                campaign = _tally_of(tally, effect.campaign)
                campaign.offers += 1
                campaign.members.setdefault(customer_id, 0)
                self.offers += 1
                own.offers += 1
            elif isinstance(effect, ChangeTier):
                self.tier_changes += 1
                own.tier_changes += 1
                if effect.campaign is not None:
                    campaign = _tally_of(tally, effect.campaign)
                    campaign.tier_grants += 1
                    campaign.members.setdefault(customer_id, 0)
            elif isinstance(effect, TagCustomer):
                campaign = _tally_of(tally, effect.campaign)
                campaign.tags += 1
                campaign.members.setdefault(customer_id, 0)
            elif isinstance(effect, ClawBackPoints):
                self.points_clawed += effect.points

    def count_messages(self, customer_id: str, campaigns: Iterable[str | None]) -> None:
        """Messages queued for the event's member, each named by the campaign behind it."""
        outcome = self.customers[customer_id]
        for campaign in campaigns:
            self.messages += 1
            outcome.messages += 1
            if campaign is not None:
                tally = _tally_of(self.campaigns, campaign)
                tally.messages += 1
                tally.members.setdefault(customer_id, 0)


def _tally_of(tally: dict[str, CampaignTally], campaign: str) -> CampaignTally:
    found = tally.get(campaign)
    if found is None:
        found = tally[campaign] = CampaignTally()
    return found


def _orders_between(
    orders: Iterable[OrderRecord], since: datetime, until: datetime
) -> tuple[Decimal, int]:
    """As the store answers it: orders in (since, until] not wholly refunded, net of refunds."""
    spend, count = Decimal(0), 0
    for order in orders:
        if since < order.occurred_at <= until and order.refunded_amount < order.amount:
            spend += order.amount - order.refunded_amount
            count += 1
    return spend, count
