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
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from service.application.ports import (
    Changes,
    DuplicateEvent,
    EventReads,
    EventTrace,
    LedgerRow,
    MemberHistory,
    MemberRecord,
    OpenedEvent,
    OrderAward,
    OrderRecord,
    Posting,
    RulesActivation,
    StoredEvent,
)
from service.core.evaluation import BudgetUse
from service.core.ledger import Lot
from service.storage.driver import Driver, Row, Statement
from service.storage.job_store import JobStore
from service.storage.member_store import MemberOffersStore
from service.storage.outbox_store import OutboxStore
from service.storage.tables import (
    campaign_budgets,
    event_traces,
    events,
    ledger_entries,
    member_offers,
    members,
    order_awards,
    orders,
    point_lots,
    referrals,
    rule_firings,
    rules_activations,
    rules_versions,
    tier_history,
)
from service.storage.types import Money, UtcDateTime

MEMBER_FIELDS = [c.name for c in members.columns]
assert MEMBER_FIELDS[0] == "customer_id"
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


class SqlStore(MemberOffersStore, OutboxStore, JobStore):
    def __init__(self, connection: Connection) -> None:
        self.db = connection
        self.dialect = connection.dialect.name
        self.driver = Driver(connection)

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def _locked(self, query: Select[Any]) -> Select[Any]:
        # SQLite has one writer at a time (BEGIN IMMEDIATE), so it needs no row locks.
        return query.with_for_update() if self.dialect == "postgresql" else query

    # -- events and members

    def open_event(self, reads: EventReads) -> OpenedEvent:
        """Lock (or create) the member, then read the event, the limited rules' firings,
        the recent orders and the budgets: one round trip on PostgreSQL."""
        batch: list[tuple[Statement, dict[str, Any]]] = [
            (LOCK_MEMBER, _new_member(reads.customer_id, reads.now)),
            (SELECT_EVENT, {"b_event_id": reads.event_id}),
            (
                SELECT_ORDERS_BETWEEN,
                {
                    "b_customer_id": reads.customer_id,
                    "b_since": reads.orders_since,
                    "b_until": reads.orders_until,
                },
            ),
        ]
        if reads.rule_keys:
            batch.append(
                (SELECT_FIRINGS, {"b_customer_id": reads.customer_id, "b_keys": reads.rule_keys})
            )
        if reads.budgets:
            batch.append((SELECT_BUDGETS, {"b_campaigns": reads.budgets}))
        member, event, orders_rows, *rest = self.driver.fetch_all(batch)
        firings = _firings(rest.pop(0)) if reads.rule_keys else {}
        budgets = _budgets(rest.pop(0)) if reads.budgets else {}
        spend, count = _recent(orders_rows)
        return OpenedEvent(
            member=_member_from_row(member[0]),
            earlier=_stored_event(event[0]) if event else None,
            firings=firings,
            recent_spend=spend,
            recent_orders=count,
            budgets=budgets,
        )

    def find_event(self, event_id: str) -> StoredEvent | None:
        rows = self.driver.fetch(SELECT_EVENT, {"b_event_id": event_id})
        return _stored_event(rows[0]) if rows else None

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord:
        rows = self.driver.fetch(LOCK_MEMBER, _new_member(customer_id, now))
        return _member_from_row(rows[0])

    def lock_members(self, customer_ids: Sequence[str], now: datetime) -> None:
        if customer_ids:
            batch = [(LOCK_MEMBER, _new_member(c, now)) for c in customer_ids]
            self.driver.fetch_all(batch, want_rows=False)

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
        keys = tuple(rule_keys)
        if not keys:
            return {}
        return _firings(
            self.driver.fetch(SELECT_FIRINGS, {"b_customer_id": customer_id, "b_keys": keys})
        )

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
        rows = self.driver.fetch(
            SELECT_ORDERS_BETWEEN,
            {"b_customer_id": customer_id, "b_since": since, "b_until": until},
        )
        return _recent(rows)

    def referrals_rewarded(self, referrer_id: str) -> tuple[datetime, ...]:
        rows = self.db.execute(
            select(referrals.c.occurred_at)
            .where(referrals.c.referrer_id == referrer_id, referrals.c.rewarded == 1)
            .order_by(referrals.c.occurred_at)
        )
        return tuple(at for (at,) in rows)

    # -- budgets

    def budgets_used(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]:
        names = tuple(campaigns)
        if not names:
            return {}
        return _budgets(self.driver.fetch(SELECT_BUDGETS, {"b_campaigns": names}))

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
        return OrderRecord(**row) if row is not None else None

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
        """Write one event's changes. The common ones (event, lots, ledger, balances,
        firings, order, budgets) go as one batch: one round trip on PostgreSQL."""
        now = datetime.now(UTC)
        event = changes.event
        batch: list[tuple[Statement, dict[str, Any]]] = [
            (
                INSERT_EVENT,
                {
                    "event_id": event.event_id,
                    "customer_id": event.customer_id,
                    "type": event.type,
                    "occurred_at": event.occurred_at,
                    "recorded_at": now,
                    "body_hash": event.body_hash,
                    "payload": event.payload,
                    "result": event.result,
                    "rules_version": event.rules_version,
                },
            )
        ]
        for posting in changes.postings.values():
            batch.extend(
                _posting_batch(
                    posting, event.event_id, event.occurred_at, changes.rules_version, now
                )
            )
        for key in changes.firings:
            batch.append(
                (
                    INSERT_FIRING,
                    {
                        "customer_id": event.customer_id,
                        "rule_key": key,
                        "occurred_at": event.occurred_at,
                        "event_id": event.event_id,
                    },
                )
            )
        if changes.order is not None and event.type == "purchase":
            batch.append(_order_addition(changes.order))
            batch.extend(_order_award_additions(changes))
        for budget in changes.budgets:
            batch.append(
                (
                    SPEND_BUDGET,
                    {
                        "b_campaign": budget.campaign,
                        "b_points": budget.points,
                        "b_offers": budget.offers,
                        "b_revenue": budget.revenue,
                    },
                )
            )
        try:
            self.driver.fetch_all(batch, want_rows=False)
        except IntegrityError as error:
            if _is_event_id_taken(error):
                raise DuplicateEvent(event.event_id) from error
            raise
        if changes.unfire_event is not None:
            self.db.execute(
                delete(rule_firings).where(rule_firings.c.event_id == changes.unfire_event)
            )
        if changes.order is not None and event.type != "purchase":
            self._save_refunded_order(changes)
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
        self.add_messages(event.customer_id, event.event_id, changes.messages)

    def write_posting(
        self,
        posting: Posting,
        event_id: str | None,
        occurred_at: datetime,
        version: str | None,
        now: datetime,
    ) -> None:
        """One member's lots, ledger lines and balances (also used by jobs and redemptions)."""
        self.driver.fetch_all(
            _posting_batch(posting, event_id, occurred_at, version, now), want_rows=False
        )

    def save_member(self, member: MemberRecord) -> None:
        values = {name: getattr(member, name) for name in MEMBER_FIELDS[1:]}
        self.driver.execute(SAVE_MEMBER, {"b_customer_id": member.customer_id, **values})

    def _save_refunded_order(self, changes: Changes) -> None:
        """A refund's order: what is refunded and clawed back, and what each campaign's
        budget got back."""
        order = changes.order
        assert order is not None
        self.db.execute(
            update(orders)
            .where(
                and_(orders.c.customer_id == order.customer_id, orders.c.order_id == order.order_id)
            )
            .values(
                amount=order.amount,
                occurred_at=order.occurred_at,
                points_earned=order.points_earned,
                points_clawed=order.points_clawed,
                refunded_amount=order.refunded_amount,
            )
        )
        for award in changes.order_awards:
            self.db.execute(
                update(order_awards)
                .where(
                    order_awards.c.customer_id == order.customer_id,
                    order_awards.c.order_id == order.order_id,
                    order_awards.c.campaign == award.campaign,
                )
                .values(points_returned=award.points_returned)
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

    # -- rules versions, activations and explanations (service.application.explain)

    def rules_version_files(self, version: str) -> dict[str, str] | None:
        query = select(rules_versions.c.files).where(rules_versions.c.version == version)
        files = self.db.execute(query).scalar()
        return dict(files) if files is not None else None

    def active_rules_version(self) -> RulesActivation | None:
        query = (
            select(rules_activations)
            .where(rules_activations.c.active_until.is_(None))
            .order_by(rules_activations.c.id.desc())
            .limit(1)
        )
        row = self.db.execute(query).mappings().first()
        return _activation(row) if row is not None else None

    def activate_rules_version(
        self, version: str, files: dict[str, str], at: datetime, source: str
    ) -> bool:
        """Make ``version`` the one every worker serves; False if it already is."""
        self.record_rules_version(version, files, at)
        current = self._locked(
            select(rules_activations.c.id, rules_activations.c.version)
            .where(rules_activations.c.active_until.is_(None))
            .order_by(rules_activations.c.id)
        )
        open_rows = self.db.execute(current).all()
        if open_rows and open_rows[-1].version == version:
            return False
        if open_rows:
            self.db.execute(
                update(rules_activations)
                .where(rules_activations.c.id.in_([r.id for r in open_rows]))
                .values(active_until=at)
            )
        self.db.execute(
            insert(rules_activations).values(version=version, active_from=at, source=source)
        )
        return True

    def rules_activations(self, limit: int) -> list[RulesActivation]:
        query = select(rules_activations).order_by(rules_activations.c.id.desc()).limit(limit)
        return [_activation(row) for row in self.db.execute(query).mappings()]

    def ledger_entry(self, customer_id: str, entry_id: int) -> LedgerRow | None:
        row = (
            self.db.execute(
                select(ledger_entries).where(
                    ledger_entries.c.customer_id == customer_id, ledger_entries.c.id == entry_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return LedgerRow(
            row["id"],
            row["kind"],
            row["points"],
            row["debt"],
            row["event_id"],
            row["campaign"],
            row["rule"],
            row["rules_version"],
            row["order_id"],
            row["occurred_at"],
            row["recorded_at"],
            row["note"],
        )

    def save_event_trace(self, trace: EventTrace) -> None:
        self.db.execute(
            self._insert(event_traces)
            .values(
                event_id=trace.event_id,
                customer_id=trace.customer_id,
                rules_version=trace.rules_version,
                engine=trace.engine,
                trace=trace.trace,
                snapshot=trace.snapshot,
                budgets=trace.budgets,
                recorded_at=trace.recorded_at,
            )
            .on_conflict_do_nothing()
        )

    def event_trace(self, event_id: str) -> EventTrace | None:
        query = select(event_traces).where(event_traces.c.event_id == event_id)
        row = self.db.execute(query).mappings().first()
        return EventTrace(**row) if row is not None else None

    def history_before(self, event: StoredEvent) -> MemberHistory:
        """What the tables say about the event's member before it was applied.

        Rows of later events are left out; values that later events update in place (an
        order's refunds, the member's tags) are as they are now.
        """
        customer_id = event.customer_id
        recorded_at = self.db.execute(
            select(events.c.recorded_at).where(events.c.event_id == event.event_id)
        ).scalar_one()
        earlier = select(events.c.event_id).where(
            events.c.customer_id == customer_id, events.c.recorded_at < recorded_at
        )
        before, first_at = self.db.execute(
            select(func.count(), func.min(events.c.occurred_at)).where(
                events.c.customer_id == customer_id, events.c.recorded_at < recorded_at
            )
        ).one()
        mine = ledger_entries.c.customer_id == customer_id
        balance = self.db.execute(
            select(func.coalesce(func.sum(ledger_entries.c.points), 0)).where(
                mine, ledger_entries.c.recorded_at < recorded_at
            )
        ).scalar_one()
        earned = self.db.execute(
            select(ledger_entries.c.occurred_at, ledger_entries.c.points).where(
                mine,
                ledger_entries.c.recorded_at < recorded_at,
                ledger_entries.c.kind.in_(("earned", "pending")),
            )
        ).all()
        tier = self.db.execute(
            select(tier_history.c.to_tier)
            .where(
                tier_history.c.customer_id == customer_id,
                tier_history.c.event_id.in_(earlier)
                | (
                    tier_history.c.event_id.is_(None)
                    & (tier_history.c.occurred_at < event.occurred_at)
                ),
            )
            .order_by(tier_history.c.id.desc())
            .limit(1)
        ).scalar()
        order_rows = self.db.execute(
            select(orders.c.occurred_at, orders.c.amount, orders.c.refunded_amount).where(
                orders.c.customer_id == customer_id, orders.c.event_id.in_(earlier)
            )
        ).all()
        fired: dict[str, list[datetime]] = defaultdict(list)
        for key, at in self.db.execute(
            select(rule_firings.c.rule_key, rule_firings.c.occurred_at)
            .where(rule_firings.c.customer_id == customer_id, rule_firings.c.event_id.in_(earlier))
            .order_by(rule_firings.c.occurred_at)
        ):
            fired[key].append(at)
        return MemberHistory(
            points_available=int(balance),
            tier=tier,
            events_before=int(before),
            first_event_at=first_at,
            orders=[(at, amount, refunded) for at, amount, refunded in order_rows],
            earned=[(at, int(points)) for at, points in earned],
            firings={key: tuple(times) for key, times in fired.items()},
        )


def _activation(row: Any) -> RulesActivation:
    return RulesActivation(
        row["id"], row["version"], row["active_from"], row["active_until"], row["source"]
    )


def _adding_upsert(dialect: str, table: Any, keys: list[Any], added: tuple[str, ...]) -> Any:
    """INSERT of bound parameters that, where the row exists, adds ``added`` columns to it."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(table).values(
        {column.name: bindparam(column.name, type_=column.type) for column in table.columns}
    )
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: table.c[name] + statement.excluded[name] for name in added},
    )


@cache
def _add_to_order(dialect: str) -> Any:
    return _adding_upsert(
        dialect, orders, [orders.c.customer_id, orders.c.order_id], ("amount", "points_earned")
    )


@cache
def _add_to_order_award(dialect: str) -> Any:
    keys = [order_awards.c.customer_id, order_awards.c.order_id, order_awards.c.campaign]
    return _adding_upsert(dialect, order_awards, keys, ("points", "revenue"))


@cache
def _upsert_member(dialect: str) -> Any:
    """One statement creates the member if new and, on PostgreSQL, holds the row's lock
    (an upsert that updates locks the row) until the transaction ends."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = (
        "customer_id",
        "first_seen_at",
        "tags",
        "points_available",
        "points_pending",
        "points_debt",
        "lifetime_spend",
        "order_count",
        "events_applied",
        "referral_code",
    )
    statement = dialect_insert(members).values(
        {name: bindparam(name, type_=members.c[name].type) for name in columns}
    )
    return statement.on_conflict_do_update(
        index_elements=[members.c.customer_id],
        set_={"customer_id": statement.excluded.customer_id},
    ).returning(*members.c)


def _posting_batch(
    posting: Posting,
    event_id: str | None,
    occurred_at: datetime,
    version: str | None,
    now: datetime,
) -> list[tuple[Statement, dict[str, Any]]]:
    """One member's lots, ledger lines and balances, in ledger order. A line about a new
    lot follows that lot's insert and takes its id from it (the id the database has
    just given in this session), so no answer is awaited in between."""
    member = posting.member
    batch: list[tuple[Statement, dict[str, Any]]] = []

    def lot(index: int) -> tuple[Statement, dict[str, Any]]:
        new = posting.new_lots[index]
        return (
            INSERT_LOT,
            {
                "customer_id": member.customer_id,
                "event_id": event_id or "",
                "order_id": new.order_id,
                "earned_at": new.earned_at,
                "available_at": new.available_at,
                "expires_at": new.expires_at,
                "points": new.points,
                "remaining": new.points,
                "pending": int(new.pending),
            },
        )

    referenced = {line.new_lot for line in posting.ledger if line.new_lot is not None}
    batch.extend(lot(i) for i in range(len(posting.new_lots)) if i not in referenced)
    for take in posting.takes:
        batch.append((TAKE_FROM_LOT, {"b_lot": take.lot_id, "b_points": take.points}))
    for line in posting.ledger:
        values = {
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
            "occurred_at": occurred_at,
            "recorded_at": now,
        }
        if line.new_lot is not None:
            batch.append(lot(line.new_lot))
            batch.append((INSERT_LEDGER_FOR_NEW_LOT, values))
        else:
            batch.append((INSERT_LEDGER, {**values, "lot_id": line.lot_id}))
    values = {name: getattr(member, name) for name in MEMBER_FIELDS[1:]}
    batch.append((SAVE_MEMBER, {"b_customer_id": member.customer_id, **values}))
    return batch


def _order_addition(order: OrderRecord) -> tuple[Statement, dict[str, Any]]:
    return (
        ADD_TO_ORDER,
        {
            "customer_id": order.customer_id,
            "order_id": order.order_id,
            "event_id": order.event_id,
            "amount": order.amount,
            "occurred_at": order.occurred_at,
            "points_earned": order.points_earned,
            "points_clawed": order.points_clawed,
            "refunded_amount": order.refunded_amount,
        },
    )


def _order_award_additions(changes: Changes) -> list[tuple[Statement, dict[str, Any]]]:
    # Another part of the same order adds to what the campaign gave on it.
    order = changes.order
    assert order is not None
    return [
        (
            ADD_TO_ORDER_AWARD,
            {
                "customer_id": order.customer_id,
                "order_id": order.order_id,
                "campaign": award.campaign,
                "points": award.points,
                "points_returned": award.points_returned,
                "revenue": award.revenue,
                "event_id": award.event_id,
            },
        )
        for award in changes.order_awards
    ]


def _is_event_id_taken(error: IntegrityError) -> bool:
    """The event's own insert hit the key of an event already stored (not another
    constraint of the batch)."""
    text = str(error.orig)
    return "pk_events" in text or "events.event_id" in text


def _new_member(customer_id: str, now: datetime) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "first_seen_at": now,
        "tags": [],
        "points_available": 0,
        "points_pending": 0,
        "points_debt": 0,
        "lifetime_spend": Decimal(0),
        "order_count": 0,
        "events_applied": 0,
        # One call for the randomness (32 letters: every byte maps evenly).
        "referral_code": "".join(CODE_ALPHABET[b % 32] for b in secrets.token_bytes(10)),
    }


def _member_from_row(row: Row) -> MemberRecord:
    return _member(dict(zip(MEMBER_FIELDS, row, strict=True)))


def _stored_event(row: Row) -> StoredEvent:
    return StoredEvent(row[0], row[1], row[2], row[3], row[5], row[6], row[7], row[8])


def _firings(rows: Sequence[Row]) -> dict[str, tuple[datetime, ...]]:
    found: dict[str, list[datetime]] = defaultdict(list)
    for key, at in rows:
        found[key].append(at)
    return {key: tuple(times) for key, times in found.items()}


def _recent(rows: Sequence[Row]) -> tuple[Decimal, int]:
    kept = [(amount, refunded) for amount, refunded in rows if refunded < amount]
    return sum((a - r for a, r in kept), Decimal(0)), len(kept)


def _budgets(rows: Sequence[Row]) -> dict[str, BudgetUse]:
    return {
        campaign: BudgetUse(points, offers, revenue) for campaign, points, offers, revenue in rows
    }


def _member(row: Any) -> MemberRecord:
    data = dict(row)
    data["tags"] = list(data.get("tags") or [])
    return MemberRecord(**data)


# The event path's statements, built once (building a statement per call cost more than
# running it) and run on the driver's cursor (service.storage.driver).
LOCK_MEMBER = Statement(lambda dialect: _upsert_member(dialect))
SELECT_EVENT = Statement(select(events).where(events.c.event_id == bindparam("b_event_id")))
SELECT_FIRINGS = Statement(
    select(rule_firings.c.rule_key, rule_firings.c.occurred_at)
    .where(
        rule_firings.c.customer_id == bindparam("b_customer_id"),
        rule_firings.c.rule_key.in_(bindparam("b_keys", expanding=True)),
    )
    .order_by(rule_firings.c.occurred_at)
)
SELECT_ORDERS_BETWEEN = Statement(
    select(orders.c.amount, orders.c.refunded_amount).where(
        orders.c.customer_id == bindparam("b_customer_id"),
        orders.c.occurred_at > bindparam("b_since", type_=UtcDateTime()),
        orders.c.occurred_at <= bindparam("b_until", type_=UtcDateTime()),
    )
)
SELECT_BUDGETS = Statement(
    select(
        campaign_budgets.c.campaign,
        campaign_budgets.c.points_used,
        campaign_budgets.c.offers_issued,
        campaign_budgets.c.revenue,
    ).where(campaign_budgets.c.campaign.in_(bindparam("b_campaigns", expanding=True)))
)
INSERT_EVENT = Statement(insert(events))
INSERT_FIRING = Statement(insert(rule_firings))
INSERT_LOT = Statement(insert(point_lots))
INSERT_LEDGER = Statement(insert(ledger_entries))
# A ledger line about the lot inserted just before it, in the same session.
INSERT_LEDGER_FOR_NEW_LOT = Statement(
    lambda dialect: insert(ledger_entries).values(
        lot_id=literal_column(
            "currval(pg_get_serial_sequence('point_lots', 'id'))"
            if dialect == "postgresql"
            else "last_insert_rowid()"
        )
    )
)
TAKE_FROM_LOT = Statement(
    update(point_lots)
    .where(point_lots.c.id == bindparam("b_lot"))
    .values(remaining=point_lots.c.remaining - bindparam("b_points"))
)
SAVE_MEMBER = Statement(
    update(members)
    .where(members.c.customer_id == bindparam("b_customer_id"))
    .values({name: bindparam(name, type_=members.c[name].type) for name in MEMBER_FIELDS[1:]})
)
SPEND_BUDGET = Statement(
    update(campaign_budgets)
    .where(campaign_budgets.c.campaign == bindparam("b_campaign"))
    .values(
        points_used=campaign_budgets.c.points_used + bindparam("b_points"),
        offers_issued=campaign_budgets.c.offers_issued + bindparam("b_offers"),
        revenue=campaign_budgets.c.revenue + bindparam("b_revenue", type_=Money()),
    )
)
ADD_TO_ORDER = Statement(lambda dialect: _add_to_order(dialect))
ADD_TO_ORDER_AWARD = Statement(lambda dialect: _add_to_order_award(dialect))
