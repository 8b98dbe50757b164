"""Applying one event: gather, decide, apply, in one transaction, idempotent on event_id."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from service.application.gather import (
    Gathered,
    decide,
    event_reads,
    gather,
    spent_campaigns,
)
from service.application.members import segment_after, update_member
from service.application.messages import event_messages, mark_duplicates
from service.application.ports import (
    Changes,
    DuplicateEvent,
    IssuedOffer,
    LoyaltyStore,
    MemberRecord,
    OpenedEvent,
    OrderAward,
    OrderRecord,
    Posting,
    StoredEvent,
    TierMove,
    UnitOfWork,
)
from service.application.posting import (
    post_awards,
    post_clawback,
    return_budgets,
    spent_from_budgets,
)
from service.application.rules_runtime import ActiveRules
from service.core.effects import (
    AwardPoints,
    ChangeTier,
    Effect,
    Evaluation,
    IssueOffer,
    TagCustomer,
)
from service.core.errors import EventConflict
from service.core.evaluation import BudgetUse
from service.core.events import Event
from service.core.referrals import links_members
from service.event_schema import event_to_json

log = logging.getLogger(__name__)

UnitOfWorkFactory = Callable[[], UnitOfWork]
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class EventOutcome:
    status: str  # applied | duplicate
    answer: dict[str, Any]
    evaluation: Evaluation | None = None  # None for a duplicate


def body_hash(event: Event, payload: dict[str, Any] | None = None) -> str:
    """``payload``: the event's canonical JSON, when the caller has it already."""
    body = payload if payload is not None else event_to_json(event)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def apply_event(
    uow_factory: UnitOfWorkFactory, rules: ActiveRules, event: Event, clock: Clock
) -> EventOutcome:
    # Worked out before the transaction: on SQLite every writer waits for it to end.
    payload = event_to_json(event)
    digest = body_hash(event, payload)
    try:
        with uow_factory() as uow:
            outcome = _apply_in(uow.store, rules, event, clock, payload, digest)
            uow.commit()
            return outcome
    except DuplicateEvent:
        # The same event_id committed first under another member's lock.
        with uow_factory() as uow:
            earlier = uow.store.find_event(event.event_id)
        if earlier is None:
            raise
        return _repeat(earlier, digest)


def apply_batch(
    uow_factory: UnitOfWorkFactory, rules: ActiveRules, batch: Sequence[Event], clock: Clock
) -> list[EventOutcome | EventConflict]:
    """Apply a batch's events a few dozen to a transaction: one commit (and one flush to
    disk) for each group. Each event still stands alone: a duplicate is answered as such
    and an event_id reused with another body is refused, without touching the others.

    Events are taken in customer-id order (a member's own events keep their order), and
    a group locks all its members first, in that order, before anything is decided;
    budgets are locked later, as single events lock them: after their member. Groups stay
    small because a group holds its members' locks until it commits: larger ones made
    concurrent batches queue behind each other. Should a group's transaction fail all
    the same (an event_id committed meanwhile by another request, a deadlock through a
    referrer or a budget, a lost connection), its events are applied one transaction
    each, which is where such races are already resolved.
    """
    order = sorted(range(len(batch)), key=lambda i: batch[i].customer_id)
    outcomes: dict[int, EventOutcome | EventConflict] = {}
    for start in range(0, len(order), EVENTS_PER_TRANSACTION):
        group = order[start : start + EVENTS_PER_TRANSACTION]
        outcomes.update(_apply_group(uow_factory, rules, batch, group, clock))
    return [outcomes[index] for index in range(len(batch))]


EVENTS_PER_TRANSACTION = 50


def _apply_group(
    uow_factory: UnitOfWorkFactory,
    rules: ActiveRules,
    batch: Sequence[Event],
    group: list[int],
    clock: Clock,
) -> dict[int, EventOutcome | EventConflict]:
    outcomes: dict[int, EventOutcome | EventConflict] = {}
    payloads = {index: event_to_json(batch[index]) for index in group}
    digests = {index: body_hash(batch[index], payloads[index]) for index in group}
    try:
        with uow_factory() as uow:
            members = sorted({batch[index].customer_id for index in group})
            uow.store.lock_members(members, clock())
            for index in group:
                event = batch[index]
                try:
                    outcomes[index] = _apply_in(
                        uow.store, rules, event, clock, payloads[index], digests[index]
                    )
                except EventConflict as conflict:
                    outcomes[index] = conflict
            uow.commit()
    except Exception:
        log.warning("%d events of a batch are applied one by one", len(group), exc_info=True)
        return {index: _one_of_batch(uow_factory, rules, batch[index], clock) for index in group}
    return outcomes


