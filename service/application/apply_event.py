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
from decimal import Decimal
from typing import Any

from service.application.event_ports import EventStore, GroupReads
from service.application.gather import (
    Gathered,
    decide,
    gather,
    spent_campaigns,
)
from service.application.members import segment_after, update_member
from service.application.messages import event_messages, mark_duplicates
from service.application.ports import (
    Changes,
    ConnectionLost,
    DuplicateEvent,
    IssuedOffer,
    MemberRecord,
    OrderAward,
    OrderRecord,
    Posting,
    StoredEvent,
    TierMove,
    Transaction,
    UnitOfWork,
)
from service.application.posting import post_awards, spent_from_budgets
from service.application.refunds import apply_held_refunds, referrer_awards_of, refund_order
from service.application.rules_runtime import ActiveRules
from service.application.traces import trace_record
from service.application.working_set import WorkingSet
from service.core.effects import (
    AwardPoints,
    ChangeTier,
    Effect,
    Evaluation,
    IssueOffer,
    TagCustomer,
)
from service.core.errors import EventConflict, StorageUnavailable
from service.core.evaluation import BudgetUse
from service.core.events import Event
from service.core.referrals import links_members
from service.event_schema import event_to_json

log = logging.getLogger(__name__)

UnitOfWorkFactory = Callable[[], UnitOfWork]
EventUnitOfWorkFactory = Callable[[], Transaction[EventStore]]
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class EventOutcome:
    status: str  # applied | duplicate
    answer: dict[str, Any]
    evaluation: Evaluation | None = None  # None for a duplicate
    changes: Changes | None = None  # what the event changed, for replays (None for a duplicate)
    held_applied: tuple[Changes, ...] = ()  # a purchase's: the held refunds it applied


def body_hash(event: Event, payload: dict[str, Any] | None = None) -> str:
    """``payload``: the event's canonical JSON, when the caller has it already."""
    body = payload if payload is not None else event_to_json(event)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def apply_event(
    uow_factory: EventUnitOfWorkFactory, rules: ActiveRules, event: Event, clock: Clock
) -> EventOutcome:
    """One event in a transaction of its own (a group of one)."""
    (outcome,) = apply_group(uow_factory, rules, [event], clock)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def apply_batch(
    uow_factory: EventUnitOfWorkFactory, rules: ActiveRules, batch: Sequence[Event], clock: Clock
) -> list[EventOutcome | EventConflict]:
    """Apply a batch's events a few hundred to a transaction: one commit (and one flush
    to disk) for each group. Each event still stands alone: a duplicate is answered as
    such and an event_id reused with another body is refused, without touching the others.

    Events are taken in customer-id order (a member's own events keep their order), so
    every group locks its members in id order and two groups never deadlock.
    """
    order = sorted(range(len(batch)), key=lambda i: batch[i].customer_id)
    outcomes: dict[int, EventOutcome | EventConflict] = {}
    for start in range(0, len(order), EVENTS_PER_TRANSACTION):
        group = order[start : start + EVENTS_PER_TRANSACTION]
        for index, outcome in zip(
            group, apply_group(uow_factory, rules, [batch[i] for i in group], clock), strict=True
        ):
            if isinstance(outcome, Exception) and not isinstance(outcome, EventConflict):
                raise outcome
            outcomes[index] = outcome
    return [outcomes[index] for index in range(len(batch))]


EVENTS_PER_TRANSACTION = 100

Outcome = EventOutcome | EventConflict | Exception


def apply_group(
    uow_factory: EventUnitOfWorkFactory,
    rules: ActiveRules,
    events: Sequence[Event],
    clock: Clock,
) -> list[Outcome]:
    """Apply events in one transaction: lock their members (in id order), read what
    deciding them needs in a few set-based statements, decide each in turn in memory
    (a member's later event sees the earlier one's effects), write everything, commit.

    Each event's outcome is its own: EventOutcome, EventConflict (an event_id reused
    with another body) or the exception that event met. Should the group's transaction
    fail (an event_id committed meanwhile by another request, a deadlock through a
    referrer or a budget, a lost connection, one event's failure), its events are
    applied one transaction each, where such failures stay with the event that met them.
    """
    prepared = [_prepared(event) for event in events]
    if len(prepared) > 1:
        try:
            return _apply_together(uow_factory, rules, prepared, clock)
        except Exception:
            log.warning("%d events are applied one by one", len(prepared), exc_info=True)
    return [_apply_alone(uow_factory, rules, item, clock) for item in prepared]


