"""What the use cases need from storage, as Protocols and plain records.

The SQLAlchemy adapter (service.storage) implements these; the use cases never see a
session, a row or a dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol

from service.core.ledger import Lot, Take


@dataclass(slots=True)
class MemberRecord:
    customer_id: str
    first_seen_at: datetime
    tier: str | None = None
    tier_since: datetime | None = None
    points_available: int = 0
    points_pending: int = 0
    points_debt: int = 0
    lifetime_spend: Decimal = Decimal(0)
    order_count: int = 0
    events_applied: int = 0
    last_purchase_at: datetime | None = None
    enrolled_at: datetime | None = None
    birthday: date | None = None
    timezone: str | None = None
    email: str | None = None
    phone: str | None = None
    tags: list[str] = field(default_factory=list)
    segment: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    customer_id: str
    type: str
    occurred_at: datetime
    body_hash: str
    payload: dict[str, Any]
    result: dict[str, Any]
    rules_version: str


@dataclass(slots=True)
class OrderRecord:
    customer_id: str
    order_id: str
    amount: Decimal
    occurred_at: datetime
    points_earned: int = 0
    points_clawed: int = 0
    refunded_amount: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class NewLot:
    points: int
    earned_at: datetime
    available_at: datetime
    expires_at: datetime | None
    order_id: str | None
    pending: bool


@dataclass(frozen=True, slots=True)
class LedgerLine:
    kind: str
    points: int
    debt: int = 0
    campaign: str | None = None
    rule: str | None = None
    order_id: str | None = None
    lot_id: int | None = None
    new_lot: int | None = None  # index into Changes.new_lots, for a lot made in this change
    note: str | None = None


@dataclass(slots=True)
class Changes:
    """Everything one event writes, handed to storage in one call."""

    event: StoredEvent
    member: MemberRecord
    rules_version: str
    new_lots: list[NewLot] = field(default_factory=list)
    takes: list[Take] = field(default_factory=list)
    ledger: list[LedgerLine] = field(default_factory=list)
    firings: list[str] = field(default_factory=list)
    order: OrderRecord | None = None
    new_order: bool = False


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: int
    kind: str
    points: int
    debt: int
    event_id: str | None
    campaign: str | None
    rule: str | None
    rules_version: str | None
    order_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    note: str | None


class LoyaltyStore(Protocol):
    def find_event(self, event_id: str) -> StoredEvent | None: ...

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord: ...

    def read_member(self, customer_id: str) -> MemberRecord | None: ...

    def rule_firings(
        self, customer_id: str, rule_keys: Iterable[str]
    ) -> dict[str, tuple[datetime, ...]]: ...

    def budgets_used(self, campaigns: Iterable[str]) -> dict[str, int]: ...

    def reserve_budget(self, campaign: str, total: int, requested: int) -> int:
        """Atomically add up to ``requested`` to the campaign's use, never past ``total``;
        return what was granted."""
        ...

    def lots(self, customer_id: str) -> list[Lot]: ...

    def find_order(self, customer_id: str, order_id: str) -> OrderRecord | None: ...

    def apply(self, changes: Changes) -> None: ...

    def ledger_page(
        self, customer_id: str, before_id: int | None, limit: int
    ) -> Sequence[LedgerRow]: ...

    def spend_in_window(self, customer_id: str, since: datetime) -> tuple[Decimal, int]: ...

    def expiring(self, customer_id: str, until: datetime) -> list[tuple[int, datetime]]: ...

    def record_rules_version(self, version: str, files: dict[str, str], at: datetime) -> None: ...


class UnitOfWork(Protocol):
    """One transaction. Leaving the block without commit() rolls back."""

    @property
    def store(self) -> LoyaltyStore: ...

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


class DuplicateEvent(Exception):
    """Storage saw the event_id already recorded (a race lost at commit)."""
