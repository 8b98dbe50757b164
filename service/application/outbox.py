"""The outbox dispatcher: deliver due messages through their channels, within the
member's caps and quiet hours, retrying with exponential backoff until a message is sent
or dead.

Each message is claimed in one short transaction (under the member's lock, so caps count
right even with two dispatchers), delivered outside any transaction, and then recorded.
A dispatcher that dies mid-delivery leaves a claim that lapses, and the message is tried
again: delivery is at least once, and receivers dedupe on the message id.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from service.application.delivery import Channel, Delivery, DeliveryFailed
from service.application.messages import DEFAULT_CHANNEL
from service.application.ports import StoredMessage
from service.core.messaging import DEFER, SUPPRESS, Pending, decide, history_span
from service.core.programme import Programme

if TYPE_CHECKING:  # jobs.context imports this module: a JobContext holds an OutboxPolicy
    from service.application.jobs.context import JobUnitOfWork, JobUnitOfWorkFactory

DUE = ("queued", "deferred")
log = logging.getLogger("loyalty.outbox")


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    max_attempts: int = 5
    backoff: timedelta = timedelta(minutes=1)  # doubles after each failed attempt
    max_backoff: timedelta = timedelta(hours=6)
    lease: timedelta = timedelta(minutes=5)  # how long a claimed message is held
    default_channel: str = "log"  # for system messages


def retry_delay(policy: OutboxPolicy, attempts: int) -> timedelta:
    """1, 2, 4, 8 ... times the backoff after the 1st, 2nd, 3rd ... failure, capped."""
    return min(policy.backoff * (1 << max(attempts - 1, 0)), policy.max_backoff)


def dispatch_outbox(
    uow_factory: JobUnitOfWorkFactory,
    programme: Programme,
    channels: Mapping[str, Channel],
    policy: OutboxPolicy,
    now: datetime,
    *,
    batch: int = 200,
    most: int = 5000,
) -> dict[str, int]:
    """Deliver what is due at ``now``; counts of what became of each message looked at."""
    counts: Counter[str] = Counter()
    seen: set[int] = set()
    while sum(counts.values()) < most:
        with uow_factory() as uow:
            due = [d for d in uow.store.due_message_ids(now, batch) if d[0] not in seen]
        if not due:
            break
        for message_id, customer_id in due:
            seen.add(message_id)
            counts[
                dispatch_one(uow_factory, programme, channels, policy, message_id, customer_id, now)
            ] += 1
    return dict(sorted(counts.items()))


def dispatch_one(
    uow_factory: JobUnitOfWorkFactory,
    programme: Programme,
    channels: Mapping[str, Channel],
    policy: OutboxPolicy,
    message_id: int,
    customer_id: str,
    now: datetime,
) -> str:
    """Claim, deliver and record one message; what became of it (sent, deferred, ...)."""
    outcome, delivery = _claim(
        uow_factory, programme, channels, policy, message_id, customer_id, now
    )
    if delivery is None:
        return outcome
    try:
        channels[delivery.channel].send(delivery)
    except DeliveryFailed as failure:
        return _record(uow_factory, policy, message_id, now, failure)
    except Exception as error:  # an adapter's bug must not strand the message
        log.exception("channel %s failed on message %s", delivery.channel, message_id)
        crash = DeliveryFailed(f"{type(error).__name__}: {error}")
        return _record(uow_factory, policy, message_id, now, crash)
    return _record(uow_factory, policy, message_id, now, None)


def _claim(
    uow_factory: JobUnitOfWorkFactory,
    programme: Programme,
    channels: Mapping[str, Channel],
    policy: OutboxPolicy,
    message_id: int,
    customer_id: str,
    now: datetime,
) -> tuple[str, Delivery | None]:
    with uow_factory() as uow:
        store = uow.store
        member = store.lock_member(customer_id, now)
        message = store.lock_message(message_id)
        if message is None or not _due(message, now):
            return "skipped", None
        name = policy.default_channel if message.channel == DEFAULT_CHANNEL else message.channel
        message = replace(message, channel=name)
        if name not in channels:
            return _close(uow, message, "dead", f"channel {name!r} is not configured")
        if name == "email" and not member.email:
            return _close(uow, message, "suppressed", "the member has no email address")
        messaging = programme.messaging
        zone = member.timezone or programme.timezone
        history = store.sent_history(customer_id, now - history_span(messaging), now)
        pending = Pending(message.category, name, message.urgent, message.stale_at)
        decision = decide(messaging, pending, history, now, zone)
        if decision.action == SUPPRESS:
            return _close(uow, message, "suppressed", decision.reason)
        if decision.action == DEFER:
            store.save_message(
                replace(
                    message, status="deferred", reason=decision.reason, next_attempt_at=decision.at
                )
            )
            uow.commit()
            return "deferred", None
        attempt = message.attempts + 1
        store.save_message(
            replace(
                message,
                attempts=attempt,
                last_attempt_at=now,
                claimed_until=now + policy.lease,
                reason=f"sending, attempt {attempt} of {policy.max_attempts}",
            )
        )
        uow.commit()
    delivery = Delivery(
        message.id,
        message.customer_id,
        message.template,
        message.category,
        name,
        message.data,
        message.created_at,
        attempt,
        member.email,
    )
    return "claimed", delivery


def _due(message: StoredMessage, now: datetime) -> bool:
    if message.status not in DUE:
        return False
    if message.next_attempt_at is None or message.next_attempt_at > now:
        return False
    return message.claimed_until is None or message.claimed_until <= now


def _close(
    uow: JobUnitOfWork, message: StoredMessage, status: str, reason: str
) -> tuple[str, None]:
    uow.store.save_message(replace(message, status=status, reason=reason, claimed_until=None))
    uow.commit()
    return status, None


def _record(
    uow_factory: JobUnitOfWorkFactory,
    policy: OutboxPolicy,
    message_id: int,
    now: datetime,
    failure: DeliveryFailed | None,
) -> str:
    with uow_factory() as uow:
        message = uow.store.lock_message(message_id)
        if message is None:
            return "skipped"
        attempt = message.attempts
        if failure is None:
            status, changed = (
                "sent",
                replace(
                    message,
                    status="sent",
                    sent_at=now,
                    claimed_until=None,
                    reason=f"delivered by {message.channel} on attempt {attempt}",
                ),
            )
        elif failure.permanent or attempt >= policy.max_attempts:
            why = "will not succeed" if failure.permanent else f"gave up after {attempt} attempts"
            status, changed = (
                "dead",
                replace(
                    message,
                    status="dead",
                    claimed_until=None,
                    reason=f"{why}; last: {failure.reason}",
                ),
            )
        else:
            retry_at = now + retry_delay(policy, attempt)
            status, changed = (
                "retrying",
                replace(
                    message,
                    status="queued",
                    claimed_until=None,
                    next_attempt_at=retry_at,
                    reason=f"attempt {attempt} of {policy.max_attempts} failed: {failure.reason}; "
                    f"retry at {retry_at.isoformat()}",
                ),
            )
        uow.store.save_message(changed)
        uow.commit()
    return status
