"""The event path on SQLAlchemy Core: lock and read a group's members, write the group.

A group of events costs the same few statements whatever its size: one multi-row upsert
locks (or creates) its members in id order, a handful of set-based selects read what the
decisions need, and one multi-row statement per table writes what they changed
(SQLAlchemy's "insertmanyvalues" for inserts, executemany for updates). Only public
SQLAlchemy API is used; statements are built once and cached by SQLAlchemy.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, any_, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from service.application.event_ports import (
    GroupReads,
    GroupWrite,
    LedgerLineToWrite,
    LoadedGroup,
    LotToCreate,
)
from service.application.ports import (
    DuplicateEvent,
    HeldRefund,
    MemberRecord,
    NewMessage,
    OrderAward,
    OrderRecord,
    Posting,
    ReferrerAward,
    StoredEvent,
)
from service.core.evaluation import BudgetUse
from service.core.ledger import Lot
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
    tier_history,
)

MEMBER_FIELDS = [c.name for c in members.columns]
TRACE_FIELDS = [c.name for c in event_traces.columns]
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
EARNING_KINDS = ("earned", "pending")


class EventPathStore:
    """Mixed into SqlStore: the event path's part of it."""

    db: Connection
    dialect: str

    if TYPE_CHECKING:  # service.storage.outbox_store.OutboxStore, beside it in SqlStore

        def add_messages_of(self, rows: Sequence[tuple[str, str | None, NewMessage]]) -> None: ...

        # service.storage.refund_store.RefundRowsStore, beside it too
        def held_refunds_for(
            self, customer_ids: Sequence[str], order_ids: Sequence[str]
        ) -> list[HeldRefund]: ...

        def referrer_awards_for(
            self, customer_ids: Sequence[str], order_ids: Sequence[str]
        ) -> list[ReferrerAward]: ...

        def write_refund_rows(self, changes: GroupWrite) -> None: ...

    # -- reading a group

    def lock_and_read(self, reads: GroupReads) -> LoadedGroup:
        db, sql = self.db, _reads(self.dialect)
        found = {
            record.customer_id: record
            for record in self._lock_members(reads.customer_ids, reads.now)
        }
        cids = list(reads.customer_ids)
        held = self.held_refunds_for(cids, reads.held_for)
        given = self.referrer_awards_for(reads.lots_of, reads.refunded_orders)
        # Refunds may take back what referrers were given: those of the refunded orders,
        # and those of members whose purchases find a refund held; they are locked (if
        # they exist) and their lots read with the members'.
        holders = {h.customer_id for h in held}
        takers = {a.referrer_id for a in given}
        takers.update(r for r in (found[c].referred_by for c in holders) if r is not None)
        others = sorted((set(reads.referrers) | takers) - set(found))
        if others:
            query = sql.members_for_update if self.dialect == "postgresql" else sql.members
            for row in db.execute(query, {"ids": others}).mappings():
                found[row["customer_id"]] = _member(row)
        lots_of = sorted(set(reads.lots_of) | holders | (takers & set(found)))
        stored = {
            row.event_id: _stored_event(row)
            for row in db.execute(sql.events, {"ids": list(reads.event_ids)})
        }
        window = {"ids": cids, "since": reads.orders_since}
        if reads.order_ids:
            found_orders = db.execute(
                sql.orders_or_these, {**window, "order_ids": list(reads.order_ids)}
            )
        else:
            found_orders = db.execute(sql.orders, window)
        order_rows = [OrderRecord(**row) for row in found_orders.mappings()]
        awards: list[tuple[str, str, OrderAward]] = []
        if reads.order_ids:
            rows = db.execute(sql.awards, {"ids": cids, "order_ids": list(reads.order_ids)})
            awards = [
                (
                    r["customer_id"],
                    r["order_id"],
                    OrderAward(
                        r["campaign"],
                        r["points"],
                        r["points_returned"],
                        r["revenue"],
                        r["event_id"],
                    ),
                )
                for r in rows.mappings()
            ]
        firings: list[tuple[str, str, datetime, str]] = []
        if reads.rule_keys:
            rows = db.execute(sql.firings, {"ids": cids, "keys": list(reads.rule_keys)})
            firings = [(c, k, at, e) for c, k, at, e in rows]
        return LoadedGroup(
            members=found,
            events=stored,
            orders=order_rows,
            order_awards=awards,
            firings=firings,
            lots=self._lots(lots_of),
            earned=self._earned(cids, reads.earned_since),
            referrals_rewarded=self._rewarded(reads.referrers),
            held_refunds=held,
            referrer_awards=given,
        )

    def _lock_members(self, customer_ids: Sequence[str], now: datetime) -> list[MemberRecord]:
        """One upsert creates the new members and, on PostgreSQL, locks every row (an
        upsert that updates locks the row) in the order given, until the transaction ends.
        SQLite needs no row locks: its writers begin with BEGIN IMMEDIATE."""
        if not customer_ids:
            return []
        rows = self.db.execute(
            _upsert_members(self.dialect), [_new_member(c, now) for c in customer_ids]
        ).mappings()
        return [_member(row) for row in rows]

    def _lots(self, customer_ids: Sequence[str]) -> list[tuple[str, Lot]]:
        if not customer_ids:
            return []
        rows = self.db.execute(_reads(self.dialect).lots, {"ids": list(customer_ids)}).mappings()
        return [(r["customer_id"], lot_from_row(r)) for r in rows]

    def _earned(
        self, customer_ids: Sequence[str], since: datetime | None
    ) -> list[tuple[str, datetime, int]]:
        if since is None:
            return []
        rows = self.db.execute(
            _reads(self.dialect).earned, {"ids": list(customer_ids), "since": since}
        )
        return [(c, at, int(points)) for c, at, points in rows]

    def _rewarded(self, referrer_ids: Sequence[str]) -> list[tuple[str, datetime]]:
        if not referrer_ids:
            return []
        rows = self.db.execute(_reads(self.dialect).rewarded, {"ids": list(referrer_ids)})
        return [(referrer, at) for referrer, at in rows]

    def _locked(self, query: Any) -> Any:
        return query.with_for_update() if self.dialect == "postgresql" else query

    # -- what a working set asks for on the way

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord:
        return self._lock_members([customer_id], now)[0]

    def write_posting(
        self,
        posting: Posting,
        event_id: str | None,
        occurred_at: datetime,
        version: str | None,
        now: datetime,
    ) -> None:
        """One member's lots, ledger lines and balances (jobs and redemptions)."""
        customer_id = posting.member.customer_id
        write = GroupWrite()
        keys = [-(i + 1) for i in range(len(posting.new_lots))]
        for key, new in zip(keys, posting.new_lots, strict=True):
            write.lots.append(LotToCreate(key, customer_id, event_id or "", new, new.points))
        for take in posting.takes:
            write.lot_takes[take.lot_id] = write.lot_takes.get(take.lot_id, 0) + take.points
        for line in posting.ledger:
            if line.new_lot is not None:
                line = replace(line, lot_id=keys[line.new_lot], new_lot=None)
            write.ledger.append(
                LedgerLineToWrite(customer_id, event_id, occurred_at, version, line)
            )
        write.members[customer_id] = posting.member
        self.write_group(write, now)

    def save_member(self, member: MemberRecord) -> None:
        self.db.execute(SAVE_MEMBER, _member_row(member))

    def lock_budgets(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]:
        names = sorted(campaigns)
        if not names:
            return {}
        self.db.execute(
            _new_budgets(self.dialect),
            [
                {"campaign": n, "points_used": 0, "offers_issued": 0, "revenue": Decimal(0)}
                for n in names
            ],
        )
        query = self._locked(_reads(self.dialect).budgets_to_spend)
        return {
            r["campaign"]: BudgetUse(r["points_used"], r["offers_issued"], r["revenue"])
            for r in self.db.execute(query, {"names": names}).mappings()
        }

    def find_event(self, event_id: str) -> StoredEvent | None:
        row = self.db.execute(_reads(self.dialect).events, {"ids": [event_id]}).first()
        return _stored_event(row) if row is not None else None

    # -- writing a group

    def write_group(self, changes: GroupWrite, recorded_at: datetime) -> None:
        """Everything the group changed, one statement per table. ``recorded_at``: when
        the rows count as written, by the clock of the use case writing them."""
        db = self.db
        now = recorded_at
        if changes.events:
            try:
                db.execute(INSERT_EVENTS, [_event_row(e, now) for e in changes.events])
            except IntegrityError as error:
                if _is_event_id_taken(error):
                    raise DuplicateEvent(changes.events[0].event_id) from error
                raise
        lot_ids = self._insert_lots(changes)
        if changes.lot_takes:
            db.execute(
                TAKE_FROM_LOT,
                [{"b_lot": lot, "b_points": p} for lot, p in sorted(changes.lot_takes.items())],
            )
        if changes.ledger:
            db.execute(
                insert(ledger_entries), [_ledger_row(x, lot_ids, now) for x in changes.ledger]
            )
        if changes.members:
            db.execute(SAVE_MEMBER, [_member_row(m) for _, m in sorted(changes.members.items())])
        if changes.firings:
            db.execute(
                INSERT_FIRINGS,
                [
                    {"customer_id": c, "rule_key": k, "occurred_at": at, "event_id": e}
                    for c, k, at, e in changes.firings
                ],
            )
        if changes.unfired:
            db.execute(_reads(self.dialect).unfire, {"ids": changes.unfired})
        if changes.orders:
            db.execute(
                _overwrite(self.dialect, "orders"),
                [_order_row(o) for _, o in sorted(changes.orders.items())],
            )
        if changes.order_awards:
            db.execute(
                _overwrite(self.dialect, "order_awards"),
                [
                    _award_row(cid, oid, award)
                    for (cid, oid, _), award in sorted(changes.order_awards.items())
                ],
            )
        self.write_refund_rows(changes)
        if changes.budgets:
            db.execute(
                SPEND_BUDGET,
                [
                    {
                        "b_campaign": b.campaign,
                        "b_points": b.points,
                        "b_offers": b.offers,
                        "b_revenue": b.revenue,
                    }
                    for _, b in sorted(changes.budgets.items())
                ],
            )
        self._write_facts(changes)

    def _insert_lots(self, changes: GroupWrite) -> dict[int, int]:
        """Insert the new lots; their ids, by the working set's keys for them."""
        if not changes.lots:
            return {}
        rows = [
            {
                "customer_id": lot.customer_id,
                "event_id": lot.event_id,
                "order_id": lot.lot.order_id,
                "earned_at": lot.lot.earned_at,
                "available_at": lot.lot.available_at,
                "expires_at": lot.lot.expires_at,
                "points": lot.lot.points,
                "remaining": lot.remaining,
                "pending": int(lot.lot.pending),
            }
            for lot in changes.lots
        ]
        ids = self.db.execute(INSERT_LOTS, rows).scalars().all()
        return {lot.key: lot_id for lot, lot_id in zip(changes.lots, ids, strict=True)}

    def _write_facts(self, changes: GroupWrite) -> None:
        """The rarer rows: tier moves, offers issued, referrals, messages."""
        db = self.db
        if changes.tier_moves:
            db.execute(
                insert(tier_history),
                [
                    {
                        "customer_id": cid,
                        "from_tier": move.from_tier,
                        "to_tier": move.to_tier,
                        "reason": move.reason,
                        "until": move.until,
                        "event_id": eid,
                        "campaign": move.campaign,
                        "rule": move.rule,
                        "occurred_at": at,
                    }
                    for cid, eid, at, move in changes.tier_moves
                ],
            )
        if changes.offers:
            db.execute(
                insert(member_offers),
                [
                    {
                        "code": offer.code,
                        "customer_id": cid,
                        "offer_id": offer.offer_id,
                        "campaign": offer.campaign,
                        "rule": offer.rule,
                        "event_id": eid,
                        "issued_at": at,
                        "valid_until": offer.valid_until,
                        "status": "active",
                        "redeemed_at": None,
                        "redemption_ref": None,
                    }
                    for cid, eid, at, offer in changes.offers
                ],
            )
        if changes.referrals:
            db.execute(
                insert(referrals),
                [
                    {
                        "referee_id": referee,
                        "referrer_id": referrer,
                        "event_id": eid,
                        "occurred_at": at,
                        "rewarded": int(rewarded),
                    }
                    for referee, referrer, eid, at, rewarded in changes.referrals
                ],
            )
        if changes.messages:
            self.add_messages_of(changes.messages)
        if changes.traces:
            db.execute(
                insert(event_traces),
                [{name: getattr(t, name) for name in TRACE_FIELDS} for t in changes.traces],
            )


