"""The field schema and the facts a condition can read.

Every value is coerced to its field's type here, before any engine sees it: the
durable-rules engine compares a string and a number as strings (``"99" > 100``), so
no string may ever stand where a number belongs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from service.core.customer import CustomerSnapshot
from service.core.events import Event, LineItem

STRING, NUMBER, BOOLEAN, STRINGS, ITEMS = "string", "number", "boolean", "strings", "items"

ITEM_FIELDS: Mapping[str, str] = {
    "sku": STRING,
    "category": STRING,
    "quantity": NUMBER,
    "price": NUMBER,
    "amount": NUMBER,  # price times quantity
    "discounted": BOOLEAN,  # the line was already discounted by an offer
    "paid_with_points": BOOLEAN,
}

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

FIELD_TYPES: Mapping[str, str] = {
    # the event
    "type": STRING,
    "amount": NUMBER,
    "channel": STRING,
    "store_id": STRING,
    "order_id": STRING,
    "referrer_id": STRING,
    "code": STRING,
    "kind": STRING,
    "items": ITEMS,
    "item_count": NUMBER,
    # the member, as gathered before the event
    "customer.tier": STRING,
    "customer.balance": NUMBER,
    "customer.points_pending": NUMBER,
    "customer.lifetime_spend": NUMBER,
    "customer.order_count": NUMBER,
    "customer.days_since_last_purchase": NUMBER,
    "customer.days_since_enrolment": NUMBER,
    "customer.segment": STRING,
    "customer.tags": STRINGS,
    "customer.birthday": STRING,  # YYYY-MM-DD; ISO dates order correctly as strings
    "customer.is_new": BOOLEAN,
    "customer.referred": BOOLEAN,
    "customer.rfm.recency": NUMBER,
    "customer.rfm.frequency": NUMBER,
    "customer.rfm.monetary": NUMBER,
    # the moment of the event in the member's time zone
    "local.weekday": STRING,
    "local.hour": NUMBER,
    "local.minute": NUMBER,
    "local.date": STRING,
    "local.month": NUMBER,
    "local.day": NUMBER,
    "local.is_birthday": BOOLEAN,
    "local.is_birthday_month": BOOLEAN,
}

# Namespaces whose keys the sender chooses; a field's type comes from the rule literal.
DYNAMIC_PREFIXES = ("attributes.",)


@dataclass(frozen=True, slots=True)
class FieldSchema:
    """Known fields plus the types the loaded rules gave to dynamic ones."""

    dynamic: Mapping[str, str]

    def type_of(self, path: str) -> str | None:
        return FIELD_TYPES.get(path) or self.dynamic.get(path)


def local_time(occurred_at: datetime, timezone: str) -> datetime:
    return occurred_at.astimezone(ZoneInfo(timezone))


def build_facts(
    event: Event,
    customer: CustomerSnapshot,
    default_timezone: str,
    dynamic: Mapping[str, str] | None = None,
    rfm: tuple[int, int, int] | None = None,
    *,
    local: bool = True,
) -> dict[str, object]:
    """Flatten an event and a member snapshot into typed facts; absent values are left out.

    ``local=False`` skips the member's local clock when no rule reads it.
    """
    facts: dict[str, object] = {"type": event.type}
    for name in ("channel", "store_id", "order_id", "referrer_id", "code", "kind"):
        value = getattr(event, name)
        if value is not None:
            facts[name] = value
    if event.amount is not None:
        facts["amount"] = event.amount
    if event.items:
        facts["items"] = tuple(item_facts(item) for item in event.items)
        facts["item_count"] = Decimal(sum(int(i.quantity) for i in event.items))
    for key, kind in (dynamic or {}).items():
        raw = event.attributes.get(key.removeprefix("attributes."))
        coerced = _coerce(raw, kind)
        if coerced is not None:
            facts[key] = coerced

    tier = customer.tier
    if tier is not None:
        facts["customer.tier"] = tier
    facts["customer.balance"] = Decimal(customer.points_available)
    facts["customer.points_pending"] = Decimal(customer.points_pending)
    facts["customer.lifetime_spend"] = customer.lifetime_spend
    facts["customer.order_count"] = Decimal(customer.order_count)
    facts["customer.tags"] = tuple(sorted(customer.tags))
    facts["customer.is_new"] = customer.is_new
    facts["customer.referred"] = customer.referred_by is not None
    if rfm is not None:
        for name, score in zip(("recency", "frequency", "monetary"), rfm, strict=True):
            facts[f"customer.rfm.{name}"] = Decimal(score)
    if customer.segment is not None:
        facts["customer.segment"] = customer.segment
    if customer.last_purchase_at is not None:
        facts["customer.days_since_last_purchase"] = _days_between(
            customer.last_purchase_at, event.occurred_at
        )
    if customer.enrolled_at is not None:
        facts["customer.days_since_enrolment"] = _days_between(
            customer.enrolled_at, event.occurred_at
        )

    if not local:
        return facts
    moment = local_time(event.occurred_at, customer.timezone or default_timezone)
    _local_facts(facts, moment, customer)
    return facts


def _local_facts(facts: dict[str, object], local: datetime, customer: CustomerSnapshot) -> None:
    facts["local.weekday"] = WEEKDAYS[local.weekday()]
    facts["local.hour"] = Decimal(local.hour)
    facts["local.minute"] = Decimal(local.minute)
    facts["local.date"] = local.date().isoformat()
    facts["local.month"] = Decimal(local.month)
    facts["local.day"] = Decimal(local.day)
    if customer.birthday is not None:
        facts["customer.birthday"] = customer.birthday.isoformat()
        facts["local.is_birthday_month"] = customer.birthday.month == local.month
        facts["local.is_birthday"] = _is_birthday(customer.birthday, local.date())


def item_facts(item: LineItem) -> Mapping[str, object]:
    facts: dict[str, object] = {
        "sku": item.sku,
        "quantity": item.quantity,
        "price": item.price,
        "amount": item.price * item.quantity,
        "discounted": item.discounted,
        "paid_with_points": item.paid_with_points,
    }
    if item.category is not None:
        facts["category"] = item.category
    return facts


def _days_between(earlier: datetime, later: datetime) -> Decimal:
    return Decimal(max(0, (later - earlier) // timedelta(days=1)))


def _is_birthday(birthday: date, today: date) -> bool:
    if (birthday.month, birthday.day) == (2, 29):
        # Members born on 29 February celebrate on the 28th in common years.
        leap = today.year % 4 == 0 and (today.year % 100 != 0 or today.year % 400 == 0)
        return (today.month, today.day) == ((2, 29) if leap else (2, 28))
    return (today.month, today.day) == (birthday.month, birthday.day)


def _coerce(raw: object, kind: str) -> object:
    """Coerce a sender-chosen attribute to the type the rules gave it; None if it won't go."""
    if raw is None:
        return None
    if kind == BOOLEAN:
        return raw if isinstance(raw, bool) else None
    if kind == NUMBER:
        if isinstance(raw, bool):
            return None
        if isinstance(raw, Decimal):
            return raw
        try:
            number = Decimal(str(raw)) if isinstance(raw, (int, str)) else None
        except ArithmeticError:
            return None
        return number if number is not None and number.is_finite() else None
    if kind == STRING:
        return raw if isinstance(raw, str) else None
    return None
