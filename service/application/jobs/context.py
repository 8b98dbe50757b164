"""What every job gets: storage (the JobStore port), the active rules, a clock, the
channels, the outbox policy and the runner.

The SQLAlchemy store implements JobStore beside LoyaltyStore (service.storage.job_store,
service.storage.outbox_store).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from service.application.delivery import Channel
from service.application.outbox import OutboxPolicy
from service.application.ports import (
    Clock,
    LoyaltyStore,
    MemberRecord,
    NewMessage,
    Posting,
    StoredMessage,
    TierMove,
    Transaction,
)
from service.application.rules_runtime import ActiveRules
from service.core.ledger import Lot
from service.core.messaging import Sent


class JobStore(LoyaltyStore, Protocol):
    def write_posting(
        self,
        posting: Posting,
        event_id: str | None,
        occurred_at: datetime,
        version: str | None,
        now: datetime,
    ) -> None: ...

    def save_member(self, member: MemberRecord) -> None: ...

    # -- outbox

    def add_messages(
        self, customer_id: str, event_id: str | None, messages: Sequence[NewMessage]
    ) -> None: ...

    def due_message_ids(self, now: datetime, limit: int) -> list[tuple[int, str]]: ...

    def lock_message(self, message_id: int) -> StoredMessage | None: ...

    def save_message(self, message: StoredMessage) -> None: ...

    def sent_history(self, customer_id: str, since: datetime, now: datetime) -> list[Sent]: ...

    def member_messages(
        self, customer_id: str, before_id: int | None, limit: int
    ) -> list[StoredMessage]: ...

    # -- jobs

    def members_with_lots_expiring(
        self, until: datetime, limit: int, after: str | None
    ) -> list[str]: ...

    def members_with_due_pending(
        self, now: datetime, limit: int, after: str | None
    ) -> list[str]: ...

    def due_pending_lots(self, customer_id: str, now: datetime) -> list[Lot]: ...

    def release_lots(self, lot_ids: Iterable[int]) -> None: ...

    def members_to_review(self, lowest: str | None, limit: int, after: str | None) -> list[str]: ...

    def record_tier_move(self, customer_id: str, move: TierMove, at: datetime) -> None: ...

    def expire_offers(self, now: datetime) -> int: ...

    def members_born_in(self, months: Iterable[int]) -> list[MemberRecord]: ...

    def members_enrolled_in(
        self, months: Iterable[int], before: datetime
    ) -> list[MemberRecord]: ...

    def members_lapsed_since(self, before: datetime) -> list[MemberRecord]: ...

    def recorded_events(self, event_ids: Iterable[str]) -> set[str]: ...

    def start_job_run(self, job: str, as_of: datetime, runner: str, at: datetime) -> int: ...

    def finish_job_run(
        self,
        run_id: int,
        status: str,
        result: dict[str, Any] | None,
        error: str | None,
        at: datetime,
    ) -> None: ...

    def job_runs(self, limit: int) -> list[dict[str, Any]]: ...

    def take_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool: ...

    def drop_lease(self, name: str, holder: str) -> None: ...


JobUnitOfWork = Transaction[JobStore]
JobUnitOfWorkFactory = Callable[[], JobUnitOfWork]


@dataclass(frozen=True)
class JobContext:
    uow: JobUnitOfWorkFactory
    rules: Callable[[], ActiveRules]  # the rules active when the job runs
    clock: Clock  # stamps what the job writes (`jobs run --now` fixes it); decisions use `now`
    channels: Mapping[str, Channel] = field(default_factory=dict)
    outbox: OutboxPolicy = field(default_factory=OutboxPolicy)
    runner: str = "cli"  # who ran it: host:pid:nonce of a scheduler, or the CLI
    batch: int = 500  # members per query


def pages(
    fetch: Callable[[str | None], list[str]],
) -> Iterator[str]:
    """Every member id a paged query yields, in id order: ``fetch(after)`` gives the next
    page after ``after`` (None: from the start)."""
    after: str | None = None
    while True:
        page = fetch(after)
        if not page:
            return
        yield from page
        after = page[-1]
