"""Group commit: single events that arrive together in one worker share a transaction.

The first request to find no group being written becomes the leader: it takes every
event waiting (its own among them), applies them as one group and hands each request its
own outcome. Requests arriving meanwhile wait for the next group, which the oldest of
them is woken to lead. With no load a group is one event and nobody waits on a timer; under load
one commit (and one flush to disk) serves many requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from service.application.apply_event import EventOutcome, Outcome
from service.application.rules_runtime import ActiveRules
from service.core.events import Event

ApplyGroup = Callable[[ActiveRules, Sequence[Event]], list[Outcome]]
MAX_GROUP = 64


@dataclass(eq=False, slots=True)
class _Waiting:
    rules: ActiveRules
    event: Event
    outcome: Outcome | None = None
    done: bool = False
    lead: bool = False  # this request writes the next group
    # Set once the outcome is in, or the lead handed over: each request is woken for
    # its own reason only, never all of them whenever a group ends.
    wake: threading.Event = field(default_factory=threading.Event)


class GroupCommit:
    def __init__(
        self,
        apply_group: ApplyGroup,
        on_group: Callable[[int], None] = lambda size: None,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._apply = apply_group
        self._on_group = on_group
        self._max = max_group
        self._guard = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._writing = False

    def apply(self, rules: ActiveRules, event: Event) -> EventOutcome:
        """Apply one event in whichever group it joins; raises what that event met
        (EventConflict for an event_id reused with another body)."""
        mine = _Waiting(rules, event)
        with self._guard:
            self._waiting.append(mine)
            if not self._writing:
                self._writing = mine.lead = True
        if not mine.lead:
            mine.wake.wait()
        if mine.lead:
            try:
                while not mine.done:
                    with self._guard:
                        group = self._take()
                    self._lead(group)
            finally:
                self._hand_over()
        outcome = mine.outcome
        if isinstance(outcome, Exception):
            raise outcome
        assert isinstance(outcome, EventOutcome)
        return outcome

    @property
    def waiting(self) -> int:
        """Requests waiting for a group (not counting one being written)."""
        with self._guard:
            return len(self._waiting)

    def _hand_over(self) -> None:
        """The oldest request still waiting writes the next group; none: nobody writes."""
        with self._guard:
            if self._waiting:
                following = self._waiting[0]
                following.lead = True
                following.wake.set()
            else:
                self._writing = False

    def _take(self) -> list[_Waiting]:
        """The oldest waiting events of one rules version (a reload between requests
        starts a new group)."""
        rules = self._waiting[0].rules
        group = [w for w in self._waiting if w.rules is rules][: self._max]
        taken = set(map(id, group))
        self._waiting = [w for w in self._waiting if id(w) not in taken]
        return group

    def _lead(self, group: list[_Waiting]) -> None:
        self._on_group(len(group))
        try:
            outcomes: list[Outcome] = self._apply(group[0].rules, [w.event for w in group])
        except Exception as error:
            outcomes = [error] * len(group)
        for waiting, outcome in zip(group, outcomes, strict=True):
            waiting.outcome = outcome
            waiting.done = True
            waiting.wake.set()
