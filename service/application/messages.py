"""What an event or a job queues for a member: rule messages and system messages.

Messages are written to the outbox in the same transaction as what caused them; the
dispatcher (service.application.outbox) delivers them later.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from service.application.ports import IssuedOffer, NewMessage, StoredMessage
from service.core.effects import ChangeTier, Effect, SendMessage
from service.core.errors import NotFound
from service.core.events import Event
from service.core.expiry import ExpiryWarning
from service.core.messaging import TRANSACTIONAL
from service.core.programme import Programme

if TYPE_CHECKING:  # the jobs import this module (through the outbox and the event path)
    from service.application.jobs.context import JobUnitOfWorkFactory

# System messages go by the channel LOYALTY_MESSAGE_CHANNEL names, resolved at dispatch.
DEFAULT_CHANNEL = "default"
TIER_CHANGED, OFFER_ISSUED, POINTS_EXPIRING = "tier-changed", "offer-issued", "points-expiring"


def event_messages(
    event: Event,
    effects: Sequence[Effect],
    offers: Sequence[IssuedOffer],
    programme: Programme,
    now: datetime,
) -> list[NewMessage]:
    """The messages one applied event queues: its rules' ``send_message`` effects, a notice
    of a tier change, and a notice of each offer issued by a rule that sent no message of
    its own (a rule that speaks for itself is not doubled)."""
    messages = []
    speaking = set()
    for effect in effects:
        if isinstance(effect, SendMessage):
            speaking.add((effect.campaign, effect.rule))
            messages.append(
                NewMessage(
                    effect.template,
                    effect.channel,
                    effect.category,
                    {"event_id": event.event_id, "event_type": event.type},
                    urgent=effect.urgent,
                    dedupe_key=effect.dedupe_key,
                    stale_at=event.occurred_at + effect.stale_after if effect.stale_after else None,
                    campaign=effect.campaign,
                    rule=effect.rule,
                    created_at=now,
                )
            )
        elif isinstance(effect, ChangeTier):
            messages.append(tier_message(effect, now))
    for issued in offers:
        if (issued.campaign, issued.rule) not in speaking:
            messages.append(offer_message(issued, programme, now))
    return messages


def tier_message(change: ChangeTier, now: datetime) -> NewMessage:
    data: dict[str, Any] = {"from": change.from_tier, "to": change.to_tier, "reason": change.reason}
    if change.until is not None:
        data["until"] = change.until.isoformat()
    return NewMessage(
        TIER_CHANGED,
        DEFAULT_CHANNEL,
        TRANSACTIONAL,
        data,
        source="system",
        campaign=change.campaign,
        rule=change.rule,
        created_at=now,
    )


def offer_message(issued: IssuedOffer, programme: Programme, now: datetime) -> NewMessage:
    offer = programme.offer(issued.offer_id)
    data: dict[str, Any] = {
        "offer": issued.offer_id,
        "code": issued.code,
        "valid_until": issued.valid_until.isoformat(),
    }
    if offer is not None:
        data["title"] = offer.title
        if offer.discount_percent is not None:
            data["discount_percent"] = format(offer.discount_percent, "f")
    return NewMessage(
        OFFER_ISSUED,
        DEFAULT_CHANNEL,
        "marketing",
        data,
        source="system",
        stale_at=issued.valid_until,  # an offer no longer valid is not worth announcing
        campaign=issued.campaign,
        rule=issued.rule,
        created_at=now,
    )


def expiry_message(warning: ExpiryWarning, now: datetime) -> NewMessage:
    return NewMessage(
        POINTS_EXPIRING,
        DEFAULT_CHANNEL,
        TRANSACTIONAL,
        {
            "points": warning.points,
            "expires_on": warning.expires_on.isoformat(),
            "expires_at": warning.expires_at.isoformat(),
        },
        source="system",
        dedupe_key=warning.dedupe_key,
        stale_at=warning.expires_at,
        created_at=now,
    )


class DedupeKeys(Protocol):
    def dedupe_keys_used(self, customer_id: str, keys: Iterable[str]) -> set[str]: ...


def mark_duplicates(
    store: DedupeKeys, customer_id: str, messages: Sequence[NewMessage]
) -> list[NewMessage]:
    """A dedupe key is used once per member: later messages with it are suppressed, and the
    outbox says so. Called under the member's lock, so two events cannot both claim a key."""
    keys = {m.dedupe_key for m in messages if m.dedupe_key is not None}
    used = store.dedupe_keys_used(customer_id, keys) if keys else set()
    marked = []
    for message in messages:
        key = message.dedupe_key
        if key is not None and key in used:
            message = replace(
                message,
                status="suppressed",
                reason=f"duplicate: a message with dedupe key {key!r} was already queued",
            )
        elif key is not None:
            used.add(key)
        marked.append(message)
    return marked


def messages_view(
    uow_factory: JobUnitOfWorkFactory, customer_id: str, cursor: int | None, limit: int
) -> dict[str, Any]:
    """A member's messages, newest first, with what became of each and why."""
    with uow_factory() as uow:
        if uow.store.read_member(customer_id) is None:
            raise NotFound(f"no member {customer_id!r}")
        rows = uow.store.member_messages(customer_id, cursor, limit + 1)
    page = rows[:limit]
    return {
        "messages": [message_view(message) for message in page],
        "next_cursor": str(page[-1].id) if len(rows) > limit else None,
    }


def message_view(message: StoredMessage) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "id": message.id,
        "template": message.template,
        "channel": message.channel,
        "category": message.category,
        "source": message.source,
        "urgent": message.urgent,
        "status": message.status,
        "reason": message.reason,
        "attempts": message.attempts,
        "dedupe_key": message.dedupe_key,
        "campaign": message.campaign,
        "rule": message.rule,
        "event_id": message.event_id,
        "data": message.data,
        "created_at": iso(message.created_at),
        "next_attempt_at": iso(message.next_attempt_at)
        if message.status in ("queued", "deferred")
        else None,
        "stale_at": iso(message.stale_at),
        "sent_at": iso(message.sent_at),
    }