def _one_of_batch(
    uow_factory: UnitOfWorkFactory, rules: ActiveRules, event: Event, clock: Clock
) -> EventOutcome | EventConflict:
    try:
        return apply_event(uow_factory, rules, event, clock)
    except EventConflict as conflict:
        return conflict


def _apply_in(
    store: LoyaltyStore,
    rules: ActiveRules,
    event: Event,
    clock: Clock,
    payload: dict[str, Any],
    digest: str,
) -> EventOutcome:
    # The member's row is locked first; the event is looked up under that lock, so a twin
    # of this event for the same member that committed while we waited is seen here.
    opened = store.open_event(event_reads(rules, event, clock()))
    if opened.earlier is not None:
        return _repeat(opened.earlier, digest)
    return record_event(store, rules, event, opened, digest, payload, clock)


def _repeat(earlier: StoredEvent, digest: str) -> EventOutcome:
    if earlier.body_hash != digest:
        raise EventConflict(
            f"event {earlier.event_id!r} was already applied with a different body; "
            "send a new event_id for a new event"
        )
    return EventOutcome("duplicate", {**earlier.result, "status": "duplicate"})


def record_event(
    store: LoyaltyStore,
    rules: ActiveRules,
    event: Event,
    opened: OpenedEvent,
    digest: str,
    payload: dict[str, Any],
    clock: Clock,
) -> EventOutcome:
    """Decide and write one event for the member whose row this transaction has locked
    (``opened``: what was read under that lock)."""
    member = opened.member
    gathered = gather(store, rules, event, member, opened)
    evaluation, postings = _decide_with_locks(
        store, rules, event, gathered, member, clock, dict(opened.budgets)
    )
    changes = Changes(
        event=StoredEvent(
            event.event_id,
            event.customer_id,
            event.type,
            event.occurred_at,
            digest,
            payload,
            {},
            rules.version,
        ),
        rules_version=rules.version,
        postings=postings,
    )
    effects: list[Effect] = list(evaluation.effects)
    if event.type == "refund":
        _refund(store, changes, event, effects)
    _awards(changes, event, evaluation, rules)
    if event.type == "purchase" and event.order_id is not None and event.amount is not None:
        _record_order(changes, event, evaluation)
    changes.budgets.extend(spent_from_budgets(event, evaluation.effects, rules.budgeted))
    _tiers_and_offers(changes, evaluation)
    _referral(changes, event, gathered, rules)
    changes.messages = mark_duplicates(
        store,
        event.customer_id,
        event_messages(event, effects, changes.offers, rules.ruleset.programme, clock()),
    )
    changes.firings = sorted(
        {
            f"{e.campaign}/{e.rule}"
            for e in effects
            if isinstance(e, (AwardPoints, TagCustomer, IssueOffer))
        }
    )
    update_member(member, event, evaluation.effects)
    member.segment = segment_after(rules.ruleset.programme.rfm, gathered.snapshot, event)
    answer = event_answer(event.event_id, "applied", effects, member, rules, changes.offers)
    changes.event = replace(changes.event, result=answer)
    store.apply(changes)
    return EventOutcome("applied", answer, replace(evaluation, effects=tuple(effects)))


def _decide_with_locks(
    store: LoyaltyStore,
    rules: ActiveRules,
    event: Event,
    gathered: Gathered,
    member: MemberRecord,
    clock: Clock,
    budgets: dict[str, BudgetUse],
) -> tuple[Evaluation, dict[str, Posting]]:
    """Evaluate optimistically, then lock what the decision spends and decide again if
    another member's event moved a budget meanwhile.

    Lock order is fixed (the event's member, then referrers, then budgets by campaign id),
    so two events can never wait on each other.
    """
    evaluation = decide(rules, gathered, event, budgets)
    postings = {member.customer_id: Posting(member)}
    for other in sorted(
        {e.customer_id for e in evaluation.effects if isinstance(e, AwardPoints) and e.customer_id}
    ):
        if other != member.customer_id:
            postings[other] = Posting(store.lock_member(other, clock()))
    locked: dict[str, BudgetUse] = {}
    while wanted := [c for c in spent_campaigns(rules, evaluation) if c not in locked]:
        locked.update(store.lock_budgets(wanted))
        if all(locked[c] == budgets.get(c, BudgetUse()) for c in wanted):
            break
        budgets.update(locked)
        evaluation = decide(rules, gathered, event, budgets)
    return evaluation, postings


