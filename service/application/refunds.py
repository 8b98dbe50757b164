"""What a refund undoes: the points its order earned, on every member they went to, and
the upgrade its purchase qualified the member for; and a refund that came before its
purchase, held until the purchase comes.

Called from record_event (service.application.apply_event) against a group's working
set, so live events, batches, replays and rules diffs refund alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from service.application.members import move_tier
from service.application.messages import event_messages, mark_duplicates
from service.application.ports import (
    Changes,
    HeldRefund,
    MemberRecord,
    OrderRecord,
    Posting,
    ReferrerAward,
    StoredEvent,
    TierMove,
)
from service.application.posting import (
    post_clawback,
    post_referrer_clawback,
    return_budgets,
)
from service.application.rules_runtime import ActiveRules
from service.application.working_set import WorkingSet
from service.core.effects import AwardPoints, ChangeTier, Effect
from service.core.events import Event
from service.core.tiers import refund_change, refunded_value

Clock = Callable[[], datetime]


def refund_order(
    members: WorkingSet,
    rules: ActiveRules,
    changes: Changes,
    event: Event,
    effects: list[Effect],
    now: datetime,
    note: str | None = None,
) -> Decimal:
    """Claw back the refunded share of the order's points (the buyer's and its referrers'),
    give back its budgets, and undo the upgrade it qualified for if what is left no longer
    reaches it. Returns how much of its order the refund refunded: no more than was left
    of it, nothing of an order not known yet, which is held for its purchase instead."""
    if event.order_id is None or event.amount is None:
        return Decimal(0)
    customer_id = event.customer_id
    order = members.find_order(customer_id, event.order_id)
    if order is None:
        changes.held_refunds.append(
            HeldRefund(event.event_id, customer_id, event.order_id, event.amount, event.occurred_at)
        )
        return Decimal(0)
    before = order.refunded_amount
    forgive = rules.ruleset.programme.points.shortfall == "forgive"
    clawback = post_clawback(
        changes.own, event, order, members.lots(customer_id), note, forgive=forgive
    )
    if clawback is not None:
        effects.append(clawback)
    changes.order = order
    awards = members.order_awards(customer_id, event.order_id)
    changes.budgets.extend(return_budgets(order, awards))
    changes.order_awards = awards
    _claw_back_referrers(members, changes, event, order, before, effects, now, forgive=forgive)
    if order.refunded_amount >= order.amount:
        # A fully refunded order gives back the limit counts its purchase used.
        changes.unfire_event = members.order_event(customer_id, event.order_id)
    refunded = order.refunded_amount - before
    if not any(isinstance(effect, ChangeTier) for effect in effects):
        undone = _undo_upgrade(members, rules, changes.member, order, before, event.occurred_at)
        if undone is not None:
            effects.append(undone)
            changes.tier_moves.append(
                TierMove(undone.from_tier, undone.to_tier, undone.reason, None, None, None)
            )
    return refunded


def _claw_back_referrers(
    members: WorkingSet,
    changes: Changes,
    event: Event,
    order: OrderRecord,
    refunded_before: Decimal,
    effects: list[Effect],
    now: datetime,
    *,
    forgive: bool,
) -> None:
    assert event.order_id is not None
    awards = members.referrer_awards(event.customer_id, event.order_id)
    by_referrer: dict[str, list[ReferrerAward]] = defaultdict(list)
    for award in awards:
        by_referrer[award.referrer_id].append(award)
    for referrer_id, given in sorted(by_referrer.items()):
        posting = changes.postings.get(referrer_id)
        if posting is None:
            posting = changes.postings[referrer_id] = Posting(members.lock_member(referrer_id, now))
        clawback = post_referrer_clawback(
            posting,
            event,
            order,
            refunded_before,
            given,
            members.lots(referrer_id),
            forgive=forgive,
        )
        if clawback is not None:
            effects.append(clawback)
    changes.referrer_awards.extend(awards)


def _undo_upgrade(
    members: WorkingSet,
    rules: ActiveRules,
    member: MemberRecord,
    order: OrderRecord,
    refunded_before: Decimal,
    at: datetime,
) -> ChangeTier | None:
    """The upgrade the order's purchase qualified the member for, undone when the refund
    takes the tier value below it and the member still stands where that purchase put
    them (a level reached since by other events is theirs to keep until a review)."""
    if order.tier_reached is None or member.tier_since != order.tier_reached_at:
        return None
    policy = rules.ruleset.programme.tiers
    since = at - policy.window
    # The working set does not hold this refund yet: the value is as it was before it.
    value = members.tier_value(member.customer_id, policy.metric, since, at)
    closed = refunded_before < order.amount <= order.refunded_amount
    taken = refunded_value(
        policy,
        order.refunded_amount - refunded_before,
        closed,
        since < order.occurred_at <= at,
    )
    return refund_change(policy, member.tier, order.tier_before, order.tier_reached, value - taken)


def referrer_awards_of(event: Event, effects: tuple[Effect, ...]) -> list[ReferrerAward]:
    """What a purchase gives other members (its referrer), per member and campaign."""
    if event.type != "purchase" or event.order_id is None or event.amount is None:
        return []
    given: dict[tuple[str, str], int] = defaultdict(int)
    for effect in effects:
        if isinstance(effect, AwardPoints) and effect.customer_id is not None:
            given[effect.customer_id, effect.campaign] += effect.points
    return [
        ReferrerAward(event.customer_id, event.order_id, event.event_id, referrer, campaign, points)
        for (referrer, campaign), points in sorted(given.items())
    ]


def apply_held_refunds(
    members: WorkingSet, rules: ActiveRules, purchase: Event, clock: Clock
) -> list[tuple[list[Effect], Changes]]:
    """Refunds of the purchase's order that came before it, applied now that the order is
    known (the purchase itself is in the working set already), oldest first. Each is
    folded in as the refund it is: its ledger lines, tier move and messages name the
    refund's event, effective at the later of its moment and the purchase's."""
    if purchase.type != "purchase" or purchase.order_id is None:
        return []
    customer_id = purchase.customer_id
    applied = []
    for held in members.held_refunds(customer_id, purchase.order_id):
        at = max(held.occurred_at, purchase.occurred_at)
        refund = Event(
            held.event_id,
            "refund",
            customer_id,
            at,
            order_id=held.order_id,
            amount=held.amount,
        )
        member = members.member(customer_id, clock())
        changes = Changes(
            event=StoredEvent(held.event_id, customer_id, "refund", at, "", {}, {}, rules.version),
            rules_version=rules.version,
            postings={customer_id: Posting(member)},
            new_event=False,
        )
        effects: list[Effect] = []
        note = f"refund {held.event_id} came before its purchase {purchase.event_id}"
        refunded = refund_order(members, rules, changes, refund, effects, clock(), note)
        changes.held_refunds.append(
            replace(held, applied_by=purchase.event_id, applied_at=purchase.occurred_at)
        )
        programme = rules.ruleset.programme
        changes.messages = mark_duplicates(
            members, customer_id, event_messages(refund, effects, [], programme, clock())
        )
        member.lifetime_spend = max(member.lifetime_spend - refunded, Decimal(0))
        for effect in effects:
            if isinstance(effect, ChangeTier):
                move_tier(member, effect, at)
        members.apply(changes)
        applied.append((effects, changes))
    return applied
