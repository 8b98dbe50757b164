"""What the event path needs from storage: lock and read a group's members, write the
group's changes. Set-based, so a group of events costs a few statements, not a dozen each.

The SQLAlchemy adapter is service.storage.event_store; service.application.memory_store
keeps the same state in dicts (for replays, rule diffs and tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from service.application.ports import (
    BudgetChange,
    EventTrace,
    HeldRefund,
    IssuedOffer,
    LedgerLine,
    MemberRecord,
    NewLot,
    NewMessage,
    OrderAward,
    OrderRecord,
    ReferrerAward,
    StoredEvent,
    TierMove,
)
from service.core.evaluation import BudgetUse
from service.core.ledger import Lot


@dataclass(frozen=True, slots=True)
class GroupReads:
    """What deciding a group of events reads, asked for at once."""

    customer_ids: tuple[str, ...]  # the events' members: created if new, locked, in this order
    referrers: tuple[str, ...]  # members named as referrers (not created; locked if they exist)
    event_ids: tuple[str, ...]
    orders_since: datetime  # every order of the members after this (the RFM and tier windows)
    order_ids: tuple[str, ...]  # and these orders (purchases' and refunds') whatever their age
    rule_keys: tuple[str, ...]  # rules with a limit: their firings for the members
    lots_of: tuple[str, ...]  # members whose lots are read (those with a refund)
    earned_since: datetime | None  # points earned after this (a points tier metric)
    now: datetime
    # Purchases' orders: refunds held for them (of the events' members) are read, with the
    # lots of those members and of their referrers (who may have to give a thank-you back).
    held_for: tuple[str, ...] = ()
    # Refunds' orders: what their purchases gave referrers is read, and those referrers
    # are locked and their lots read.
    refunded_orders: tuple[str, ...] = ()


@dataclass(slots=True)
class LoadedGroup:
    members: dict[str, MemberRecord]  # the events' members and the referrers that exist
    events: dict[str, StoredEvent]
    orders: list[OrderRecord]
    order_awards: list[tuple[str, str, OrderAward]]  # (customer_id, order_id, award)
    firings: list[tuple[str, str, datetime, str]]  # (customer_id, rule_key, at, event_id)
    lots: list[tuple[str, Lot]]
    earned: list[tuple[str, datetime, int]]
    referrals_rewarded: list[tuple[str, datetime]]  # (referrer_id, at)
    held_refunds: list[HeldRefund] = field(default_factory=list)  # not applied yet
    referrer_awards: list[ReferrerAward] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LotToCreate:
    key: int  # negative: the working set's name for it until storage gives it an id
    customer_id: str
    event_id: str
    lot: NewLot
    remaining: int


@dataclass(frozen=True, slots=True)
class LedgerLineToWrite:
    customer_id: str
    event_id: str | None
    occurred_at: datetime
    rules_version: str | None
    line: LedgerLine  # its lot_id may be a LotToCreate key (negative)


@dataclass(slots=True)
class GroupWrite:
    """Everything a group of events changes, for storage to write in a few statements."""

    events: list[StoredEvent] = field(default_factory=list)
    lots: list[LotToCreate] = field(default_factory=list)
    lot_takes: dict[int, int] = field(default_factory=dict)  # stored lot id -> points taken
    ledger: list[LedgerLineToWrite] = field(default_factory=list)
    members: dict[str, MemberRecord] = field(default_factory=dict)  # final state of each
    firings: list[tuple[str, str, datetime, str]] = field(default_factory=list)
    unfired: list[str] = field(default_factory=list)  # events whose firings are given back
    orders: dict[tuple[str, str], OrderRecord] = field(default_factory=dict)  # final state
    order_awards: dict[tuple[str, str, str], OrderAward] = field(default_factory=dict)
    budgets: dict[str, BudgetChange] = field(default_factory=dict)  # added to what is used
    tier_moves: list[tuple[str, str, datetime, TierMove]] = field(default_factory=list)
    offers: list[tuple[str, str, datetime, IssuedOffer]] = field(default_factory=list)
    referrals: list[tuple[str, str, str, datetime, bool]] = field(default_factory=list)
    messages: list[tuple[str, str, NewMessage]] = field(default_factory=list)
    traces: list[EventTrace] = field(default_factory=list)
    held_refunds: dict[str, HeldRefund] = field(default_factory=dict)  # by event: final state
    # (event_id, referrer_id, campaign) -> final state
    referrer_awards: dict[tuple[str, str, str], ReferrerAward] = field(default_factory=dict)


class EventStore(Protocol):
    """The event path's storage, inside one transaction."""

    def lock_and_read(self, reads: GroupReads) -> LoadedGroup: ...

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord:
        """Create (if new) and lock a member the group did not name up front."""
        ...

    def lock_budgets(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]: ...

    def dedupe_keys_used(self, customer_id: str, keys: Iterable[str]) -> set[str]: ...

    def find_event(self, event_id: str) -> StoredEvent | None: ...

    def write_group(self, changes: GroupWrite, recorded_at: datetime) -> None: ...
