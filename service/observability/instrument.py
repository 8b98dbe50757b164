"""Subclasses that time the engine and the ledger writes without the core or the use
cases knowing: the composition root (service.bootstrap) builds them instead of the
plain objects."""

from __future__ import annotations

from datetime import datetime
from time import perf_counter

from service.application.event_ports import GroupWrite
from service.application.ports import Posting, Redemption
from service.core.conditions import Facts
from service.core.evaluation import Matcher
from service.observability.metrics import observe_evaluation, observe_ledger_write
from service.storage.store import SqlStore
from service.storage.unit_of_work import SqlUnitOfWork


class TimedMatcher:
    """A Matcher that observes how long each match takes."""

    def __init__(self, inner: Matcher) -> None:
        self.inner = inner
        self.name = inner.name

    def match(self, facts: Facts) -> frozenset[str]:
        started = perf_counter()
        try:
            return self.inner.match(facts)
        finally:
            observe_evaluation(perf_counter() - started)


class MeasuredStore(SqlStore):
    """The SQL store, noting when a use case first writes its changes and by which
    write (the `operation` label of the ledger write latency; events: "apply")."""

    write_started: float | None = None
    operation = ""

    def _writing(self, operation: str) -> None:
        if self.write_started is None:  # a write inside another is part of the first
            self.write_started, self.operation = perf_counter(), operation

    def write_group(self, changes: GroupWrite, recorded_at: datetime) -> None:
        self._writing("apply")
        super().write_group(changes, recorded_at)

    def write_posting(
        self,
        posting: Posting,
        event_id: str | None,
        occurred_at: datetime,
        version: str | None,
        now: datetime,
    ) -> None:
        self._writing("write_posting")
        super().write_posting(posting, event_id, occurred_at, version, now)

    def save_redemption(self, redemption: Redemption, posting: Posting, at: datetime) -> None:
        self._writing("save_redemption")
        super().save_redemption(redemption, posting, at)

    def reverse_redemption(self, redemption: Redemption, posting: Posting, at: datetime) -> None:
        self._writing("reverse_redemption")
        super().reverse_redemption(redemption, posting, at)

    def redeem_offer(self, code: str, at: datetime, reference: str | None) -> None:
        self._writing("redeem_offer")
        super().redeem_offer(code, at, reference)


class MeasuredUnitOfWork(SqlUnitOfWork):
    """A unit of work whose commit observes the time since its store's first write."""

    store: MeasuredStore
    store_type = MeasuredStore

    def commit(self) -> None:
        super().commit()
        if self.store.write_started is not None:
            observe_ledger_write(self.store.operation, perf_counter() - self.store.write_started)
            self.store.write_started = None
