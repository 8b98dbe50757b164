"""The SQLAlchemy Core adapter for the use cases' storage port (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from service.application.ports import (
    Changes,
    DuplicateEvent,
    LedgerRow,
    MemberRecord,
    OrderRecord,
    StoredEvent,
)
from service.core.ledger import Lot
from service.storage.tables import (
    campaign_budgets,
    events,
    ledger_entries,
    members,
    orders,
    point_lots,
    rule_firings,
    rules_versions,
)

MEMBER_FIELDS = [c.name for c in members.columns]


class SqlStore:
    def __init__(self, connection: Connection) -> None:
        self.db = connection
        self.dialect = connection.dialect.name

    # -- events

    def find_event(self, event_id: str) -> StoredEvent | None:
        row = (
            self.db.execute(select(events).where(events.c.event_id == event_id)).mappings().first()
        )
        if row is None:
            return None
        return StoredEvent(
            row["event_id"],
            row["customer_id"],
            row["type"],
            row["occurred_at"],
            row["body_hash"],
            row["payload"],
            row["result"],
            row["rules_version"],
        )

    # -- members

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord:
        values = {
            "customer_id": customer_id,
            "first_seen_at": now,
            "tags": [],
            "points_available": 0,
            "points_pending": 0,
            "points_debt": 0,
            "lifetime_spend": Decimal(0),
            "order_count": 0,
            "events_applied": 0,
        }
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self.db.execute(dialect_insert(members).values(values).on_conflict_do_nothing())
        query = select(members).where(members.c.customer_id == customer_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = self.db.execute(query).mappings().one()
        return _member(row)

    def read_member(self, customer_id: str) -> MemberRecord | None:
        row = (
            self.db.execute(select(members).where(members.c.customer_id == customer_id))
            .mappings()
            .first()
        )
        return _member(row) if row is not None else None

    def rule_firings(
        self, customer_id: str, rule_keys: Iterable[str]
    ) -> dict[str, tuple[datetime, ...]]:
        rows = self.db.execute(
            select(rule_firings.c.rule_key, rule_firings.c.occurred_at)
            .where(
                rule_firings.c.customer_id == customer_id,
                rule_firings.c.rule_key.in_(list(rule_keys)),
            )
            .order_by(rule_firings.c.occurred_at)
        )
        found: dict[str, list[datetime]] = defaultdict(list)
        for key, at in rows:
            found[key].append(at)
        return {key: tuple(times) for key, times in found.items()}

    # -- budgets

    def budgets_used(self, campaigns: Iterable[str]) -> dict[str, int]:
        rows = self.db.execute(
            select(campaign_budgets.c.campaign, campaign_budgets.c.points_used).where(
                campaign_budgets.c.campaign.in_(list(campaigns))
            )
        )
        return {campaign: used for campaign, used in rows}

    def reserve_budget(self, campaign: str, total: int, requested: int) -> int:
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self.db.execute(
            dialect_insert(campaign_budgets)
            .values(campaign=campaign, points_used=0)
            .on_conflict_do_nothing()
        )
        query = select(campaign_budgets.c.points_used).where(
            campaign_budgets.c.campaign == campaign
        )
        if self.dialect == "postgresql":
            query = query.with_for_update()
        used = int(self.db.execute(query).scalar_one())
        granted = max(0, min(requested, total - used))
        if granted:
            self.db.execute(
                update(campaign_budgets)
                .where(campaign_budgets.c.campaign == campaign)
                .values(points_used=campaign_budgets.c.points_used + granted)
            )
        return granted

    # -- lots and orders

    def lots(self, customer_id: str) -> list[Lot]:
        rows = self.db.execute(
            select(point_lots).where(
                point_lots.c.customer_id == customer_id, point_lots.c.remaining > 0
            )
        ).mappings()
        return [
            Lot(
                r["id"],
                r["earned_at"],
                r["remaining"],
                r["expires_at"],
                r["order_id"],
                bool(r["pending"]),
            )
            for r in rows
        ]

    def find_order(self, customer_id: str, order_id: str) -> OrderRecord | None:
        row = (
            self.db.execute(
                select(orders).where(
                    orders.c.customer_id == customer_id, orders.c.order_id == order_id
                )
            )
            .mappings()
            .first()
        )
        return OrderRecord(**row) if row is not None else None

    # -- writing one event's changes

    def apply(self, changes: Changes) -> None:
        now = datetime.now(UTC)
        event = changes.event
        try:
            self.db.execute(
                insert(events).values(
                    event_id=event.event_id,
                    customer_id=event.customer_id,
                    type=event.type,
                    occurred_at=event.occurred_at,
                    recorded_at=now,
                    body_hash=event.body_hash,
                    payload=event.payload,
                    result=event.result,
                    rules_version=event.rules_version,
                )
            )
        except IntegrityError as error:
            raise DuplicateEvent(event.event_id) from error
        lot_ids = []
        for lot in changes.new_lots:
            lot_ids.append(
                self.db.execute(
                    insert(point_lots)
                    .values(
                        customer_id=event.customer_id,
                        event_id=event.event_id,
                        order_id=lot.order_id,
                        earned_at=lot.earned_at,
                        available_at=lot.available_at,
                        expires_at=lot.expires_at,
                        points=lot.points,
                        remaining=lot.points,
                        pending=int(lot.pending),
                    )
                    .returning(point_lots.c.id)
                ).scalar_one()
            )
        for take in changes.takes:
            self.db.execute(
                update(point_lots)
                .where(point_lots.c.id == take.lot_id)
                .values(remaining=point_lots.c.remaining - take.points)
            )
        if changes.ledger:
            self.db.execute(
                insert(ledger_entries),
                [
                    {
                        "customer_id": event.customer_id,
                        "kind": line.kind,
                        "points": line.points,
                        "debt": line.debt,
                        "event_id": event.event_id,
                        "campaign": line.campaign,
                        "rule": line.rule,
                        "rules_version": changes.rules_version,
                        "order_id": line.order_id,
                        "note": line.note,
                        "lot_id": lot_ids[line.new_lot]
                        if line.new_lot is not None
                        else line.lot_id,
                        "occurred_at": event.occurred_at,
                        "recorded_at": now,
                    }
                    for line in changes.ledger
                ],
            )
        if changes.firings:
            self.db.execute(
                insert(rule_firings),
                [
                    {
                        "customer_id": event.customer_id,
                        "rule_key": key,
                        "occurred_at": event.occurred_at,
                        "event_id": event.event_id,
                    }
                    for key in changes.firings
                ],
            )
        if changes.order is not None:
            self._save_order(changes.order, changes.new_order)
        member = changes.member
        self.db.execute(
            update(members)
            .where(members.c.customer_id == member.customer_id)
            .values(
                {name: getattr(member, name) for name in MEMBER_FIELDS if name != "customer_id"}
            )
        )

    def _save_order(self, order: OrderRecord, new: bool) -> None:
        values = {
            "amount": order.amount,
            "occurred_at": order.occurred_at,
            "points_earned": order.points_earned,
            "points_clawed": order.points_clawed,
            "refunded_amount": order.refunded_amount,
        }
        if new:
            self.db.execute(
                insert(orders).values(
                    customer_id=order.customer_id, order_id=order.order_id, **values
                )
            )
        else:
            self.db.execute(
                update(orders)
                .where(
                    and_(
                        orders.c.customer_id == order.customer_id,
                        orders.c.order_id == order.order_id,
                    )
                )
                .values(values)
            )

    # -- reads for the API

    def ledger_page(
        self, customer_id: str, before_id: int | None, limit: int
    ) -> Sequence[LedgerRow]:
        query = select(ledger_entries).where(ledger_entries.c.customer_id == customer_id)
        if before_id is not None:
            query = query.where(ledger_entries.c.id < before_id)
        rows = self.db.execute(query.order_by(ledger_entries.c.id.desc()).limit(limit)).mappings()
        return [
            LedgerRow(
                r["id"],
                r["kind"],
                r["points"],
                r["debt"],
                r["event_id"],
                r["campaign"],
                r["rule"],
                r["rules_version"],
                r["order_id"],
                r["occurred_at"],
                r["recorded_at"],
                r["note"],
            )
            for r in rows
        ]

    def spend_in_window(self, customer_id: str, since: datetime) -> tuple[Decimal, int]:
        rows = self.db.execute(
            select(orders.c.amount, orders.c.refunded_amount).where(
                orders.c.customer_id == customer_id, orders.c.occurred_at >= since
            )
        ).all()
        return sum((a - r for a, r in rows), Decimal(0)), len(rows)

    def expiring(self, customer_id: str, until: datetime) -> list[tuple[int, datetime]]:
        rows = self.db.execute(
            select(func.sum(point_lots.c.remaining), point_lots.c.expires_at)
            .where(
                point_lots.c.customer_id == customer_id,
                point_lots.c.remaining > 0,
                point_lots.c.expires_at.is_not(None),
                point_lots.c.expires_at <= until,
            )
            .group_by(point_lots.c.expires_at)
            .order_by(point_lots.c.expires_at)
        ).all()
        return [(int(points), at) for points, at in rows]

    def record_rules_version(self, version: str, files: dict[str, str], at: datetime) -> None:
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self.db.execute(
            dialect_insert(rules_versions)
            .values(version=version, files=files, first_loaded_at=at)
            .on_conflict_do_nothing()
        )


def _member(row: Any) -> MemberRecord:
    data = dict(row)
    data["tags"] = list(data.get("tags") or [])
    return MemberRecord(**data)
