"""GroupCommit on its own: requests that arrive while a group is written form the next
group, each request gets its own outcome, and a failure stays with its event."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from service.application.apply_event import EventOutcome, Outcome
from service.application.group_commit import GroupCommit
from service.application.rules_runtime import ActiveRules
from service.core.errors import EventConflict
from service.core.events import Event

RULES = cast(ActiveRules, object())
OTHER_RULES = cast(ActiveRules, object())


def event(n: int) -> Event:
    return Event(f"e-{n}", "purchase", "m-1", datetime(2026, 12, 1, tzinfo=UTC))


class SlowFirstGroup:
    """Holds the first group until told, so that the others queue behind it."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()

    def __call__(self, rules: ActiveRules, events: Sequence[Event]) -> list[Outcome]:
        self.groups.append([e.event_id for e in events])
        if len(self.groups) == 1:
            self.first_started.set()
            assert self.release.wait(10)
        outcomes: list[Outcome] = []
        for e in events:
            if e.event_id == "e-3":
                outcomes.append(EventConflict("changed body"))
            elif e.event_id == "e-4":
                outcomes.append(RuntimeError("cannot evaluate"))
            else:
                outcomes.append(EventOutcome("applied", {"event_id": e.event_id}))
        return outcomes


def test_requests_that_arrive_together_share_the_next_group() -> None:
    apply = SlowFirstGroup()
    sizes: list[int] = []
    commit = GroupCommit(apply, on_group=sizes.append)

    def send(n: int) -> Any:
        try:
            return commit.apply(RULES, event(n)).answer["event_id"]
        except Exception as error:
            return type(error).__name__

    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(send, 0)
        assert apply.first_started.wait(10)
        rest = [pool.submit(send, n) for n in range(1, 8)]
        while len(commit._waiting) < 7:
            threading.Event().wait(0.01)
        apply.release.set()
        answers = [first.result(10)] + [f.result(10) for f in rest]
    assert answers == [
        "e-0",
        "e-1",
        "e-2",
        "EventConflict",
        "RuntimeError",
        "e-5",
        "e-6",
        "e-7",
    ]
    assert apply.groups[0] == ["e-0"]
    assert sorted(apply.groups[1]) == [f"e-{n}" for n in range(1, 8)]
    assert sizes == [1, 7]


def test_a_group_holds_one_rules_version() -> None:
    seen: list[tuple[object, list[str]]] = []

    def apply(rules: ActiveRules, events: Sequence[Event]) -> list[Outcome]:
        seen.append((rules, [e.event_id for e in events]))
        return [EventOutcome("applied", {}) for _ in events]

    commit = GroupCommit(apply)
    commit.apply(RULES, event(1))
    commit.apply(OTHER_RULES, event(2))
    assert seen == [(RULES, ["e-1"]), (OTHER_RULES, ["e-2"])]


def test_a_failing_apply_fails_each_event_of_its_group() -> None:
    def apply(rules: ActiveRules, events: Sequence[Event]) -> list[Outcome]:
        raise OSError("database gone")

    commit = GroupCommit(apply)
    with pytest.raises(OSError, match="database gone"):
        commit.apply(RULES, event(1))
    with pytest.raises(OSError, match="database gone"):  # and the next request leads again
        commit.apply(RULES, event(2))
