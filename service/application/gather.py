"""Gathering what evaluation needs about a member, from storage, before deciding."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from service.application.ports import MemberRecord
from service.application.rules_runtime import ActiveRules
from service.core.customer import CustomerSnapshot
from service.core.effects import Evaluation
from service.core.evaluation import BudgetUse, evaluate
from service.core.events import Event
from service.core.referrals import ReferralContext, share_contact


@dataclass(frozen=True, slots=True)
class Gathered:
    snapshot: CustomerSnapshot
    referral: ReferralContext | None


class MemberReads(Protocol):
    """What gathering reads: the event store's working set, or the tables (dry runs)."""

    def read_member(self, customer_id: str) -> MemberRecord | None: ...

    def rule_firings(
        self, customer_id: str, rule_keys: Iterable[str]
    ) -> dict[str, tuple[datetime, ...]]: ...

    def orders_between(
        self, customer_id: str, since: datetime, until: datetime
    ) -> tuple[Decimal, int]: ...

    def tier_value(
        self, customer_id: str, metric: str, since: datetime, until: datetime
    ) -> Decimal: ...

    def referrals_rewarded(self, referrer_id: str) -> tuple[datetime, ...]: ...


def gather(
    store: MemberReads,
    rules: ActiveRules,
    event: Event,
    member: MemberRecord,
) -> Gathered:
    """The member's snapshot for evaluation."""
    programme = rules.ruleset.programme
    at = event.occurred_at
    limited = rules.limited
    firings = store.rule_firings(member.customer_id, limited) if limited else {}
    spend, orders = store.orders_between(member.customer_id, at - programme.rfm.window, at)
    tiers = programme.tiers
    if tiers.window == programme.rfm.window and tiers.metric in ("spend", "orders"):
        # The same orders answer both: one query instead of two on every event.
        tier_value = spend if tiers.metric == "spend" else Decimal(orders)
    else:
        tier_value = store.tier_value(member.customer_id, tiers.metric, at - tiers.window, at)
    snapshot = CustomerSnapshot(
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
        is_new=member.events_applied == 0,
        rule_firings=firings,
        tier_until=member.tier_until,
        tier_value=tier_value,
        recent_orders=orders,
        recent_spend=spend,
        referred_by=member.referred_by,
    )
    return Gathered(snapshot, _referral(store, event, member))


def _referral(store: MemberReads, event: Event, referee: MemberRecord) -> ReferralContext | None:
    if event.type != "referral" or event.referrer_id is None:
        return None
    referrer = store.read_member(event.referrer_id)
    if referrer is None:
        return ReferralContext(referrer_known=False)
    return ReferralContext(
        referrer_known=True,
        referrer_rewarded_at=store.referrals_rewarded(event.referrer_id),
        code_matches=event.code is None or event.code == referrer.referral_code,
        shares_contact=share_contact(_contact(event, referee), (referrer.email, referrer.phone)),
    )


def _contact(event: Event, member: MemberRecord) -> tuple[str | None, str | None]:
    """The referee's e-mail and phone: as this event gives them, else as stored."""
    given = event.profile
    return (
        (given.email if given else None) or member.email,
        (given.phone if given else None) or member.phone,
    )


def decide(
    rules: ActiveRules,
    gathered: Gathered,
    event: Event,
    budgets: dict[str, BudgetUse],
    *,
    explain: bool = False,
) -> Evaluation:
    return evaluate(
        rules.ruleset,
        rules.matcher,
        gathered.snapshot,
        event,
        budgets_used=budgets,
        referral=gathered.referral,
        explain=explain,
    )


def spent_campaigns(rules: ActiveRules, evaluation: Evaluation) -> list[str]:
    """Budgeted campaigns this evaluation would spend from, sorted (the lock order)."""
    names = set(rules.budgeted)
    return sorted({c for c in _campaigns(evaluation) if c in names})


def _campaigns(evaluation: Evaluation) -> Iterable[str]:
    for effect in evaluation.effects:
        campaign = getattr(effect, "campaign", None)
        if isinstance(campaign, str):
            yield campaign
