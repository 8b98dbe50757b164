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
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from service.core.evaluation import BudgetUse
from service.core.ledger import Lot, Take

if TYPE_CHECKING:
    from service.application.event_ports import GroupReads, GroupWrite, LoadedGroup
    from service.application.manual_points import Adjustment, Transfer
    from service.application.personal_data import Erasure, MemberExport


@dataclass(slots=True)
class MemberRecord:
    customer_id: str
    first_seen_at: datetime
    tier: str | None = None
    tier_since: datetime | None = None
    tier_until: datetime | None = None
    tier_below_since: datetime | None = None
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
    referral_code: str | None = None
    referred_by: str | None = None


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
    event_id: str | None = None
    # The upgrade the order's purchase qualified the member for, so that a refund taking
    # back what reached it can undo it: the level before, the level reached, and when.
    tier_before: str | None = None
    tier_reached: str | None = None
    tier_reached_at: datetime | None = None


@dataclass(slots=True)
class HeldRefund:
    """A refund of an order not known yet (deliveries come out of order), kept until a
    purchase of that order by the same member arrives and applies it."""

    event_id: str
    customer_id: str
    order_id: str
    amount: Decimal
    occurred_at: datetime
    applied_by: str | None = None  # the purchase that applied it
    applied_at: datetime | None = None  # when that purchase occurred


@dataclass(slots=True)
class ReferrerAward:
    """Points a purchase gave another member for it (a referrer's thank-you), so that a
    refund of its order takes them back in proportion, as it does the buyer's own."""

    customer_id: str  # the buyer
    order_id: str
    event_id: str  # the purchase: the referrer's lots it made carry its id
    referrer_id: str
    campaign: str
    points: int
    points_clawed: int = 0


@dataclass(slots=True)
class OrderAward:
    """What one campaign gave on one order, so a refund can give its budget back."""

    campaign: str
    points: int
    points_returned: int = 0
    revenue: Decimal = Decimal(0)
    event_id: str = ""


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
    new_lot: int | None = None  # index into Posting.new_lots, for a lot made in this change
    note: str | None = None


@dataclass(slots=True)
class Posting:
    """One member's side of an event: balances, lots and ledger lines."""

    member: MemberRecord
    new_lots: list[NewLot] = field(default_factory=list)
    takes: list[Take] = field(default_factory=list)
    ledger: list[LedgerLine] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TierMove:
    from_tier: str | None
    to_tier: str
    reason: str
    until: datetime | None
    campaign: str | None
    rule: str | None


@dataclass(frozen=True, slots=True)
class IssuedOffer:
    code: str
    offer_id: str
    valid_until: datetime
    campaign: str
    rule: str


@dataclass(frozen=True, slots=True)
class BudgetChange:
    campaign: str
    points: int = 0
    offers: int = 0
    revenue: Decimal = Decimal(0)


@dataclass(slots=True)
class Changes:
    """Everything one event writes, handed to storage in one call."""

    event: StoredEvent
    rules_version: str
    postings: dict[str, Posting]  # customer_id -> that member's side; the event's member first
    firings: list[str] = field(default_factory=list)
    unfire_event: str | None = None  # a fully refunded purchase gives its limit counts back
    order: OrderRecord | None = None  # a purchase's additions to its order; a refund's whole order
    order_awards: list[OrderAward] = field(default_factory=list)
    tier_moves: list[TierMove] = field(default_factory=list)
    offers: list[IssuedOffer] = field(default_factory=list)
    budgets: list[BudgetChange] = field(default_factory=list)
    referral: tuple[str, bool] | None = None  # (referrer_id, rewarded)
    messages: list[NewMessage] = field(default_factory=list)  # for the event's member
    trace: EventTrace | None = None  # what evaluation read and decided, for explanations
    held_refunds: list[HeldRefund] = field(default_factory=list)  # held now, or applied now
    referrer_awards: list[ReferrerAward] = field(default_factory=list)  # given, or clawed
    # False for a held refund applied when its purchase arrives: the refund event was
    # stored (and answered) when it came, and is not written again.
    new_event: bool = True

    @property
    def member(self) -> MemberRecord:
        return self.postings[self.event.customer_id].member

    @property
    def own(self) -> Posting:
        return self.postings[self.event.customer_id]


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


@dataclass(frozen=True, slots=True)
class MemberOffer:
    code: str
    customer_id: str
    offer_id: str
    campaign: str | None
    issued_at: datetime
    valid_until: datetime
    status: str
    redeemed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Redemption:
    redemption_id: str
    customer_id: str
    reward_id: str
    points: int
    status: str
    takes: list[list[int]]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RulesActivation:
    """A period in which one rules version was the one the service served."""

    id: int
    version: str
    active_from: datetime
    active_until: datetime | None
    source: str  # startup | reload


