"""Applying one event: gather, decide, apply, in one transaction, idempotent on event_id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from service.application.members import snapshot_of, update_member
from service.application.ports import (
    Changes,
    DuplicateEvent,
    LoyaltyStore,
    MemberRecord,
    OrderRecord,
    StoredEvent,
    UnitOfWork,
)
from service.application.posting import post_awards, post_clawback
from service.application.rules_runtime import ActiveRules
from service.core.effects import AwardPoints, Effect, Evaluation, TagCustomer, TraceEntry
from service.core.errors import EventConflict
from service.core.evaluation import evaluate
from service.core.events import Event
from service.event_schema import event_to_json

UnitOfWorkFactory = Callable[[], UnitOfWork]
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class EventOutcome:
    status: str  # applied | duplicate
    answer: dict[str, Any]
    evaluation: Evaluation | None = None  # None for a duplicate


def body_hash(event: Event) -> str:
    canonical = json.dumps(event_to_json(event), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def apply_event(
    uow_factory: UnitOfWorkFactory, rules: ActiveRules, event: Event, clock: Clock
) -> EventOutcome:
    digest = body_hash(event)
    try:
        with uow_factory() as uow:
            earlier = uow.store.find_event(event.event_id)
            if earlier is None:
                member = uow.store.lock_member(event.customer_id, clock())
                # Checked again under the member's lock: a twin of this event for the same
                # member may have committed while we waited.
                earlier = uow.store.find_event(event.event_id)
            if earlier is not None:
                return _repeat(earlier, digest)
            outcome = _decide_and_record(uow.store, rules, event, member, digest, clock)
            uow.commit()
            return outcome
    except DuplicateEvent:
        # The same event_id committed first under another member's lock.
        with uow_factory() as uow:
            earlier = uow.store.find_event(event.event_id)
        if earlier is None:
            raise
        return _repeat(earlier, digest)


def _repeat(earlier: StoredEvent, digest: str) -> EventOutcome:
    if earlier.body_hash != digest:
        raise EventConflict(
            f"event {earlier.event_id!r} was already applied with a different body; "
            "send a new event_id for a new event"
        )
    return EventOutcome("duplicate", {**earlier.result, "status": "duplicate"})


def _decide_and_record(
    store: LoyaltyStore,
    rules: ActiveRules,
    event: Event,
    member: MemberRecord,
    digest: str,
    clock: Clock,
) -> EventOutcome:
    ruleset = rules.ruleset
    evaluation = evaluate_for(store, rules, event, member, explain=False)
    evaluation = _within_budgets(store, rules, evaluation)
    changes = Changes(
        event=StoredEvent(
            event.event_id,
            event.customer_id,
            event.type,
            event.occurred_at,
            digest,
            event_to_json(event),
            {},
            ruleset.version,
        ),
        member=member,
        rules_version=ruleset.version,
    )
    effects: list[Effect] = list(evaluation.effects)
    awards = [e for e in effects if isinstance(e, AwardPoints)]
    if event.type == "refund" and event.order_id is not None:
        order = store.find_order(event.customer_id, event.order_id)
        clawback = post_clawback(changes, event, order, store.lots(event.customer_id))
        if clawback is not None:
            effects.append(clawback)
    post_awards(changes, event, awards, ruleset.programme.points)
    if event.type == "purchase" and event.order_id is not None and event.amount is not None:
        _record_order(store, changes, event, sum(a.points for a in awards))
    changes.firings = sorted(
        {f"{e.campaign}/{e.rule}" for e in effects if isinstance(e, (AwardPoints, TagCustomer))}
    )
    update_member(member, event, evaluation.effects)
    answer = event_answer(event.event_id, "applied", effects, member, rules)
    changes.event = replace(changes.event, result=answer)
    store.apply(changes)
    return EventOutcome("applied", answer, replace(evaluation, effects=tuple(effects)))


def evaluate_for(
    store: LoyaltyStore, rules: ActiveRules, event: Event, member: MemberRecord, *, explain: bool
) -> Evaluation:
    limited = [rule.key for rule in rules.ruleset.rules if rule.limit is not None]
    firings = store.rule_firings(member.customer_id, limited) if limited else {}
    budgeted = [c.id for c in rules.ruleset.campaigns if c.budget is not None]
    used = store.budgets_used(budgeted) if budgeted else {}
    return evaluate(
        rules.ruleset,
        rules.matcher,
        snapshot_of(member, firings),
        event,
        budgets_used=used,
        explain=explain,
    )


def _within_budgets(store: LoyaltyStore, rules: ActiveRules, evaluation: Evaluation) -> Evaluation:
    """Reserve each budgeted award atomically; a race lost to another member cuts the award."""
    effects: list[Effect] = []
    trace = list(evaluation.trace)
    for effect in evaluation.effects:
        campaign = (
            rules.ruleset.campaign(effect.campaign) if isinstance(effect, AwardPoints) else None
        )
        if isinstance(effect, AwardPoints) and campaign is not None and campaign.budget is not None:
            granted = store.reserve_budget(campaign.id, campaign.budget.points, effect.points)
            if granted < effect.points:
                trace.append(
                    TraceEntry(
                        campaign.id,
                        effect.rule,
                        "budget_spent",
                        f"granted {granted} of {effect.points}: budget ran out",
                    )
                )
            if granted == 0:
                continue
            effect = replace(effect, points=granted)
        effects.append(effect)
    return replace(evaluation, effects=tuple(effects), trace=tuple(trace))


def _record_order(store: LoyaltyStore, changes: Changes, event: Event, points: int) -> None:
    assert event.order_id is not None
    assert event.amount is not None
    order = store.find_order(event.customer_id, event.order_id)
    if order is None:
        changes.new_order = True
        order = OrderRecord(event.customer_id, event.order_id, event.amount, event.occurred_at)
    else:
        order.amount += event.amount  # a later part of the same order (split shipment)
    order.points_earned += points
    changes.order = order


def event_answer(
    event_id: str,
    status: str,
    effects: list[Effect] | tuple[Effect, ...],
    member: MemberRecord,
    rules: ActiveRules,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "status": status,
        "effects": [effect.as_dict() for effect in effects],
        "customer": customer_summary(member, rules),
        "rules_version": rules.version,
    }


def customer_summary(member: MemberRecord, rules: ActiveRules) -> dict[str, Any]:
    level = rules.ruleset.programme.tiers.level(member.tier)
    return {
        "customer_id": member.customer_id,
        "tier": member.tier or (level.name if level else None),
        "points": {"available": member.points_available, "pending": member.points_pending},
    }
