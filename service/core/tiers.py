"""Tier arithmetic: which level a qualifying value reaches, and how far the next one is."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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
    return (
        format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    )
