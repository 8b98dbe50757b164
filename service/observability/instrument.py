"""Wrappers that time the engine and the ledger writes without the core or the storage
knowing: the composition root (service.bootstrap) puts them around the real objects."""

from __future__ import annotations

from time import perf_counter
from types import TracebackType
from typing import Any, cast

from service.application.ports import LoyaltyStore, Transaction
from service.core.conditions import Facts
from service.core.evaluation import Matcher
from service.observability.metrics import observe_evaluation, observe_ledger_write

# Store methods that write a use case's changes; the time from the first of them to the
# commit is the ledger write latency, labelled with the operation (events: "apply").
WRITES = {
    "write_group": "apply",
    "save_redemption": "save_redemption",
    "reverse_redemption": "reverse_redemption",
    "redeem_offer": "redeem_offer",
    "write_posting": "write_posting",
}


class TimedMatcher:
    """A Matcher that observes how long each match takes; everything else is the inner's."""

    def __init__(self, inner: Matcher) -> None:
        self.inner = inner
        self.name = inner.name

    def match(self, facts: Facts) -> frozenset[str]:
        started = perf_counter()
        try:
            return self.inner.match(facts)
        finally:
            observe_evaluation(perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class MeasuredUnitOfWork:
    """A UnitOfWork whose commit observes the time since the first write to its store."""

    def __init__(self, inner: Transaction[Any]) -> None:
        self._inner = inner
        self._store: _MeasuredStore | None = None

    @property
    def store(self) -> LoyaltyStore:
        assert self._store is not None, "use the unit of work as a context manager"
        return cast(LoyaltyStore, self._store)

    def __enter__(self) -> MeasuredUnitOfWork:
        self._inner.__enter__()
        self._store = _MeasuredStore(self._inner.store)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._store = None
        self._inner.__exit__(exc_type, exc, tb)

    def commit(self) -> None:
        self._inner.commit()
        store = self._store
        if store is not None and store.write_started is not None:
            observe_ledger_write(store.operation, perf_counter() - store.write_started)
            store.write_started = None


class _MeasuredStore:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.write_started: float | None = None
        self.operation = ""

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in WRITES:
            return attribute

        def write(*args: Any, **kwargs: Any) -> Any:
            if self.write_started is None:
                self.write_started = perf_counter()
                self.operation = WRITES[name]
            return attribute(*args, **kwargs)

        return write
