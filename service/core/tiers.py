"""Tier arithmetic: which level a qualifying value reaches, and how far the next one is."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from service.core.customer import CustomerSnapshot
from service.core.effects import AwardPoints, ChangeTier, Effect
from service.core.events import Event
from service.core.programme import TierLevel, TierPolicy


def level_for(policy: TierPolicy, value: Decimal) -> TierLevel | None:
    reached = [level for level in policy.levels if value >= level.min]
    return reached[-1] if reached else None


def progress(policy: TierPolicy, tier: str | None, value: Decimal) -> dict[str, Any]:
    """What GET /v1/customers/{id} shows as tier_progress."""
    current = policy.level(tier)
    higher = [lvl for lvl in policy.levels if current is None or lvl.min > current.min]
    following = higher[0] if higher else None
    return {
        "metric": policy.metric,
        "window_days": policy.window.days,
        "value": _plain(value),
        "next_tier": following.name if following else None,
        "needed": _plain(max(following.min - value, Decimal(0))) if following else None,
    }


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def rank(policy: TierPolicy, name: str | None) -> int:
    """Position of a level, lowest 0; an unknown or absent tier ranks below all."""
    names = [level.name for level in policy.levels]
    return names.index(name) if name in names else -1


def contribution(
    policy: TierPolicy, event_type: str, amount: Decimal | None, points: int
) -> Decimal:
    """What one event adds to the tier metric."""
    if policy.metric == "spend":
        return amount if event_type == "purchase" and amount is not None else Decimal(0)
    if policy.metric == "orders":
        return Decimal(1) if event_type == "purchase" else Decimal(0)
    return Decimal(points)


def qualified_change(
    policy: TierPolicy,
    tier_now: str | None,
    customer: CustomerSnapshot,
    event: Event,
    effects: Sequence[Effect],
) -> ChangeTier | None:
    """Upgrade at once when the event takes the member past a higher level's minimum.

    Never a downgrade: those wait for a review (service.core.tiers.review_change).
    """
    if not policy.levels:
        return None
    points = sum(e.points for e in effects if isinstance(e, AwardPoints) and e.customer_id is None)
    value = customer.tier_value + contribution(policy, event.type, event.amount, points)
    reached = level_for(policy, value)
    if reached is None or rank(policy, reached.name) <= rank(policy, tier_now):
        return None
    return ChangeTier(tier_now, reached.name, "qualified")


def review_change(
    policy: TierPolicy,
    tier: str | None,
    value: Decimal,
    below_since: datetime | None,
    fast_track_until: datetime | None,
    now: datetime,
) -> tuple[ChangeTier | None, datetime | None]:
    """A review: lower a member whose metric fell below their level for the whole grace.

    Returns the change (if any) and the new ``below_since`` to remember.
    """
    qualified = level_for(policy, value)
    target = qualified.name if qualified else (policy.levels[0].name if policy.levels else None)
    if target is None or rank(policy, target) >= rank(policy, tier):
        return None, None
    if fast_track_until is not None and now < fast_track_until:
        return None, below_since
    since = below_since or now
    if now - since < policy.grace:
        return None, since
    return ChangeTier(tier, target, "review"), None


def refunded_value(
    policy: TierPolicy, refunded: Decimal, order_closed: bool, in_window: bool
) -> Decimal:
    """What a refund takes off the tier metric: the amount it refunded (spend), the order
    once wholly refunded (orders). Points earned stay counted (a points metric counts what
    was earned), and an order outside the window counts for nothing either way."""
    if not in_window:
        return Decimal(0)
    if policy.metric == "spend":
        return refunded
    if policy.metric == "orders":
        return Decimal(1) if order_closed else Decimal(0)
    return Decimal(0)


def refund_change(
    policy: TierPolicy,
    tier: str | None,
    upgraded_from: str | None,
    upgraded_to: str,
    value_left: Decimal,
) -> ChangeTier | None:
    """Undo the upgrade a refunded purchase made (the member still stands on
    ``upgraded_to``, reached from ``upgraded_from``), when the value left no longer
    reaches that level: back to the higher of the level before the purchase and the
    level the value left reaches. An upgrade other events earned is not this one's to
    undo, so the caller passes only the member's own upgrade by that purchase."""
    reached = policy.level(upgraded_to)
    if reached is None or tier != upgraded_to or value_left >= reached.min:
        return None
    floors = [lvl for lvl in (level_for(policy, value_left), policy.level(upgraded_from)) if lvl]
    if not floors:
        return None
    target = max(floors, key=lambda lvl: rank(policy, lvl.name))
    if rank(policy, target.name) >= rank(policy, tier):
        return None
    return ChangeTier(tier, target.name, "refund")