def _prepared(event: Event) -> tuple[Event, dict[str, Any], str]:
    # Worked out before the transaction: on SQLite every writer waits for it to end.
    payload = event_to_json(event)
    return event, payload, body_hash(event, payload)


def _apply_alone(
    uow_factory: EventUnitOfWorkFactory,
    rules: ActiveRules,
    item: tuple[Event, dict[str, Any], str],
    clock: Clock,
) -> Outcome:
    """One event in its own transaction. A connection that died under it is replaced
    and the event tried once more (safe: a commit that did land makes the retry a
    repeat); a second loss answers StorageUnavailable, never an unexplained failure."""
    for attempt in (1, 2):
        try:
            return _apply_together(uow_factory, rules, [item], clock)[0]
        except ConnectionLost as lost:
            if attempt == 2:
                return StorageUnavailable(f"the database could not be reached: {lost}")
        except Exception as error:
            return _after_failure(uow_factory, item, error)
    raise AssertionError("unreachable")


def _after_failure(
    uow_factory: EventUnitOfWorkFactory, item: tuple[Event, dict[str, Any], str], error: Exception
) -> Outcome:
    """A lone event's transaction failed. If its event_id was committed first under
    another member's lock, it is a repeat; otherwise the failure is the event's own."""
    if isinstance(error, DuplicateEvent):
        event, _payload, digest = item
        with uow_factory() as uow:
            earlier = uow.store.find_event(event.event_id)
        if earlier is not None:
            try:
                return _repeat(earlier, digest)
            except EventConflict as conflict:
                return conflict
    return error


def _apply_together(
    uow_factory: EventUnitOfWorkFactory,
    rules: ActiveRules,
    prepared: Sequence[tuple[Event, dict[str, Any], str]],
    clock: Clock,
) -> list[Outcome]:
    events = [event for event, _payload, _digest in prepared]
    with uow_factory() as uow:
        store = uow.store
        loaded = store.lock_and_read(group_reads(rules, events, clock()))
        members = WorkingSet.loaded(loaded, store, rules.budgeted)
        outcomes: list[Outcome] = []
        for event, payload, digest in prepared:
            try:
                outcomes.append(record_event(members, rules, event, digest, payload, clock))
            except EventConflict as conflict:
                outcomes.append(conflict)
        store.write_group(members.write, clock())
        uow.commit()
    return outcomes


def group_reads(rules: ActiveRules, events: Sequence[Event], now: datetime) -> GroupReads:
    programme = rules.ruleset.programme
    tiers = programme.tiers
    earliest = min(event.occurred_at for event in events)
    customer_ids = sorted({event.customer_id for event in events})
    return GroupReads(
        customer_ids=tuple(customer_ids),
        referrers=tuple(sorted({e.referrer_id for e in events if e.referrer_id is not None})),
        event_ids=tuple(sorted({event.event_id for event in events})),
        orders_since=earliest - max(programme.rfm.window, tiers.window),
        order_ids=tuple(
            sorted({e.order_id for e in events if e.order_id is not None and e.type in ORDERS})
        ),
        rule_keys=rules.limited,
        lots_of=tuple(sorted({e.customer_id for e in events if e.type == "refund"})),
        earned_since=earliest - tiers.window if tiers.metric == "points" else None,
        now=now,
        held_for=_orders_of(events, "purchase"),
        refunded_orders=_orders_of(events, "refund"),
    )


def _orders_of(events: Sequence[Event], kind: str) -> tuple[str, ...]:
    return tuple(sorted({e.order_id for e in events if e.order_id is not None and e.type == kind}))


ORDERS = ("purchase", "refund")


def _repeat(earlier: StoredEvent, digest: str) -> EventOutcome:
    if earlier.body_hash != digest:
        raise EventConflict(
            f"event {earlier.event_id!r} was already applied with a different body; "
            "send a new event_id for a new event"
        )
    return EventOutcome("duplicate", {**earlier.result, "status": "duplicate"})


