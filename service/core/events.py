"""Events as the core sees them: validated, typed, immutable.

The HTTP edge turns JSON into these; rule-file tests and replays build them too.
Money is Decimal and times are aware datetimes, always.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType

EVENT_TYPES = ("purchase", "refund", "referral", "activity", "enrolment", "profile")
# Made by the scheduler, never accepted over HTTP: kind is birthday, anniversary or inactive.
INTERNAL_EVENT_TYPES = ("schedule",)

AttributeValue = str | Decimal | bool


@dataclass(frozen=True, slots=True)
class LineItem:
    sku: str
    category: str | None = None
    quantity: Decimal = Decimal(1)
    price: Decimal = Decimal(0)
    discounted: bool = False
    paid_with_points: bool = False


@dataclass(frozen=True, slots=True)
class Profile:
    birthday: date | None = None
    timezone: str | None = None
    email: str | None = None
    phone: str | None = None
    tags: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    type: str
    customer_id: str
    occurred_at: datetime
    order_id: str | None = None
    amount: Decimal | None = None
    channel: str | None = None
    store_id: str | None = None
    items: tuple[LineItem, ...] = ()
    referrer_id: str | None = None
    code: str | None = None
    kind: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=lambda: MappingProxyType({}))
    profile: Profile | None = None

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must carry a UTC offset")
        if self.type not in EVENT_TYPES and self.type not in INTERNAL_EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
