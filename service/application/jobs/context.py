"""What every job gets: storage, the active rules, a clock, the channels, the runner."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from service.application.delivery import Channel
from service.application.job_ports import JobUnitOfWorkFactory
from service.application.outbox import OutboxPolicy
from service.application.rules_runtime import ActiveRules

Clock = Callable[[], datetime]


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
