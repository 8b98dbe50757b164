"""The member as evaluation sees them: a frozen snapshot, gathered before deciding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class CustomerSnapshot:
    customer_id: str
    tier: str | None = None  # None: the programme's lowest level
    points_available: int = 0
    points_pending: int = 0
    points_debt: int = 0
    lifetime_spend: Decimal = Decimal(0)
    order_count: int = 0
    last_purchase_at: datetime | None = None
    enrolled_at: datetime | None = None
    birthday: date | None = None
    timezone: str | None = None
    tags: frozenset[str] = frozenset()
    segment: str | None = None
    is_new: bool = True
    tier_until: datetime | None = None  # a fast-track tier held until then
    # The tier metric (spend, points or orders) over the tier window before this event.
    tier_value: Decimal = Decimal(0)
    # Orders and spend over the RFM window before this event.
    recent_orders: int = 0
    recent_spend: Decimal = Decimal(0)
    referred_by: str | None = None
    # When each limited rule last fired for this member: rule key -> times, oldest first.
    rule_firings: Mapping[str, tuple[datetime, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def new(cls, customer_id: str) -> CustomerSnapshot:
        return cls(customer_id=customer_id)
