"""The event path's storage kept in dicts: the in-memory fake of EventStore.

Use-case tests run against it as well as against SQLite and PostgreSQL, so a promise of
the event path (idempotency, member order, balances equal to ledgers) is shown apart
from any database. A transaction works on a copy and replaces the state on commit; one
transaction at a time, as SQLite's writers.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType

from service.application.event_ports import GroupReads, GroupWrite, LoadedGroup
from service.application.ports import (
    DuplicateEvent,
    HeldRefund,
    LedgerLine,
    MemberRecord,
    NewMessage,
    OrderAward,
    OrderRecord,
    ReferrerAward,
    StoredEvent,
)
from service.core.evaluation import BudgetUse
from service.core.ledger import Lot


@dataclass
class MemoryState:
    members: dict[str, MemberRecord] = field(default_factory=dict)
    events: dict[str, StoredEvent] = field(default_factory=dict)
    orders: dict[tuple[str, str], OrderRecord] = field(default_factory=dict)
    order_awards: dict[tuple[str, str, str], OrderAward] = field(default_factory=dict)
    firings: list[tuple[str, str, datetime, str]] = field(default_factory=list)
    lots: dict[int, tuple[str, Lot]] = field(default_factory=dict)
    ledger: list[tuple[str, str | None, LedgerLine]] = field(default_factory=list)
    referrals: list[tuple[str, str, str, datetime, bool]] = field(default_factory=list)
    budgets: dict[str, BudgetUse] = field(default_factory=dict)
    messages: list[tuple[str, str, NewMessage]] = field(default_factory=list)
    held_refunds: dict[str, HeldRefund] = field(default_factory=dict)
    referrer_awards: dict[tuple[str, str, str], ReferrerAward] = field(default_factory=dict)
    next_lot: int = 1


class MemoryEventStore:
    """EventStore over a MemoryState (the copy a transaction works on)."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def lock_and_read(self, reads: GroupReads) -> LoadedGroup:
        state = self.state
        found: dict[str, MemberRecord] = {}
        for customer_id in reads.customer_ids:
            found[customer_id] = replace(self.lock_member(customer_id, reads.now))
        mine = set(reads.customer_ids)
        held = [
            replace(h)
            for h in state.held_refunds.values()
            if h.customer_id in mine and h.order_id in reads.held_for and h.applied_by is None
        ]
        given = [
            replace(a)
            for a in state.referrer_awards.values()
            if a.customer_id in reads.lots_of and a.order_id in reads.refunded_orders
        ]
        holders = {h.customer_id for h in held}
        takers = {a.referrer_id for a in given}
        takers.update(r for r in (found[c].referred_by for c in holders) if r is not None)
        for customer_id in sorted(set(reads.referrers) | takers):
            if customer_id not in found and customer_id in state.members:
                found[customer_id] = replace(state.members[customer_id])
        wanted_orders = set(reads.order_ids)
        orders = [
            replace(order)
            for (customer_id, order_id), order in state.orders.items()
            if customer_id in mine
            and (order.occurred_at > reads.orders_since or order_id in wanted_orders)
        ]
        keys = set(reads.rule_keys)
        lots_of = set(reads.lots_of) | holders | (takers & set(found))
        referrers = set(reads.referrers)
        return LoadedGroup(
            members=found,
            events={e: state.events[e] for e in reads.event_ids if e in state.events},
            orders=orders,
            order_awards=[
                (c, o, replace(award))
                for (c, o, _), award in state.order_awards.items()
                if c in mine and o in wanted_orders
            ],
            firings=[f for f in state.firings if f[0] in mine and f[1] in keys],
            lots=[(c, lot) for c, lot in state.lots.values() if c in lots_of and lot.remaining > 0],
            earned=[
                (c, line_at, line.points)
                for c, line_at, line in self._earned()
                if c in mine and reads.earned_since is not None and line_at > reads.earned_since
            ],
            referrals_rewarded=[
                (referrer, at)
                for _referee, referrer, _e, at, rewarded in state.referrals
                if referrer in referrers and rewarded
            ],
            held_refunds=held,
            referrer_awards=given,
        )

    def _earned(self) -> Iterable[tuple[str, datetime, LedgerLine]]:
        for customer_id, event_id, line in self.state.ledger:
            if line.kind in ("earned", "pending") and event_id in self.state.events:
                yield customer_id, self.state.events[event_id].occurred_at, line

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord:
        member = self.state.members.get(customer_id)
        if member is None:
            member = self.state.members[customer_id] = MemberRecord(customer_id, first_seen_at=now)
        return member

    def lock_budgets(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]:
        return {c: self.state.budgets.get(c, BudgetUse()) for c in sorted(campaigns)}

    def dedupe_keys_used(self, customer_id: str, keys: Iterable[str]) -> set[str]:
        wanted = set(keys)
        return {
            m.dedupe_key
            for c, _e, m in self.state.messages
            if c == customer_id and m.dedupe_key is not None and m.dedupe_key in wanted
        }

    def find_event(self, event_id: str) -> StoredEvent | None:
        return self.state.events.get(event_id)

    def write_group(self, changes: GroupWrite, recorded_at: datetime) -> None:
        state = self.state
        for event in changes.events:
            if event.event_id in state.events:
                raise DuplicateEvent(event.event_id)
            state.events[event.event_id] = event
        ids: dict[int, int] = {}
        for new in changes.lots:
            ids[new.key] = state.next_lot
            lot = Lot(
                state.next_lot,
                new.lot.earned_at,
                new.remaining,
                new.lot.expires_at,
                new.lot.order_id,
                new.lot.pending,
                new.event_id,
            )
            state.lots[state.next_lot] = (new.customer_id, lot)
            state.next_lot += 1
        for lot_id, points in changes.lot_takes.items():
            customer_id, lot = state.lots[lot_id]
            state.lots[lot_id] = (customer_id, replace(lot, remaining=lot.remaining - points))
        for item in changes.ledger:
            line = item.line
            if line.lot_id is not None and line.lot_id < 0:
                line = replace(line, lot_id=ids[line.lot_id])
            state.ledger.append((item.customer_id, item.event_id, line))
        for customer_id, member in changes.members.items():
            state.members[customer_id] = replace(member, tags=list(member.tags))
        state.firings.extend(changes.firings)
        gone = set(changes.unfired)
        state.firings = [f for f in state.firings if f[3] not in gone]
        state.orders.update({k: replace(v) for k, v in changes.orders.items()})
        state.order_awards.update({k: replace(v) for k, v in changes.order_awards.items()})
        for campaign, change in changes.budgets.items():
            used = state.budgets.get(campaign, BudgetUse())
            state.budgets[campaign] = BudgetUse(
                used.points + change.points,
                used.offers + change.offers,
                used.revenue + change.revenue,
            )
        state.referrals.extend(changes.referrals)
        state.messages.extend(changes.messages)
        state.held_refunds.update({k: replace(v) for k, v in changes.held_refunds.items()})
        state.referrer_awards.update({k: replace(v) for k, v in changes.referrer_awards.items()})


class MemoryUnitOfWork:
    """A transaction over a MemoryState: a copy, swapped in on commit."""

    def __init__(self, database: MemoryDatabase) -> None:
        self._database = database
        self.store = MemoryEventStore(MemoryState())

    def __enter__(self) -> MemoryUnitOfWork:
        self._database.lock.acquire()
        self.store = MemoryEventStore(copy.deepcopy(self._database.state))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._database.lock.release()

    def commit(self) -> None:
        self._database.state = self.store.state


class MemoryDatabase:
    def __init__(self) -> None:
        self.state = MemoryState()
        self.lock = threading.Lock()

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)
