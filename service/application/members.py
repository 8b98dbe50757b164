"""A member record as evaluation sees it, and what an event changes about the member."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from service.application.ports import MemberRecord
from service.core.customer import CustomerSnapshot
from service.core.effects import Effect, TagCustomer
from service.core.events import Event


def snapshot_of(
    member: MemberRecord, firings: Mapping[str, tuple[datetime, ...]]
) -> CustomerSnapshot:
    return CustomerSnapshot(
        customer_id=member.customer_id,
        tier=member.tier,
        points_available=member.points_available,
        points_pending=member.points_pending,
        points_debt=member.points_debt,
        lifetime_spend=member.lifetime_spend,
        order_count=member.order_count,
        last_purchase_at=member.last_purchase_at,
        enrolled_at=member.enrolled_at,
        birthday=member.birthday,
        timezone=member.timezone,
        tags=frozenset(member.tags),
        segment=member.segment,
        is_new=member.events_applied == 0,
        rule_firings=MappingProxyType(dict(firings)),
    )


def update_member(member: MemberRecord, event: Event, effects: tuple[Effect, ...]) -> None:
    """What the event itself says about the member (spend, orders, profile, tags)."""
    member.events_applied += 1
    if event.type == "purchase" and event.amount is not None:
        member.lifetime_spend += event.amount
        member.order_count += 1
        if member.last_purchase_at is None or event.occurred_at > member.last_purchase_at:
            member.last_purchase_at = event.occurred_at
    elif event.type == "refund" and event.amount is not None:
        member.lifetime_spend = max(member.lifetime_spend - event.amount, type(event.amount)(0))
    if event.type == "enrolment" and member.enrolled_at is None:
        member.enrolled_at = event.occurred_at
    if event.profile is not None:
        profile = event.profile
        for name in ("birthday", "timezone", "email", "phone"):
            value = getattr(profile, name)
            if value is not None:
                setattr(member, name, value)
        if profile.tags is not None:
            member.tags = sorted(set(profile.tags))
    tags = set(member.tags)
    for effect in effects:
        if isinstance(effect, TagCustomer):
            tags |= set(effect.add)
            tags -= set(effect.remove)
    member.tags = sorted(tags)
