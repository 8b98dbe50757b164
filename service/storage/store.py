"""The SQLAlchemy Core adapter for the use cases' storage port (SQLite and PostgreSQL).

Reads here; the writes of one event are in ``apply``; offers and redemptions live in
service.storage.member_store.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Select, and_, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from service.application.ports import (
    Changes,
    DuplicateEvent,
    LedgerRow,
    MemberRecord,
    OrderAward,
    OrderRecord,
    Posting,
    StoredEvent,
)
from service.core.evaluation import BudgetUse
from service.core.ledger import Lot
from service.storage.member_store import MemberOffersStore
from service.storage.tables import (
    campaign_budgets,
    events,
    ledger_entries,
    member_offers,
    members,
    order_awards,
    orders,
    point_lots,
    referrals,
    rule_firings,
    rules_versions,
    tier_history,
)

MEMBER_FIELDS = [c.name for c in members.columns]
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


class SqlStore(MemberOffersStore):
    def __init__(self, connection: Connection) -> None:
        self.db = connection
        self.dialect = connection.dialect.name

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def _locked(self, query: Select[Any]) -> Select[Any]:
        # SQLite has one writer at a time (BEGIN IMMEDIATE), so it needs no row locks.
        return query.with_for_update() if self.dialect == "postgresql" else query

    # -- events and members

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
            "referral_code": "".join(secrets.choice(CODE_ALPHABET) for _ in range(10)),
        }
        self.db.execute(self._insert(members).values(values).on_conflict_do_nothing())
        query = self._locked(select(members).where(members.c.customer_id == customer_id))
        return _member(self.db.execute(query).mappings().one())

    def read_member(self, customer_id: str) -> MemberRecord | None:
        query = select(members).where(members.c.customer_id == customer_id)
        row = self.db.execute(query).mappings().first()
        return _member(row) if row is not None else None

    def member_by_referral_code(self, code: str) -> MemberRecord | None:
        row = (
            self.db.execute(select(members).where(members.c.referral_code == code))
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

    def tier_value(
        self, customer_id: str, metric: str, since: datetime, until: datetime
    ) -> Decimal:
        if metric == "points":
            earned = self.db.execute(
                select(func.coalesce(func.sum(ledger_entries.c.points), 0)).where(
                    ledger_entries.c.customer_id == customer_id,
                    ledger_entries.c.kind.in_(("earned", "pending")),
                    ledger_entries.c.occurred_at > since,
                    ledger_entries.c.occurred_at <= until,
                )
            ).scalar_one()
            return Decimal(earned)
        spend, count = self.orders_between(customer_id, since, until)
        return Decimal(count) if metric == "orders" else spend

    def orders_between(
        self, customer_id: str, since: datetime, until: datetime
    ) -> tuple[Decimal, int]:
        rows = self.db.execute(
            select(orders.c.amount, orders.c.refunded_amount).where(
                orders.c.customer_id == customer_id,
                orders.c.occurred_at > since,
                orders.c.occurred_at <= until,
            )
        ).all()
        kept = [(amount, refunded) for amount, refunded in rows if refunded < amount]
        return sum((a - r for a, r in kept), Decimal(0)), len(kept)

    def referrals_rewarded(self, referrer_id: str) -> tuple[datetime, ...]:
        rows = self.db.execute(
            select(referrals.c.occurred_at)
            .where(referrals.c.referrer_id == referrer_id, referrals.c.rewarded == 1)
            .order_by(referrals.c.occurred_at)
        )
        return tuple(at for (at,) in rows)

    # -- budgets

    def budgets_used(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]:
        rows = self.db.execute(
            select(campaign_budgets).where(campaign_budgets.c.campaign.in_(list(campaigns)))
        ).mappings()
        return {
            r["campaign"]: BudgetUse(r["points_used"], r["offers_issued"], r["revenue"])
            for r in rows
        }

    def lock_budgets(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]:
        names = sorted(campaigns)
        for name in names:
            self.db.execute(
                self._insert(campaign_budgets)
                .values(campaign=name, points_used=0, offers_issued=0, revenue=Decimal(0))
                .on_conflict_do_nothing()
            )
        query = self._locked(
            select(campaign_budgets)
            .where(campaign_budgets.c.campaign.in_(names))
            .order_by(campaign_budgets.c.campaign)
        )
        rows = self.db.execute(query).mappings()
        return {
            r["campaign"]: BudgetUse(r["points_used"], r["offers_issued"], r["revenue"])
            for r in rows
        }

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
        return OrderRecord(**row) if row is not None else None  # type: ignore[arg-type]

    def order_awards(self, customer_id: str, order_id: str) -> list[OrderAward]:
        rows = self.db.execute(
            select(order_awards)
            .where(order_awards.c.customer_id == customer_id, order_awards.c.order_id == order_id)
            .order_by(order_awards.c.campaign)
        ).mappings()
        return [
            OrderAward(
                r["campaign"], r["points"], r["points_returned"], r["revenue"], r["event_id"]
            )
            for r in rows
        ]

    def order_event(self, customer_id: str, order_id: str) -> str | None:
        return self.db.execute(
            select(orders.c.event_id).where(
                orders.c.customer_id == customer_id, orders.c.order_id == order_id
            )
        ).scalar()

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
        for posting in changes.postings.values():
            self.write_posting(
                posting, event.event_id, event.occurred_at, changes.rules_version, now
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
        if changes.unfire_event is not None:
            self.db.execute(
                delete(rule_firings).where(rule_firings.c.event_id == changes.unfire_event)
            )
        if changes.order is not None:
            self._save_order(changes.order, changes.new_order)
        self._save_order_awards(changes)
        for budget in changes.budgets:
            self.db.execute(
                update(campaign_budgets)
                .where(campaign_budgets.c.campaign == budget.campaign)
                .values(
                    points_used=campaign_budgets.c.points_used + budget.points,
                    offers_issued=campaign_budgets.c.offers_issued + budget.offers,
                    revenue=campaign_budgets.c.revenue + budget.revenue,
                )
            )
        for move in changes.tier_moves:
            self.db.execute(
                insert(tier_history).values(
                    customer_id=event.customer_id,
                    from_tier=move.from_tier,
                    to_tier=move.to_tier,
                    reason=move.reason,
                    until=move.until,
                    event_id=event.event_id,
                    campaign=move.campaign,
                    rule=move.rule,
                    occurred_at=event.occurred_at,
                )
            )
        for offer in changes.offers:
            self.db.execute(
                insert(member_offers).values(
                    code=offer.code,
                    customer_id=event.customer_id,
                    offer_id=offer.offer_id,
                    campaign=offer.campaign,
                    rule=offer.rule,
                    event_id=event.event_id,
                    issued_at=event.occurred_at,
                    valid_until=offer.valid_until,
                    status="active",
                )
            )
        if changes.referral is not None:
            referrer_id, rewarded = changes.referral
            self.db.execute(
                insert(referrals).values(
                    referee_id=event.customer_id,
                    referrer_id=referrer_id,
                    event_id=event.event_id,
                    occurred_at=event.occurred_at,
                    rewarded=int(rewarded),
                )
            )

    def write_posting(
        self,
        posting: Posting,
        event_id: str | None,
        occurred_at: datetime,
        version: str | None,
        now: datetime,
    ) -> None:
        """One member's lots, ledger lines and balances (also used by jobs and redemptions)."""
        member = posting.member
        lot_ids = []
        for lot in posting.new_lots:
            lot_ids.append(
                self.db.execute(
                    insert(point_lots)
                    .values(
                        customer_id=member.customer_id,
                        event_id=event_id or "",
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
        for take in posting.takes:
            self.db.execute(
                update(point_lots)
                .where(point_lots.c.id == take.lot_id)
                .values(remaining=point_lots.c.remaining - take.points)
            )
        if posting.ledger:
            self.db.execute(
                insert(ledger_entries),
                [
                    {
                        "customer_id": member.customer_id,
                        "kind": line.kind,
                        "points": line.points,
                        "debt": line.debt,
                        "event_id": event_id,
                        "campaign": line.campaign,
                        "rule": line.rule,
                        "rules_version": version,
                        "order_id": line.order_id,
                        "note": line.note,
                        "lot_id": lot_ids[line.new_lot]
                        if line.new_lot is not None
                        else line.lot_id,
                        "occurred_at": occurred_at,
                        "recorded_at": now,
                    }
                    for line in posting.ledger
                ],
            )
        self.save_member(member)

    def save_member(self, member: MemberRecord) -> None:
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
            values["event_id"] = order.event_id
            self.db.execute(
                insert(orders).values(
                    customer_id=order.customer_id, order_id=order.order_id, **values
                )
            )
            return
        self.db.execute(
            update(orders)
            .where(
                and_(orders.c.customer_id == order.customer_id, orders.c.order_id == order.order_id)
            )
            .values(values)
        )

    def _save_order_awards(self, changes: Changes) -> None:
        order = changes.order
        if order is None:
            return
        for award in changes.order_awards:
            key = (
                order_awards.c.customer_id == order.customer_id,
                order_awards.c.order_id == order.order_id,
                order_awards.c.campaign == award.campaign,
            )
            found = self.db.execute(select(order_awards.c.points).where(*key)).first()
            if found is None:
                self.db.execute(
                    insert(order_awards).values(
                        customer_id=order.customer_id,
                        order_id=order.order_id,
                        campaign=award.campaign,
                        points=award.points,
                        points_returned=award.points_returned,
                        revenue=award.revenue,
                        event_id=award.event_id,
                    )
                )
            elif changes.event.type == "refund":
                self.db.execute(
                    update(order_awards).where(*key).values(points_returned=award.points_returned)
                )
            else:  # another part of the same order
                self.db.execute(
                    update(order_awards)
                    .where(*key)
                    .values(
                        points=order_awards.c.points + award.points,
                        revenue=order_awards.c.revenue + award.revenue,
                    )
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
        self.db.execute(
            self._insert(rules_versions)
            .values(version=version, files=files, first_loaded_at=at)
            .on_conflict_do_nothing()
        )


def _member(row: Any) -> MemberRecord:
    data = dict(row)
    data["tags"] = list(data.get("tags") or [])
    return MemberRecord(**data)
