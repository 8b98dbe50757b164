"""Reads for the API: a member's standing and their ledger."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from service.application.offers import offer_view
from service.application.ports import Clock, UnitOfWorkFactory
from service.application.rules_runtime import ActiveRules
from service.core.errors import NotFound
from service.core.tiers import progress

EXPIRING_WITHIN = timedelta(days=30)


def customer_view(
    uow_factory: UnitOfWorkFactory, rules: ActiveRules, customer_id: str, clock: Clock
) -> dict[str, Any]:
    now = clock()
    policy = rules.ruleset.programme.tiers
    with uow_factory() as uow:
        member = uow.store.read_member(customer_id)
        if member is None:
            raise NotFound(f"no member {customer_id!r}")
        # Up to now, or to the member's latest purchase when a sender's clock runs ahead.
        until = max(now, member.last_purchase_at or now)
        value = uow.store.tier_value(customer_id, policy.metric, until - policy.window, until)
        expiring = uow.store.expiring(customer_id, now + EXPIRING_WITHIN)
        offers = uow.store.member_offers(customer_id)
    level = policy.level(member.tier)
    return {
        "customer_id": customer_id,
        "tier": member.tier or (level.name if level else None),
        "tier_progress": progress(policy, member.tier, value),
        "points": {
            "available": member.points_available,
            "pending": member.points_pending,
            "debt": member.points_debt,
            "expiring": [
                {"points": points, "on": at.date().isoformat()} for points, at in expiring
            ],
        },
        "lifetime_spend": format(member.lifetime_spend.normalize(), "f"),
        "order_count": member.order_count,
        "tags": member.tags,
        "segment": member.segment,
        "referral_code": member.referral_code,
        "offers": [offer_view(offer, now) for offer in offers if offer.status == "active"],
    }


def ledger_view(
    uow_factory: UnitOfWorkFactory, customer_id: str, cursor: int | None, limit: int
) -> dict[str, Any]:
    with uow_factory() as uow:
        if uow.store.read_member(customer_id) is None:
            raise NotFound(f"no member {customer_id!r}")
        rows = uow.store.ledger_page(customer_id, cursor, limit + 1)
    page = rows[:limit]
    return {
        "entries": [
            {
                "id": row.id,
                "kind": row.kind,
                "points": row.points,
                "debt": row.debt,
                "event_id": row.event_id,
                "campaign": row.campaign,
                "rule": row.rule,
                "rules_version": row.rules_version,
                "order_id": row.order_id,
                "occurred_at": _iso(row.occurred_at),
                "recorded_at": _iso(row.recorded_at),
                "note": row.note,
            }
            for row in page
        ],
        "next_cursor": str(page[-1].id) if len(rows) > limit else None,
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat()
