"""Reads for the API: a member's standing and ledger, and the active rules. Each answers
a record of domain values (datetimes, decimals, stored rows); the HTTP edge dumps it
with the schema its view declares (service.api.answers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from service.application.apply_event import Clock, UnitOfWorkFactory
from service.application.budgets import budgets_view
from service.application.rules_runtime import ActiveRules
from service.core.errors import NotFound
from service.core.evaluation import ordered
from service.core.programme import Campaign
from service.core.tiers import progress

EXPIRING_WITHIN = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class CampaignState:
    campaign: Campaign
    budget: Mapping[str, Any] | None  # by kind; None for a campaign without a budget


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
            "expiring": [{"points": points, "on": at.date()} for points, at in expiring],
        },
        "lifetime_spend": member.lifetime_spend,
        "order_count": member.order_count,
        "tags": member.tags,
        "segment": member.segment,
        "referral_code": member.referral_code,
        "offers": [
            replace(offer, status="expired") if offer.valid_until <= now else offer
            for offer in offers
            if offer.status == "active"
        ],
    }


def ledger_view(
    uow_factory: UnitOfWorkFactory, customer_id: str, cursor: int | None, limit: int
) -> dict[str, Any]:
    with uow_factory() as uow:
        if uow.store.read_member(customer_id) is None:
            raise NotFound(f"no member {customer_id!r}")
        rows = uow.store.ledger_page(customer_id, cursor, limit + 1)
    page = rows[:limit]
    return {"entries": page, "next_cursor": str(page[-1].id) if len(rows) > limit else None}


def rules_view(uow_factory: UnitOfWorkFactory, rules: ActiveRules, engine: str) -> dict[str, Any]:
    """The active version, its files, and each campaign in the order they apply."""
    ruleset = rules.ruleset
    budgets = budgets_view(uow_factory, rules)
    return {
        "version": ruleset.version,
        "engine": engine,
        "programme": ruleset.programme.id,
        "currency": ruleset.programme.currency,
        "timezone": ruleset.programme.timezone,
        "files": sorted(ruleset.files),
        "campaigns": [CampaignState(c, budgets.get(c.id)) for c in ordered(ruleset.campaigns)],
    }