def _refund(store: LoyaltyStore, changes: Changes, event: Event, effects: list[Effect]) -> None:
    if event.order_id is None:
        return
    order = store.find_order(event.customer_id, event.order_id)
    clawback = post_clawback(changes.own, event, order, store.lots(event.customer_id))
    if clawback is not None:
        effects.append(clawback)
    if order is None:
        return
    changes.order = order
    awards = store.order_awards(event.customer_id, event.order_id)
    changes.budgets.extend(return_budgets(order, awards))
    changes.order_awards = awards
    if order.refunded_amount >= order.amount:
        # A fully refunded order gives back the limit counts its purchase used.
        changes.unfire_event = store.order_event(event.customer_id, event.order_id)


def _awards(changes: Changes, event: Event, evaluation: Evaluation, rules: ActiveRules) -> None:
    policy = rules.ruleset.programme.points
    by_member: dict[str, list[AwardPoints]] = defaultdict(list)
    for effect in evaluation.effects:
        if isinstance(effect, AwardPoints):
            by_member[effect.customer_id or event.customer_id].append(effect)
    for customer_id, awards in by_member.items():
        post_awards(changes.postings[customer_id], event, awards, policy)


def _record_order(changes: Changes, event: Event, evaluation: Evaluation) -> None:
    assert event.order_id is not None
    assert event.amount is not None
    points = sum(
        e.points for e in evaluation.effects if isinstance(e, AwardPoints) and e.customer_id is None
    )
    # What this purchase adds to its order; storage adds it to a later part of the same
    # order (a split shipment) in the same statement that records a new one.
    changes.order = OrderRecord(
        event.customer_id,
        event.order_id,
        event.amount,
        event.occurred_at,
        points_earned=points,
        event_id=event.event_id,
    )
    per_campaign: dict[str, int] = defaultdict(int)
    for effect in evaluation.effects:
        if isinstance(effect, AwardPoints) and effect.customer_id is None:
            per_campaign[effect.campaign] += effect.points
    changes.order_awards = [
        OrderAward(campaign, points, 0, event.amount, event.event_id)
        for campaign, points in sorted(per_campaign.items())
    ]


def _tiers_and_offers(changes: Changes, evaluation: Evaluation) -> None:
    for effect in evaluation.effects:
        if isinstance(effect, ChangeTier):
            changes.tier_moves.append(
                TierMove(
                    effect.from_tier,
                    effect.to_tier,
                    effect.reason,
                    effect.until,
                    effect.campaign,
                    effect.rule,
                )
            )
        elif isinstance(effect, IssueOffer):
            changes.offers.append(
                IssuedOffer(
                    new_offer_code(), effect.offer, effect.valid_until, effect.campaign, effect.rule
                )
            )


def _referral(changes: Changes, event: Event, gathered: Gathered, rules: ActiveRules) -> None:
    policy = rules.ruleset.programme.referrals
    if event.referrer_id is None or not links_members(
        event, gathered.snapshot, gathered.referral, policy
    ):
        return
    rewarded = event.referrer_id in changes.postings and bool(
        changes.postings[event.referrer_id].ledger
    )
    changes.referral = (event.referrer_id, rewarded)
    changes.member.referred_by = event.referrer_id


def new_offer_code() -> str:
    """Hard to guess, easy to read out: no 0/O or 1/I."""
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def event_answer(
    event_id: str,
    status: str,
    effects: list[Effect] | tuple[Effect, ...],
    member: MemberRecord,
    rules: ActiveRules,
    offers: list[IssuedOffer] | None = None,
) -> dict[str, Any]:
    shown = [effect.as_dict() for effect in effects]
    codes = iter(offers or [])
    for body in shown:
        if body["type"] == "issue_offer":
            issued = next(codes, None)
            if issued is not None:
                body["code"] = issued.code
    return {
        "event_id": event_id,
        "status": status,
        "effects": shown,
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
