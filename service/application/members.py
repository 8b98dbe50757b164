"""A member record as evaluation sees it, and what an event changes about the member."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from service.application.ports import MemberRecord
from service.core.customer import CustomerSnapshot
from service.core.effects import ChangeTier, Effect, TagCustomer
from service.core.events import Event
from service.core.programme import RfmPolicy
from service.core.segments import rfm_scores, segment_for


def update_member(
    member: MemberRecord,
    event: Event,
    effects: tuple[Effect, ...],
    refunded: Decimal = Decimal(0),
) -> None:
    """What the event itself says about the member (spend, orders, profile, tags).

    ``refunded`` is what a refund took off its order: never more than was left of it,
    nothing for an order never seen, so the spend kept here agrees with the orders.
    """
    member.events_applied += 1
    if event.type == "purchase" and event.amount is not None:
        member.lifetime_spend += event.amount
        member.order_count += 1
        if member.last_purchase_at is None or event.occurred_at > member.last_purchase_at:
            member.last_purchase_at = event.occurred_at
    elif event.type == "refund":
        member.lifetime_spend = max(member.lifetime_spend - refunded, Decimal(0))
    if event.type == "enrolment" and member.enrolled_at is None:
        member.enrolled_at = event.occurred_at
    if event.profile is not None:
        profile = event.profile
        for name in ("birthday", "timezone", "email", "phone"):
            value = getattr(profile, name)
            if value is not None:
                setattr(member, name, value)
        if profile.tags is not None:
            # Added to what rules have tagged the member with, never replacing it.
            member.tags = sorted(set(member.tags) | set(profile.tags))
    tags = set(member.tags)
    for effect in effects:
        if isinstance(effect, TagCustomer):
            tags |= set(effect.add)
            tags -= set(effect.remove)
        elif isinstance(effect, ChangeTier):
            move_tier(member, effect, event.occurred_at)
    member.tags = sorted(tags)


def move_tier(member: MemberRecord, change: ChangeTier, at: datetime) -> None:
    member.tier = change.to_tier
    member.tier_since = at
    member.tier_until = change.until
    member.tier_below_since = None


def segment_after(policy: RfmPolicy, before: CustomerSnapshot, event: Event) -> str | None:
    """The member's named RFM segment once this event counts."""
    after = before
    if event.type == "purchase" and event.amount is not None:
        after = replace(
            before,
            recent_orders=before.recent_orders + 1,
            recent_spend=before.recent_spend + event.amount,
            last_purchase_at=max(filter(None, (before.last_purchase_at, event.occurred_at))),
        )
    return segment_for(policy, rfm_scores(policy, after, event.occurred_at))
