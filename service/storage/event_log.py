"""The stored events as a replay source: their payloads in the order the service applied
them, and every member's state as it stood when the replayed span began.

Values the service updates in place (an order's refunded amount and clawed points, a
member's tags and profile) are taken as they are now, with the refunds inside the span
taken back out, so the replay can apply them again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, or_, select

from service.application.ports import (
    HeldRefund,
    MemberRecord,
    OrderAward,
    OrderRecord,
    ReferrerAward,
)
from service.application.replay import MemberSeed
from service.core.evaluation import BudgetUse
from service.core.ledger import clawback_points
from service.storage.tables import (
    events,
    held_refunds,
    ledger_entries,
    member_offers,
    members,
    order_awards,
    orders,
    referrals,
    referrer_awards,
    rule_firings,
    tier_history,
)

BATCH = 5000


def count_events(engine: Engine, since: datetime) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(events).where(events.c.occurred_at >= since)
        return int(connection.execute(query).scalar_one())


def stored_events(engine: Engine, since: datetime) -> Iterator[tuple[str, Any]]:
    """(where, payload) of every event that occurred since then, in the order applied."""
    query = (
        select(events.c.event_id, events.c.payload)
        .where(events.c.occurred_at >= since)
        .order_by(events.c.id)
    )
    with engine.connect() as connection:
        rows = connection.execution_options(yield_per=BATCH).execute(query)
        for event_id, payload in rows:
            yield f"event {event_id}", payload


def starting_states(
    engine: Engine, since: datetime, window: timedelta, budgeted: list[str]
) -> tuple[dict[str, MemberSeed], dict[str, BudgetUse]]:
    """Members who existed before ``since`` as they were then, and the campaign budgets
    spent by then. ``window`` is how far back orders and earnings still count (the longer
    of the tier and RFM windows)."""
    with engine.connect() as db:
        seeds = {
            row["customer_id"]: MemberSeed(_record(row))
            for row in db.execute(select(members).where(members.c.first_seen_at < since))
            .mappings()
            .all()
        }
        _balances(db, seeds, since)
        _profiles(db, seeds, since)
        _tiers(db, seeds, since)
        _orders(db, seeds, since, window)
        _held(db, seeds, since)
        _history(db, seeds, since, window)
        budgets = _budgets(db, since, budgeted)
    return seeds, budgets


def _record(row: Any) -> MemberRecord:
    return MemberRecord(
        customer_id=row["customer_id"],
        first_seen_at=row["first_seen_at"],
        referral_code=row["referral_code"],
    )


def _profiles(db: Any, seeds: dict[str, MemberSeed], since: datetime) -> None:
    """Profile fields and tags as they stood: what the earlier events set and tagged."""
    query = (
        select(events.c.customer_id, events.c.payload, events.c.result)
        .where(events.c.occurred_at < since)
        .order_by(events.c.id)
    )
    for customer_id, payload, result in db.execution_options(yield_per=BATCH).execute(query):
        seed = seeds.get(customer_id)
        if seed is None:
            continue
        record = seed.record
        profile = payload.get("profile") or {}
        for name in ("timezone", "email", "phone"):
            if profile.get(name) is not None:
                setattr(record, name, profile[name])
        if profile.get("birthday") is not None:
            record.birthday = date.fromisoformat(profile["birthday"])
        tags = set(profile["tags"]) if profile.get("tags") is not None else set(record.tags)
        for effect in (result or {}).get("effects", []):
            if effect.get("type") == "tag":
                tags |= set(effect.get("add", []))
                tags -= set(effect.get("remove", []))
        record.tags = sorted(tags)


def _balances(db: Any, seeds: dict[str, MemberSeed], since: datetime) -> None:
    query = (
        select(
            ledger_entries.c.customer_id,
            func.coalesce(func.sum(ledger_entries.c.points), 0),
            func.coalesce(func.sum(ledger_entries.c.debt), 0),
        )
        .where(ledger_entries.c.occurred_at < since)
        .group_by(ledger_entries.c.customer_id)
    )
    for customer_id, points, debt in db.execute(query):
        if customer_id in seeds:
            seeds[customer_id].record.points_available = max(int(points), 0)
            seeds[customer_id].record.points_debt = max(int(debt), 0)
    counted = (
        select(events.c.customer_id, func.count(), func.min(events.c.occurred_at))
        .where(events.c.occurred_at < since)
        .group_by(events.c.customer_id)
    )
    for customer_id, count, _first in db.execute(counted):
        if customer_id in seeds:
            seeds[customer_id].record.events_applied = int(count)
    enrolled = select(members.c.customer_id, members.c.enrolled_at).where(
        members.c.enrolled_at < since
    )
    for customer_id, at in db.execute(enrolled):
        if customer_id in seeds:
            seeds[customer_id].record.enrolled_at = at
    referred = select(referrals.c.referee_id, referrals.c.referrer_id)
    for referee, referrer in db.execute(referred.where(referrals.c.occurred_at < since)):
        if referee in seeds:
            seeds[referee].record.referred_by = referrer
    rewarded = select(referrals.c.referrer_id, referrals.c.occurred_at).where(
        referrals.c.rewarded == 1, referrals.c.occurred_at < since
    )
    for referrer, at in db.execute(rewarded.order_by(referrals.c.occurred_at)):
        if referrer in seeds:
            seeds[referrer].referrals_rewarded.append(at)


def _tiers(db: Any, seeds: dict[str, MemberSeed], since: datetime) -> None:
    query = (
        select(
            tier_history.c.customer_id,
            tier_history.c.to_tier,
            tier_history.c.until,
            tier_history.c.occurred_at,
        )
        .where(tier_history.c.occurred_at < since)
        .order_by(tier_history.c.id)
    )
    for customer_id, tier, until, at in db.execute(query):
        if customer_id in seeds:
            seeds[customer_id].record.tier = tier
            seeds[customer_id].record.tier_until = until
            seeds[customer_id].record.tier_since = at


def _orders(db: Any, seeds: dict[str, MemberSeed], since: datetime, window: timedelta) -> None:
    refunded_since: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    refunds = select(events.c.customer_id, events.c.payload).where(
        events.c.type == "refund", events.c.occurred_at >= since
    )
    for customer_id, payload in db.execute(refunds):
        if customer_id in seeds and "order_id" in payload:
            refunded_since[customer_id, payload["order_id"]] += Decimal(str(payload["amount"]))
    clawed_since: dict[tuple[str, str], int] = defaultdict(int)
    clawed = select(
        ledger_entries.c.customer_id, ledger_entries.c.order_id, ledger_entries.c.points
    ).where(ledger_entries.c.kind == "clawed_back", ledger_entries.c.occurred_at >= since)
    for customer_id, order_id, points in db.execute(clawed):
        clawed_since[customer_id, order_id] -= int(points)
    awards: dict[tuple[str, str], list[OrderAward]] = defaultdict(list)
    award_rows = select(order_awards).order_by(order_awards.c.campaign)
    for row in db.execute(award_rows).mappings():
        if row["customer_id"] in seeds:
            awards[row["customer_id"], row["order_id"]].append(
                OrderAward(
                    row["campaign"],
                    row["points"],
                    row["points_returned"],
                    row["revenue"],
                    row["event_id"],
                )
            )
    thanks: dict[tuple[str, str], list[ReferrerAward]] = defaultdict(list)
    for row in db.execute(select(referrer_awards).order_by(referrer_awards.c.event_id)).mappings():
        if row["customer_id"] in seeds:
            thanks[row["customer_id"], row["order_id"]].append(ReferrerAward(**row))
    query = select(orders).where(orders.c.occurred_at < since).order_by(orders.c.occurred_at)
    for row in db.execute(query).mappings():
        seed = seeds.get(row["customer_id"])
        if seed is None:
            continue
        key = (row["customer_id"], row["order_id"])
        refunded = max(row["refunded_amount"] - refunded_since.get(key, Decimal(0)), Decimal(0))
        record = seed.record
        record.lifetime_spend += row["amount"] - refunded
        record.order_count += 1
        if record.last_purchase_at is None or row["occurred_at"] > record.last_purchase_at:
            record.last_purchase_at = row["occurred_at"]
        if row["occurred_at"] >= since - window or key in refunded_since:
            seed.order_awards[row["order_id"]] = awards.get(key, [])
            seed.orders.append(
                OrderRecord(
                    row["customer_id"],
                    row["order_id"],
                    row["amount"],
                    row["occurred_at"],
                    points_earned=row["points_earned"],
                    points_clawed=max(row["points_clawed"] - clawed_since.get(key, 0), 0),
                    refunded_amount=refunded,
                    event_id=row["event_id"],
                    tier_before=row["tier_before"],
                    tier_reached=row["tier_reached"],
                    tier_reached_at=row["tier_reached_at"],
                )
            )
            given = [
                replace(award, points_clawed=_clawed_by(award.points, row["amount"], refunded))
                for award in thanks.get(key, [])
            ]
            if given:
                seed.referrer_awards[row["order_id"]] = given


def _clawed_by(points: int, amount: Decimal, refunded: Decimal) -> int:
    """What refunds of ``refunded`` took back of ``points``: clawbacks follow the refunded
    share of the order, whatever the steps (service.core.ledger.clawback_points)."""
    clawed, _after = clawback_points(points, 0, amount, Decimal(0), refunded)
    return clawed


def _held(db: Any, seeds: dict[str, MemberSeed], since: datetime) -> None:
    """Refunds held before the span began whose purchase had not come by then."""
    query = (
        select(held_refunds)
        .where(
            held_refunds.c.occurred_at < since,
            or_(held_refunds.c.applied_at.is_(None), held_refunds.c.applied_at >= since),
        )
        .order_by(held_refunds.c.occurred_at, held_refunds.c.event_id)
    )
    for row in db.execute(query).mappings():
        seed = seeds.get(row["customer_id"])
        if seed is not None:
            seed.held.append(HeldRefund(**{**row, "applied_by": None, "applied_at": None}))


def _history(db: Any, seeds: dict[str, MemberSeed], since: datetime, window: timedelta) -> None:
    earned = select(
        ledger_entries.c.customer_id, ledger_entries.c.occurred_at, ledger_entries.c.points
    ).where(
        ledger_entries.c.kind.in_(("earned", "pending")),
        ledger_entries.c.occurred_at < since,
        ledger_entries.c.occurred_at >= since - window,
    )
    for customer_id, at, points in db.execute(earned):
        if customer_id in seeds:
            seeds[customer_id].earned.append((at, int(points)))
    fired = (
        select(
            rule_firings.c.customer_id,
            rule_firings.c.rule_key,
            rule_firings.c.occurred_at,
            rule_firings.c.event_id,
        )
        .where(rule_firings.c.occurred_at < since)
        .order_by(rule_firings.c.occurred_at)
    )
    for customer_id, key, at, event_id in db.execute(fired):
        if customer_id in seeds:
            seeds[customer_id].firings.setdefault(key, []).append((at, event_id))


def _budgets(db: Any, since: datetime, budgeted: list[str]) -> dict[str, BudgetUse]:
    if not budgeted:
        return {}
    points = dict(
        db.execute(
            select(ledger_entries.c.campaign, func.sum(ledger_entries.c.points))
            .where(
                ledger_entries.c.campaign.in_(budgeted),
                ledger_entries.c.kind.in_(("earned", "pending")),
                ledger_entries.c.occurred_at < since,
            )
            .group_by(ledger_entries.c.campaign)
        ).all()
    )
    offers = dict(
        db.execute(
            select(member_offers.c.campaign, func.count())
            .where(member_offers.c.campaign.in_(budgeted), member_offers.c.issued_at < since)
            .group_by(member_offers.c.campaign)
        ).all()
    )
    return {
        name: BudgetUse(int(points.get(name, 0)), int(offers.get(name, 0)))
        for name in budgeted
        if name in points or name in offers
    }