@dataclass(frozen=True, slots=True)
class EventTrace:
    """What evaluation read and decided for one applied event (for explaining it later)."""

    event_id: str
    customer_id: str
    rules_version: str
    engine: str
    trace: list[dict[str, str]]
    snapshot: dict[str, Any]
    budgets: dict[str, list[str]]
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class MemberHistory:
    """A member as the tables knew them just before one event was applied."""

    points_available: int
    tier: str | None
    events_before: int
    first_event_at: datetime | None
    orders: list[tuple[datetime, Decimal, Decimal]]  # (occurred_at, amount, refunded)
    earned: list[tuple[datetime, int]]  # points earned, for a points tier metric
    firings: dict[str, tuple[datetime, ...]]


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to queue in the outbox, in the same transaction as what caused it."""

    template: str
    channel: str
    category: str
    data: dict[str, Any]
    source: str = "rule"  # rule | system
    urgent: bool = False
    dedupe_key: str | None = None
    stale_at: datetime | None = None
    campaign: str | None = None
    rule: str | None = None
    status: str = "queued"  # or suppressed, for a duplicate
    reason: str | None = None
    created_at: datetime = field(kw_only=True)  # by the clock of the use case queueing it


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message in the outbox and what became of it."""

    id: int
    customer_id: str
    event_id: str | None
    source: str
    template: str
    channel: str
    category: str
    urgent: bool
    data: dict[str, Any]
    campaign: str | None
    rule: str | None
    dedupe_key: str | None
    status: str  # queued | deferred | sent | suppressed | dead
    reason: str | None
    attempts: int
    created_at: datetime
    stale_at: datetime | None
    next_attempt_at: datetime | None
    claimed_until: datetime | None
    last_attempt_at: datetime | None
    sent_at: datetime | None


class LoyaltyStore(Protocol):
    """Everything the SQLAlchemy store offers the use cases; the event path needs only
    its EventStore part (service.application.event_ports)."""

    def lock_and_read(self, reads: GroupReads) -> LoadedGroup: ...

    def write_group(self, changes: GroupWrite, recorded_at: datetime) -> None: ...

    def find_event(self, event_id: str) -> StoredEvent | None: ...

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord: ...

    def read_member(self, customer_id: str) -> MemberRecord | None: ...

    def member_by_referral_code(self, code: str) -> MemberRecord | None: ...

    def rule_firings(
        self, customer_id: str, rule_keys: Iterable[str]
    ) -> dict[str, tuple[datetime, ...]]: ...

    def budgets_used(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]: ...

    def lock_budgets(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]: ...

    def lots(self, customer_id: str) -> list[Lot]: ...

    def find_order(self, customer_id: str, order_id: str) -> OrderRecord | None: ...

    def order_awards(self, customer_id: str, order_id: str) -> list[OrderAward]: ...

    def order_event(self, customer_id: str, order_id: str) -> str | None: ...

    def tier_value(
        self, customer_id: str, metric: str, since: datetime, until: datetime
    ) -> Decimal: ...

    def orders_between(
        self, customer_id: str, since: datetime, until: datetime
    ) -> tuple[Decimal, int]: ...

    def referrals_rewarded(self, referrer_id: str) -> tuple[datetime, ...]: ...

    def ledger_page(
        self, customer_id: str, before_id: int | None, limit: int
    ) -> Sequence[LedgerRow]: ...

    def expiring(self, customer_id: str, until: datetime) -> list[tuple[int, datetime]]: ...

    def member_offers(self, customer_id: str) -> list[MemberOffer]: ...

    def lock_offer(self, code: str) -> MemberOffer | None: ...

    def redeem_offer(self, code: str, at: datetime, reference: str | None) -> None: ...

    def offer_reference(self, code: str) -> str | None: ...

    def find_redemption(self, redemption_id: str) -> Redemption | None: ...

    def redemptions_of(self, customer_id: str, reward_id: str) -> int: ...

    def take_reward_stock(self, reward_id: str, stock: int) -> bool: ...

    def give_back_reward_stock(self, reward_id: str) -> None: ...

    def reward_stock_taken(self) -> dict[str, int]: ...

    def save_redemption(self, redemption: Redemption, posting: Posting, at: datetime) -> None: ...

    def reverse_redemption(
        self, redemption: Redemption, posting: Posting, at: datetime
    ) -> None: ...

    def record_rules_version(self, version: str, files: dict[str, str], at: datetime) -> None: ...

    # -- messaging (service.application.outbox)

    def dedupe_keys_used(self, customer_id: str, keys: Iterable[str]) -> set[str]: ...

    # -- rules versions, activations and explanations (service.application.explain)

    def rules_version_files(self, version: str) -> dict[str, str] | None: ...

    def active_rules_version(self) -> RulesActivation | None: ...

    def activate_rules_version(
        self, version: str, files: dict[str, str], at: datetime, source: str
    ) -> bool: ...

    def rules_activations(self, limit: int) -> list[RulesActivation]: ...

    def ledger_entry(self, customer_id: str, entry_id: int) -> LedgerRow | None: ...

    def save_event_trace(self, trace: EventTrace) -> None: ...

    def event_trace(self, event_id: str) -> EventTrace | None: ...

    def history_before(self, event: StoredEvent) -> MemberHistory: ...

    def member_export(self, customer_id: str) -> MemberExport | None: ...

    def find_adjustment(self, adjustment_id: str) -> Adjustment | None: ...

    def save_adjustment(self, adjustment: Adjustment, posting: Posting) -> None: ...

    def find_transfer(self, transfer_id: str) -> Transfer | None: ...

    def save_transfer(self, transfer: Transfer, postings: tuple[Posting, Posting]) -> None: ...

    def erase_member(
        self, customer_id: str, pseudonym: str, by: str, at: datetime
    ) -> Erasure | None: ...


StoreT_co = TypeVar("StoreT_co", covariant=True)


class Transaction(Protocol[StoreT_co]):
    """One transaction over a store. Leaving the block without commit() rolls back."""

    @property
    def store(self) -> StoreT_co: ...

    def __enter__(self) -> Transaction[StoreT_co]: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


UnitOfWork = Transaction[LoyaltyStore]


class DuplicateEvent(Exception):
    """Storage saw the event_id already recorded (a race lost at commit)."""


class ConnectionLost(Exception):
    """The database connection failed or died before the transaction committed; the
    transaction is gone, and the next one gets a fresh connection."""