def record_event(
    members: WorkingSet,
    rules: ActiveRules,
    event: Event,
    digest: str,
    payload: dict[str, Any],
    clock: Clock,
) -> EventOutcome:
    """Decide one event against the group's members in memory and fold its changes in."""
    earlier = members.event(event.event_id)
    if earlier is not None:
        return _repeat(earlier, digest)
    member = members.member(event.customer_id, clock())
    gathered = gather(members, rules, event, member)
    budgets = members.budgets_used(rules.budgeted)
    evaluation, postings = _decide_with_locks(
        members, rules, event, gathered, member, clock, budgets
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
    refunded = (
        refund_order(members, rules, changes, event, effects, clock())
        if event.type == "refund"
        else Decimal(0)
    )
    _awards(changes, event, evaluation, rules)
    if event.type == "purchase" and event.order_id is not None and event.amount is not None:
        _record_order(changes, event, evaluation)
        changes.referrer_awards = referrer_awards_of(event, evaluation.effects)
    changes.budgets.extend(spent_from_budgets(event, evaluation.effects, rules.budgeted))
    _tiers_and_offers(changes, evaluation)
    _referral(changes, event, gathered, rules)
    changes.messages = mark_duplicates(
        members,
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
    update_member(member, event, tuple(effects), refunded)
    member.segment = segment_after(rules.ruleset.programme.rfm, gathered.snapshot, event)
    if members.keeps_writes:
        # Stored with the event: an explanation later re-evaluates from exactly this.
        changes.trace = trace_record(event, gathered.snapshot, evaluation, budgets, clock())
    # A refund of an order not known yet is held: its answer says so.
    held = event.type == "refund" and bool(changes.held_refunds)
    followed: list[tuple[list[Effect], Changes]] = []
    if event.type == "purchase" and members.held_refunds(event.customer_id, event.order_id or ""):
        # Refunds that came before this purchase apply once it is in: its answer shows
        # its earning and their clawbacks, and the event is kept with that answer.
        changes.new_event = False
        members.apply(changes)
        followed = apply_held_refunds(members, rules, event, clock)
        for more, _changes in followed:
            effects.extend(more)
    answer = event_answer(event.event_id, "applied", effects, member, rules, changes.offers, held)
    changes.event = replace(changes.event, result=answer)
    if followed:
        members.add_event(changes.event)
    else:
        members.apply(changes)
    return EventOutcome(
        "applied",
        answer,
        replace(evaluation, effects=tuple(effects)),
        changes,
        tuple(more for _effects, more in followed),
    )


def _decide_with_locks(
    store: WorkingSet,
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
    # The upgrade this purchase qualified for, kept with the order for a refund to undo.
    qualified = [
        e for e in evaluation.effects if isinstance(e, ChangeTier) and e.reason == "qualified"
    ]
    # What this purchase adds to its order; storage adds it to a later part of the same
    # order (a split shipment) in the same statement that records a new one.
    changes.order = OrderRecord(
        event.customer_id,
        event.order_id,
        event.amount,
        event.occurred_at,
        points_earned=points,
        event_id=event.event_id,
        tier_before=qualified[-1].from_tier if qualified else None,
        tier_reached=qualified[-1].to_tier if qualified else None,
        tier_reached_at=event.occurred_at if qualified else None,
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
    held: bool = False,
) -> dict[str, Any]:
    """``held``: a refund of an order not known yet, kept until its purchase comes."""
    shown = [effect.as_dict() for effect in effects]
    codes = iter(offers or [])
    for body in shown:
        if body["type"] == "issue_offer":
            issued = next(codes, None)
            if issued is not None:
                body["code"] = issued.code
    answer: dict[str, Any] = {"event_id": event_id, "status": status}
    if held:
        answer["held"] = True
    answer["effects"] = shown
    answer["customer"] = customer_summary(member, rules)
    answer["rules_version"] = rules.version
    return answer


def customer_summary(member: MemberRecord, rules: ActiveRules) -> dict[str, Any]:
    level = rules.ruleset.programme.tiers.level(member.tier)
    return {
        "customer_id": member.customer_id,
        "tier": member.tier or (level.name if level else None),
        "points": {"available": member.points_available, "pending": member.points_pending},
    }
