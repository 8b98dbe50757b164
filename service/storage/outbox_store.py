"""Storage for the outbox: queueing messages, finding due ones, recording what became of
them, and the history frequency caps count."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from service.application.ports import NewMessage, StoredMessage
from service.core.messaging import Sent
from service.storage.tables import outbox

DUE = ("queued", "deferred")
# Fields a dispatcher changes; the rest are written once, when the message is queued.
MUTABLE = (
    "channel",
    "status",
    "reason",
    "attempts",
    "next_attempt_at",
    "claimed_until",
    "last_attempt_at",
    "sent_at",
)


class OutboxStore:
    db: Connection
    dialect: str

    def dedupe_keys_used(self, customer_id: str, keys: Iterable[str]) -> set[str]:
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        rows = self.db.execute(
            select(outbox.c.dedupe_key).where(
                outbox.c.customer_id == customer_id, outbox.c.dedupe_key.in_(wanted)
            )
        )
        return {key for (key,) in rows}

    def add_messages(
        self, customer_id: str, event_id: str | None, messages: Sequence[NewMessage]
    ) -> None:
        self.add_messages_of([(customer_id, event_id, message) for message in messages])

    def add_messages_of(self, items: Sequence[tuple[str, str | None, NewMessage]]) -> None:
        """Messages of several members and events, in one statement."""
        if not items:
            return
        rows = []
        for customer_id, event_id, message in items:
            created = message.created_at
            queued = message.status == "queued"
            rows.append(
                {
                    "customer_id": customer_id,
                    "event_id": event_id,
                    "source": message.source,
                    "template": message.template,
                    "channel": message.channel,
                    "category": message.category,
                    "urgent": int(message.urgent),
                    "data": message.data,
                    "campaign": message.campaign,
                    "rule": message.rule,
                    "dedupe_key": message.dedupe_key,
                    "dedupe_claim": message.dedupe_key if queued else None,
                    "status": message.status,
                    "reason": message.reason,
                    "attempts": 0,
                    "created_at": created,
                    "stale_at": message.stale_at,
                    "next_attempt_at": created if queued else None,
                }
            )
        self.db.execute(insert(outbox), rows)

    def due_message_ids(self, now: datetime, limit: int) -> list[tuple[int, str]]:
        """(id, customer) of queued or deferred messages whose time has come and that no
        dispatcher holds, oldest due first."""
        rows = self.db.execute(
            select(outbox.c.id, outbox.c.customer_id)
            .where(
                outbox.c.status.in_(DUE),
                outbox.c.next_attempt_at <= now,
                or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now),
            )
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(limit)
        )
        return [(message_id, customer_id) for message_id, customer_id in rows]

    def lock_message(self, message_id: int) -> StoredMessage | None:
        query = select(outbox).where(outbox.c.id == message_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = self.db.execute(query).mappings().first()
        return _message(row) if row is not None else None

    def save_message(self, message: StoredMessage) -> None:
        values: dict[str, Any] = {name: getattr(message, name) for name in MUTABLE}
        if message.status in ("suppressed", "dead"):
            values["next_attempt_at"] = None
        self.db.execute(update(outbox).where(outbox.c.id == message.id).values(values))

    def sent_history(self, customer_id: str, since: datetime, now: datetime) -> list[Sent]:
        """What caps count: messages sent since ``since``, and those on their way now."""
        rows = self.db.execute(
            select(
                outbox.c.category, outbox.c.channel, outbox.c.sent_at, outbox.c.last_attempt_at
            ).where(
                outbox.c.customer_id == customer_id,
                or_(
                    and_(outbox.c.status == "sent", outbox.c.sent_at > since),
                    and_(outbox.c.status.in_(DUE), outbox.c.claimed_until > now),
                ),
            )
        )
        return [
            Sent(category, channel, sent_at or attempted)
            for category, channel, sent_at, attempted in rows
        ]

    def member_messages(
        self, customer_id: str, before_id: int | None, limit: int
    ) -> list[StoredMessage]:
        query = select(outbox).where(outbox.c.customer_id == customer_id)
        if before_id is not None:
            query = query.where(outbox.c.id < before_id)
        rows = self.db.execute(query.order_by(outbox.c.id.desc()).limit(limit)).mappings()
        return [_message(row) for row in rows]


def _message(row: Any) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        customer_id=row["customer_id"],
        event_id=row["event_id"],
        source=row["source"],
        template=row["template"],
        channel=row["channel"],
        category=row["category"],
        urgent=bool(row["urgent"]),
        data=dict(row["data"] or {}),
        campaign=row["campaign"],
        rule=row["rule"],
        dedupe_key=row["dedupe_key"],
        status=row["status"],
        reason=row["reason"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        stale_at=row["stale_at"],
        next_attempt_at=row["next_attempt_at"],
        claimed_until=row["claimed_until"],
        last_attempt_at=row["last_attempt_at"],
        sent_at=row["sent_at"],
    )
