"""Synthetic campaigns and traffic for the benchmark.

``synthetic_rules(n)`` writes ``n`` campaign files in the shape marketers write them
(YAML text, one campaign per file, each with its own ``tests:``) beside the real
``rules/program.yaml``, so the cost of growing a programme from 5 to 1,000 campaigns is
measured on rules that look like real ones: purchase conditions on channel, amount
thresholds, tiers, weekdays and hours in the member's zone, basket categories and SKUs,
store lists, segments, tags, birthdays, lapsed members; activity and referral rules.

``sample_traffic(n)`` makes the members and events the in-process benchmark evaluates,
drawn from the same pools (categories, stores, SKUs, channels) as the HTTP driver
``bench/post_events.lua``. Everything is seeded, so two runs measure the same work.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from service.core.customer import CustomerSnapshot
from service.core.events import Event, LineItem

ROOT = Path(__file__).resolve().parent.parent
PROGRAMME = ROOT / "rules" / "program.yaml"

CATEGORIES = (
    "coffee",
    "tea",
    "bakery",
    "grocery",
    "dairy",
    "produce",
    "electronics",
    "apparel",
    "beauty",
    "books",
    "toys",
    "home",
    "sports",
    "pet",
    "baby",
    "wine",
)
CHANNELS = ("app", "store", "web")
STORES = tuple(f"s{n:03d}" for n in range(1, 121))
SKUS_PER_CATEGORY = 10
TIERS = ("bronze", "silver", "gold", "platinum")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEGMENTS = ("champions", "loyal", "potential", "at_risk", "hibernating", "new")
TAGS = ("price-sensitive", "quality-seeking", "social-sharer", "family", "student", "gourmet")
ACTIVITIES = ("review", "check_in", "survey", "app_login", "social_share")
SHANGHAI = timezone(timedelta(hours=8))
MONDAY = date(2026, 12, 7)  # a Monday in the month most synthetic campaigns run


def sku(category: str, number: int) -> str:
    return f"{category}-{number:02d}"


@dataclass(frozen=True, slots=True)
class _Spec:
    """One rule of a campaign, and a case (member and event) that the rule must match."""

    when: list[str]
    then: list[str]
    case_event: dict[str, str]
    case_customer: dict[str, str]
    limit: str | None = None
    description: str = ""


def _flow(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(values) + "]"


def _at(weekday: int = 2, hour: int = 12) -> str:
    """A time in December 2026 on the given weekday (0 = Monday), in Shanghai."""
    day = MONDAY + timedelta(days=weekday)
    return f"{day.isoformat()}T{hour:02d}:15:00+08:00"


def _items(category: str, amount: int, number: int = 1, quantity: int = 1) -> str:
    price = Decimal(amount) / quantity
    item = (
        f"sku: {sku(category, number)}, category: {category}, quantity: {quantity}, price: {price}"
    )
    return f"[{{{item}}}]"


def _category_bonus(rng: random.Random) -> _Spec:
    category = rng.choice(CATEGORIES)
    channels = rng.sample(CHANNELS, rng.randint(1, 2))
    threshold = rng.choice((20, 30, 50, 80, 100))
    points = rng.choice((2, 3, 5))
    amount = threshold + rng.randint(10, 90)
    return _Spec(
        when=[
            "type: purchase",
            f"items: {{any: {{category: {category}}}}}",
            f"amount: {{gte: {threshold}}}",
            f"channel: {{in: {_flow(channels)}}}",
        ],
        then=[f"award_points: {{points: {points}, per: 10, of: amount, max: 500, round: floor}}"],
        case_event={
            "type": "purchase",
            "amount": str(amount),
            "channel": channels[0],
            "occurred_at": _at(),
            "items": _items(category, amount),
        },
        case_customer={},
        description=f"{points} points per 10 CNY on baskets with {category}",
    )


def _tier_weekday(rng: random.Random) -> _Spec:
    tiers = sorted(rng.sample(TIERS[1:], rng.randint(1, 3)), key=TIERS.index)
    days = sorted(rng.sample(range(7), rng.randint(1, 3)))
    threshold = rng.choice((30, 50, 100, 200))
    multiplier = rng.choice((2, 3))
    return _Spec(
        when=[
            "type: purchase",
            f"customer.tier: {{in: {_flow(tiers)}}}",
            f"local.weekday: {{in: {_flow([WEEKDAYS[d] for d in days])}}}",
            f"amount: {{gte: {threshold}}}",
        ],
        then=[
            f"award_points: {{per: 1, of: amount, multiplier: {multiplier}, round: floor, "
            "tier_multiplier: false}",
        ],
        limit="{per_customer: 1, per: 1d}",
        case_event={
            "type": "purchase",
            "amount": str(threshold + 5),
            "channel": "app",
            "occurred_at": _at(days[0], 18),
        },
        case_customer={"tier": tiers[-1]},
        description=f"{multiplier}x points on chosen days for {', '.join(tiers)}",
    )


def _store_happy_hour(rng: random.Random) -> _Spec:
    stores = sorted(rng.sample(STORES, rng.randint(3, 8)))
    start = rng.randint(7, 17)
    points = rng.choice((10, 20, 50))
    return _Spec(
        when=[
            "type: purchase",
            f"store_id: {{in: {_flow(stores)}}}",
            f"local.hour: {{gte: {start}, lt: {start + 3}}}",
            "channel: store",
        ],
        then=[f"award_points: {{points: {points}, tier_multiplier: false}}"],
        limit="{per_customer: 2, per: 7d}",
        case_event={
            "type": "purchase",
            "amount": "42.50",
            "channel": "store",
            "store_id": stores[0],
            "occurred_at": _at(3, start),
        },
        case_customer={},
        description=f"{points} points for store visits between {start}:00 and {start + 3}:00",
    )


def _activity(rng: random.Random) -> _Spec:
    kind = rng.choice(ACTIVITIES)
    points = rng.choice((5, 10, 20, 30))
    when = ["type: activity", f"kind: {kind}"]
    event = {"type": "activity", "kind": kind, "occurred_at": _at(4, 20)}
    if kind == "review":
        when.append("attributes.rating: {gte: 4}")
        event["attributes"] = "{rating: 5}"
    return _Spec(
        when=when,
        then=[f"award_points: {{points: {points}, tier_multiplier: false}}"],
        limit="{per_customer: 1, per: 1d}",
        case_event=event,
        case_customer={},
        description=f"{points} points for each {kind.replace('_', ' ')}",
    )


def _big_basket(rng: random.Random) -> _Spec:
    count = rng.randint(3, 6)
    points = rng.choice((25, 50, 100))
    return _Spec(
        when=[
            "type: purchase",
            f"item_count: {{gte: {count}}}",
            "any_of:",
            "  - {channel: app}",
            "  - {customer.tier: {in: [gold, platinum]}}",
        ],
        then=[f"award_points: {{points: {points}}}", "tag: big_basket"],
        case_event={
            "type": "purchase",
            "amount": "180",
            "channel": "app",
            "occurred_at": _at(5, 11),
            "items": _items(rng.choice(CATEGORIES), 180, quantity=count),
        },
        case_customer={"tier": "bronze"},
        description=f"{points} points and a tag for baskets of {count} or more items",
    )


def _win_back(rng: random.Random) -> _Spec:
    days = rng.choice((30, 60, 90, 180))
    threshold = rng.choice((20, 50, 100))
    points = rng.choice((100, 200, 300))
    return _Spec(
        when=[
            "type: purchase",
            f"customer.days_since_last_purchase: {{gte: {days}}}",
            f"amount: {{gte: {threshold}}}",
        ],
        then=[
            f"award_points: {{points: {points}, tier_multiplier: false}}",
            "tag: {remove: [lapsing]}",
        ],
        limit="{per_customer: 1, per: 90d}",
        case_event={"type": "purchase", "amount": str(threshold), "occurred_at": _at(1, 9)},
        case_customer={"days_since_last_purchase": str(days + 5)},
        description=f"{points} points to welcome back members away for {days} days",
    )


def _segment_tag(rng: random.Random) -> _Spec:
    segments = sorted(rng.sample(SEGMENTS, rng.randint(1, 3)))
    tag = rng.choice(TAGS)
    return _Spec(
        when=[
            "type: purchase",
            f"customer.segment: {{in: {_flow(segments)}}}",
            f"customer.tags: {{any: {tag}}}",
            "channel: {ne: web}",
        ],
        then=["award_points: {points: 3, per: 20, of: amount, round: nearest}"],
        case_event={"type": "purchase", "amount": "100", "channel": "store", "occurred_at": _at(0)},
        case_customer={"segment": segments[0], "tags": f"[{tag}]"},
        description=f"extra points for {tag} members in {', '.join(segments)}",
    )


def _birthday(rng: random.Random) -> _Spec:
    threshold = rng.choice((0, 10, 50))
    return _Spec(
        when=["type: purchase", "local.is_birthday_month: true", f"amount: {{gt: {threshold}}}"],
        then=["award_points: {per: 1, of: amount, multiplier: 2, max: 1000, round: floor}"],
        limit="{per_customer: 1, per: 30d}",
        case_event={"type": "purchase", "amount": str(threshold + 60), "occurred_at": _at(2)},
        case_customer={"birthday": "1990-12-20"},
        description="double points on a purchase in the birthday month",
    )


def _sku_promo(rng: random.Random) -> _Spec:
    category = rng.choice(CATEGORIES)
    numbers = sorted(rng.sample(range(1, SKUS_PER_CATEGORY + 1), rng.randint(2, 5)))
    skus = [sku(category, n) for n in numbers]
    points = rng.choice((30, 60, 90))
    return _Spec(
        when=[
            "type: purchase",
            f"items: {{any: {{sku: {{in: {_flow(skus)}}}, quantity: {{gte: 2}}}}}}",
        ],
        then=[f"award_points: {{points: {points}}}"],
        case_event={
            "type": "purchase",
            "amount": "64",
            "channel": "web",
            "occurred_at": _at(6, 21),
            "items": _items(category, 64, numbers[0], quantity=2),
        },
        case_customer={},
        description=f"{points} points for two or more of selected {category} products",
    )


def _vip(rng: random.Random) -> _Spec:
    spend = rng.choice((1000, 5000, 20000))
    return _Spec(
        when=[
            "type: purchase",
            f"customer.lifetime_spend: {{gte: {spend}}}",
            "not: {channel: web}",
            "customer.order_count: {gte: 3}",
        ],
        then=["award_points: {points: 1, per: 2, of: amount, round: floor}", "tag: vip"],
        case_event={"type": "purchase", "amount": "90", "channel": "store", "occurred_at": _at(3)},
        case_customer={"lifetime_spend": str(spend), "order_count": "4"},
        description=f"extra earn for members who spent {spend} or more",
    )


def _referral(rng: random.Random) -> _Spec:
    points = rng.choice((200, 300, 500))
    return _Spec(
        when=["type: referral"],
        then=[f"award_points: {{points: {points}, tier_multiplier: false}}"],
        limit="{per_customer: 1}",
        case_event={"type": "referral", "occurred_at": _at(2, 10)},
        case_customer={},
        description=f"{points} points for joining through a friend",
    )


# Weighted as a programme grows: most campaigns are purchase promotions.
TEMPLATES: tuple[tuple[Callable[[random.Random], _Spec], int], ...] = (
    (_category_bonus, 5),
    (_tier_weekday, 3),
    (_store_happy_hour, 3),
    (_activity, 2),
    (_big_basket, 1),
    (_win_back, 1),
    (_segment_tag, 2),
    (_birthday, 1),
    (_sku_promo, 2),
    (_vip, 1),
    (_referral, 1),
)


def campaign_text(index: int, rng: random.Random) -> tuple[str, str]:
    """One synthetic campaign file: (campaign id, YAML text)."""
    make = rng.choices([t for t, _ in TEMPLATES], [w for _, w in TEMPLATES])[0]
    campaign_id = f"syn-{index:04d}-{make.__name__.strip('_').replace('_', '-')}"
    rules = [make(rng)]
    if rng.random() < 0.2:
        # Some campaigns carry a second rule, for another event type, so that each rule's
        # case matches its own rule only.
        other = (
            _category_bonus
            if make in (_activity, _referral)
            else rng.choice((_activity, _referral))
        )
        rules.append(other(rng))
    window = rng.random()
    expired = window < 0.1
    lines = [
        f"campaign: {campaign_id}",
        f"description: {rules[0].description}",
        f"priority: {rng.randint(0, 20)}",
    ]
    if expired:
        lines.append("active: {from: 2026-06-01, until: 2026-09-30}")
    elif window < 0.8:
        lines.append("active: {from: 2026-11-01, until: 2027-01-31}")
    if rng.random() < 0.2:
        lines.append(f"budget: {{points: {rng.choice((100_000, 1_000_000, 10_000_000))}}}")
    lines.append("rules:")
    for number, spec in enumerate(rules, 1):
        lines.append(f"  - name: rule-{number}")
        lines.append("    when:")
        lines += [f"      {line}" for line in spec.when]
        lines.append("    then:")
        lines += [f"      - {line}" for line in spec.then]
        if spec.limit:
            lines.append(f"    limit: {spec.limit}")
    lines.append("tests:")
    for number, spec in enumerate(rules, 1):
        # A fresh member and an event made to satisfy the rule: it fires unless the
        # campaign is over.
        lines.append(f"  - name: a matching event fires rule-{number}")
        if spec.case_customer:
            lines.append(f"    customer: {_mapping(spec.case_customer)}")
        lines.append(f"    event: {_mapping(spec.case_event)}")
        lines.append(
            "    expect: {points: 0}" if expired else f"    expect: {{rules: [rule-{number}]}}"
        )
    return campaign_id, "\n".join(lines) + "\n"


def _mapping(values: dict[str, str]) -> str:
    return "{" + ", ".join(f"{key}: {value}" for key, value in values.items()) + "}"


def synthetic_campaigns(count: int, seed: int = 1) -> dict[str, str]:
    """``count`` campaign files as {"campaigns/<id>.yaml": text}."""
    rng = random.Random(seed)
    files = {}
    for index in range(count):
        campaign_id, text = campaign_text(index, rng)
        files[f"campaigns/{campaign_id}.yaml"] = text
    return files


def synthetic_rules(count: int, seed: int = 1) -> dict[str, str]:
    """The real programme file plus ``count`` synthetic campaigns, ready for load_rules."""
    return {
        "program.yaml": PROGRAMME.read_text(encoding="utf-8"),
        **synthetic_campaigns(count, seed),
    }


# -- traffic -------------------------------------------------------------------------------


def sample_member(rng: random.Random, number: int) -> CustomerSnapshot:
    tier = rng.choices(TIERS, (55, 25, 15, 5))[0]
    spend = {"bronze": 400, "silver": 2500, "gold": 9000, "platinum": 30000}[tier]
    orders = rng.randint(0, 60)
    now = datetime(2026, 12, 1, tzinfo=SHANGHAI)
    return CustomerSnapshot(
        customer_id=f"m{number:05d}",
        tier=tier,
        points_available=rng.randint(0, 20_000),
        lifetime_spend=Decimal(rng.randint(spend // 2, spend * 2)),
        order_count=orders,
        last_purchase_at=now - timedelta(days=rng.randint(0, 240)) if orders else None,
        enrolled_at=now - timedelta(days=rng.randint(10, 1500)),
        birthday=date(rng.randint(1950, 2006), rng.randint(1, 12), rng.randint(1, 28)),
        tags=frozenset(rng.sample(TAGS, rng.randint(0, 2))),
        segment=rng.choice(SEGMENTS),
        is_new=orders == 0,
    )


def sample_event(rng: random.Random, number: int, customer_id: str) -> Event:
    """A purchase most of the time; activities, referrals and enrolments besides."""
    at = datetime(
        2026, 12, rng.randint(1, 28), rng.randint(7, 22), rng.randint(0, 59), tzinfo=SHANGHAI
    )
    common = {"event_id": f"bench-{number}", "customer_id": customer_id, "occurred_at": at}
    roll = rng.random()
    if roll < 0.78:
        items = []
        for _ in range(rng.randint(1, 4)):
            category = rng.choice(CATEGORIES)
            items.append(
                LineItem(
                    sku=sku(category, rng.randint(1, SKUS_PER_CATEGORY)),
                    category=category,
                    quantity=Decimal(rng.randint(1, 3)),
                    price=Decimal(rng.randint(100, 20_000)) / 100,
                )
            )
        amount = sum((item.price * item.quantity for item in items), Decimal(0))
        return Event(
            type="purchase",
            order_id=f"o-{number}",
            amount=amount,
            channel=rng.choices(CHANNELS, (35, 45, 20))[0],
            store_id=rng.choice(STORES),
            items=tuple(items),
            **common,  # type: ignore[arg-type]
        )
    if roll < 0.93:
        kind = rng.choice(ACTIVITIES)
        attributes = {"rating": Decimal(rng.randint(1, 5))} if kind == "review" else {}
        return Event(type="activity", kind=kind, attributes=attributes, **common)  # type: ignore[arg-type]
    if roll < 0.97:
        return Event(type="referral", referrer_id=f"m{rng.randint(1, 10_000):05d}", **common)  # type: ignore[arg-type]
    return Event(type="enrolment", **common)  # type: ignore[arg-type]


def sample_traffic(
    count: int, members: int = 10_000, seed: int = 7
) -> list[tuple[CustomerSnapshot, Event]]:
    """``count`` (member snapshot, event) pairs over ``members`` members."""
    rng = random.Random(seed)
    snapshots: dict[int, CustomerSnapshot] = {}
    traffic = []
    for number in range(count):
        member = rng.randint(1, members)
        if member not in snapshots:
            snapshots[member] = sample_member(rng, member)
        traffic.append(
            (snapshots[member], sample_event(rng, number, snapshots[member].customer_id))
        )
    return traffic
