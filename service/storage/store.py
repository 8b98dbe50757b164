"""The SQLAlchemy Core adapter for the use cases' storage port (SQLite and PostgreSQL).

Reads here; the writes of one event are in ``apply``; offers and redemptions live in
service.storage.member_store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from service.application.ports import (
    EventTrace,
    LedgerRow,
    MemberRecord,
    OrderAward,
    OrderRecord,
    RulesActivation,
)
from service.core.evaluation import BudgetUse
from service.core.ledger import Lot
from service.storage.event_history import EventHistoryStore
from service.storage.event_store import EventPathStore, lot_from_row
from service.storage.job_store import JobStore
from service.storage.manual_points_store import ManualPointsStore
from service.storage.member_store import MemberOffersStore
from service.storage.outbox_store import OutboxStore
from service.storage.personal_data_store import PersonalDataStore
from service.storage.refund_store import RefundRowsStore
from service.storage.tables import (
    campaign_budgets,
    event_traces,
    ledger_entries,
    members,
    order_awards,
    orders,
    point_lots,
    referrals,
    rule_firings,
    rules_activations,
    rules_versions,
)


class SqlStore(
    EventPathStore,
    EventHistoryStore,
    RefundRowsStore,
    MemberOffersStore,
    OutboxStore,
    JobStore,
    PersonalDataStore,
    ManualPointsStore,
):
    def __init__(self, connection: Connection) -> None:
        self.db = connection
        self.dialect = connection.dialect.name

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def _locked(self, query: Select[Any]) -> Select[Any]:
        # SQLite has one writer at a time (BEGIN IMMEDIATE), so it needs no row locks.
        return query.with_for_update() if self.dialect == "postgresql" else query

    # -- events and members

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
        query = (
            select(rule_firings.c.rule_key, rule_firings.c.occurred_at)
            .where(rule_firings.c.customer_id == customer_id, rule_firings.c.rule_key.in_(keys))
            .order_by(rule_firings.c.occurred_at)
        )
        return _firings(self.db.execute(query).all())

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
        query = select(orders.c.amount, orders.c.refunded_amount).where(
            orders.c.customer_id == customer_id,
            orders.c.occurred_at > since,
            orders.c.occurred_at <= until,
        )
        return _recent(self.db.execute(query).all())

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
        rows = self.db.execute(
            select(
                campaign_budgets.c.campaign,
                campaign_budgets.c.points_used,
                campaign_budgets.c.offers_issued,
                campaign_budgets.c.revenue,
            ).where(campaign_budgets.c.campaign.in_(names))
        )
        return {c: BudgetUse(p, o, r) for c, p, o, r in rows}

    # -- lots and orders

    def lots(self, customer_id: str) -> list[Lot]:
        rows = self.db.execute(
            select(point_lots).where(
                point_lots.c.customer_id == customer_id, point_lots.c.remaining > 0
            )
        ).mappings()
        return [lot_from_row(r) for r in rows]

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


def _activation(row: Any) -> RulesActivation:
    return RulesActivation(
        row["id"], row["version"], row["active_from"], row["active_until"], row["source"]
    )


def _firings(rows: Sequence[Any]) -> dict[str, tuple[datetime, ...]]:
    found: dict[str, list[datetime]] = defaultdict(list)
    for key, at in rows:
        found[key].append(at)
    return {key: tuple(times) for key, times in found.items()}


def _recent(rows: Sequence[Any]) -> tuple[Decimal, int]:
    kept = [(amount, refunded) for amount, refunded in rows if refunded < amount]
    return sum((a - r for a, r in kept), Decimal(0)), len(kept)


def _member(row: Any) -> MemberRecord:
    data = dict(row)
    data["tags"] = list(data.get("tags") or [])
    return MemberRecord(**data)
