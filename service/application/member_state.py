"""What a working set (service.application.working_set) holds of one member, and where it
asks for a member it was not given."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from service.application.ports import (
    HeldRefund,
    MemberRecord,
    OrderAward,
    ReferrerAward,
)
from service.application.replay_records import MemberOrders
from service.core.evaluation import BudgetUse
from service.core.ledger import Lot


@dataclass(slots=True)
class MemberState:
    record: MemberRecord
    lots: dict[int, Lot] = field(default_factory=dict)  # with points left
    orders: MemberOrders = field(default_factory=MemberOrders)
    order_awards: dict[str, list[OrderAward]] = field(default_factory=dict)
    firings: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    earned: list[tuple[datetime, int]] = field(default_factory=list)
    referrals_rewarded: list[datetime] = field(default_factory=list)
    dedupe_keys: set[str] = field(default_factory=set)
    held: dict[str, list[HeldRefund]] = field(default_factory=dict)  # order_id -> not applied
    referrer_awards: dict[str, list[ReferrerAward]] = field(default_factory=dict)  # by order


class MemberSource(Protocol):
    """Where a working set asks for what it was not given up front (the event store)."""

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord: ...

    def lock_budgets(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]: ...

    def dedupe_keys_used(self, customer_id: str, keys: Iterable[str]) -> set[str]: ...


class MemoryOnly:
    """A source that knows nothing beyond memory: a replay's case."""

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord:
        return MemberRecord(customer_id, first_seen_at=now)

    def lock_budgets(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]:
        return {}

    def dedupe_keys_used(self, customer_id: str, keys: Iterable[str]) -> set[str]:
        return set()