def _dialect_insert(dialect: str, table: Table) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


@cache
def _upsert_members(dialect: str) -> Any:
    statement = _dialect_insert(dialect, members)
    return statement.on_conflict_do_update(
        index_elements=[members.c.customer_id],
        set_={"customer_id": statement.excluded.customer_id},
    ).returning(*members.c)


@cache
def _new_budgets(dialect: str) -> Any:
    return _dialect_insert(dialect, campaign_budgets).on_conflict_do_nothing()


@cache
def _overwrite(dialect: str, name: str) -> Any:
    """An upsert that leaves the row as given: the working set knows its whole state."""
    table = {"orders": orders, "order_awards": order_awards}[name]
    statement = _dialect_insert(dialect, table)
    keys = [c for c in table.primary_key.columns]
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c not in keys},
    )


def _among(column: Any, name: str, dialect: str) -> Any:
    """``column`` is one of the bound list ``name``. On PostgreSQL ``= ANY(array)``: one
    statement text whatever the list's length, so psycopg keeps its parse and the server
    its prepared plan; an expanding IN is a new text (and, past 50 items, a fresh parse on
    the client) for every length."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


@dataclass(frozen=True)
class _Reads:
    """The set-based selects of a group, written for one dialect."""

    members: Any
    members_for_update: Any
    events: Any
    orders: Any
    orders_or_these: Any
    awards: Any
    firings: Any
    lots: Any
    earned: Any
    rewarded: Any
    budgets_to_spend: Any
    unfire: Any


@cache
def _reads(dialect: str) -> _Reads:
    def among(column: Any, name: str) -> Any:
        return _among(column, name, dialect)

    select_members = select(members).where(among(members.c.customer_id, "ids"))
    since = bindparam("since", type_=orders.c.occurred_at.type)
    of_members = among(orders.c.customer_id, "ids")
    return _Reads(
        members=select_members,
        members_for_update=select_members.with_for_update(),
        events=select(events).where(among(events.c.event_id, "ids")),
        orders=select(orders).where(of_members, orders.c.occurred_at > since),
        orders_or_these=select(orders).where(
            of_members,
            or_(orders.c.occurred_at > since, among(orders.c.order_id, "order_ids")),
        ),
        awards=select(order_awards).where(
            among(order_awards.c.customer_id, "ids"),
            among(order_awards.c.order_id, "order_ids"),
        ),
        firings=select(
            rule_firings.c.customer_id,
            rule_firings.c.rule_key,
            rule_firings.c.occurred_at,
            rule_firings.c.event_id,
        ).where(among(rule_firings.c.customer_id, "ids"), among(rule_firings.c.rule_key, "keys")),
        lots=select(point_lots).where(
            among(point_lots.c.customer_id, "ids"), point_lots.c.remaining > 0
        ),
        earned=select(
            ledger_entries.c.customer_id, ledger_entries.c.occurred_at, ledger_entries.c.points
        ).where(
            among(ledger_entries.c.customer_id, "ids"),
            ledger_entries.c.kind.in_(EARNING_KINDS),
            ledger_entries.c.occurred_at
            > bindparam("since", type_=ledger_entries.c.occurred_at.type),
        ),
        rewarded=select(referrals.c.referrer_id, referrals.c.occurred_at).where(
            among(referrals.c.referrer_id, "ids"), referrals.c.rewarded == 1
        ),
        budgets_to_spend=select(campaign_budgets)
        .where(among(campaign_budgets.c.campaign, "names"))
        .order_by(campaign_budgets.c.campaign),
        unfire=delete(rule_firings).where(among(rule_firings.c.event_id, "ids")),
    )


INSERT_EVENTS = insert(events)
INSERT_LEDGER = insert(ledger_entries)
INSERT_FIRINGS = insert(rule_firings)
INSERT_LOTS = insert(point_lots).returning(point_lots.c.id, sort_by_parameter_order=True)
TAKE_FROM_LOT = (
    update(point_lots)
    .where(point_lots.c.id == bindparam("b_lot"))
    .values(remaining=point_lots.c.remaining - bindparam("b_points"))
)
SAVE_MEMBER = (
    update(members)
    .where(members.c.customer_id == bindparam("b_customer_id"))
    .values({name: bindparam(name, type_=members.c[name].type) for name in MEMBER_FIELDS[1:]})
)
SPEND_BUDGET = (
    update(campaign_budgets)
    .where(campaign_budgets.c.campaign == bindparam("b_campaign"))
    .values(
        points_used=campaign_budgets.c.points_used + bindparam("b_points"),
        offers_issued=campaign_budgets.c.offers_issued + bindparam("b_offers"),
        revenue=campaign_budgets.c.revenue
        + bindparam("b_revenue", type_=campaign_budgets.c.revenue.type),
    )
)


def _event_row(event: StoredEvent, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "customer_id": event.customer_id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "recorded_at": now,
        "body_hash": event.body_hash,
        "payload": event.payload,
        "result": event.result,
        "rules_version": event.rules_version,
    }


def _ledger_row(item: Any, lot_ids: dict[int, int], now: datetime) -> dict[str, Any]:
    line = item.line
    lot_id = line.lot_id
    if lot_id is not None and lot_id < 0:
        lot_id = lot_ids[lot_id]
    return {
        "customer_id": item.customer_id,
        "kind": line.kind,
        "points": line.points,
        "debt": line.debt,
        "event_id": item.event_id,
        "campaign": line.campaign,
        "rule": line.rule,
        "rules_version": item.rules_version,
        "order_id": line.order_id,
        "lot_id": lot_id,
        "occurred_at": item.occurred_at,
        "recorded_at": now,
        "note": line.note,
    }


def _member_row(member: MemberRecord) -> dict[str, Any]:
    values = {name: getattr(member, name) for name in MEMBER_FIELDS[1:]}
    values["b_customer_id"] = member.customer_id
    return values


def _order_row(order: OrderRecord) -> dict[str, Any]:
    return {
        "customer_id": order.customer_id,
        "order_id": order.order_id,
        "amount": order.amount,
        "occurred_at": order.occurred_at,
        "points_earned": order.points_earned,
        "points_clawed": order.points_clawed,
        "refunded_amount": order.refunded_amount,
        "event_id": order.event_id,
        "tier_before": order.tier_before,
        "tier_reached": order.tier_reached,
        "tier_reached_at": order.tier_reached_at,
    }


def _award_row(customer_id: str, order_id: str, award: OrderAward) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "order_id": order_id,
        "campaign": award.campaign,
        "points": award.points,
        "points_returned": award.points_returned,
        "revenue": award.revenue,
        "event_id": award.event_id,
    }


def _is_event_id_taken(error: IntegrityError) -> bool:
    text = str(error.orig)
    return "uq_events_event_id" in text or "events.event_id" in text


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


def lot_from_row(r: Any) -> Lot:
    return Lot(
        r["id"],
        r["earned_at"],
        r["remaining"],
        r["expires_at"],
        r["order_id"],
        bool(r["pending"]),
        r["event_id"],
    )


def _stored_event(row: Any) -> StoredEvent:
    return StoredEvent(
        row.event_id,
        row.customer_id,
        row.type,
        row.occurred_at,
        row.body_hash,
        row.payload,
        row.result,
        row.rules_version,
    )


def _member(row: Any) -> MemberRecord:
    data = dict(row)
    data["tags"] = list(data.get("tags") or [])
    return MemberRecord(**data)
