"""Where `loyalty rules diff` reads its events: a JSON Lines file, or the events the
service stored since a moment (with every member's state as it stood then).

Besides all the events in order, a source answers the two questions replaying members in
shares asks (service.application.replay_shares): which members referrals link, and the
events of one share's members, each with its position among all the events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.application.event_source import (
    Skipped,
    count_lines,
    event_or_skipped,
    events_from_payloads,
    read_event_lines,
    read_lines_of,
)
from service.application.replay_records import MemberSeed
from service.application.replay_shares import Links, Shares
from service.core.evaluation import BudgetUse
from service.core.events import Event
from service.core.programme import RuleSet

Positioned = tuple[int, Event | Skipped]


@dataclass(frozen=True, slots=True)
class EventFile:
    """A JSON Lines file of events, as POST /v1/events takes them."""

    path: str

    def describe(self) -> str:
        return self.path

    def count(self) -> int:
        return count_lines(self.path)

    def events(self) -> Iterator[Event | Skipped]:
        return events_from_payloads(read_event_lines(self.path))

    def starting_states(
        self, ruleset: RuleSet
    ) -> tuple[dict[str, MemberSeed], dict[str, BudgetUse]]:
        return {}, {}  # every member in a file starts new

    def links(self) -> Links:
        """Members linked by referral lines: only lines naming a referrer are parsed."""
        links = Links()
        with open(self.path, "rb") as lines:
            for line in lines:
                if b'"referrer_id"' not in line:
                    continue
                try:
                    payload = json.loads(line)
                except ValueError:
                    continue
                _link(links, payload)
        return links

    def share_events(self, shares: Shares, index: int) -> Iterator[Positioned]:
        """The share's events (and the lines naming no member, in share 0), by line."""

        def wanted(customer_id: str | None) -> bool:
            return (shares.of(customer_id) if customer_id is not None else 0) == index

        for number, where, payload in read_lines_of(self.path, wanted):
            yield number, event_or_skipped(where, payload)


@dataclass(frozen=True, slots=True)
class StoredEvents:
    """The events the service stored since a moment, from its members' state then."""

    database_url: str
    since: datetime

    def describe(self) -> str:
        return f"events stored since {self.since.isoformat()}"

    def count(self) -> int:
        from service.storage.database import make_engine
        from service.storage.event_log import count_events

        engine = make_engine(self.database_url)
        try:
            return count_events(engine, self.since)
        finally:
            engine.dispose()

    def _payloads(self) -> Iterator[tuple[str, Any]]:
        from service.storage.database import make_engine
        from service.storage.event_log import stored_events

        engine = make_engine(self.database_url)
        try:
            yield from stored_events(engine, self.since)
        finally:
            engine.dispose()

    def events(self) -> Iterator[Event | Skipped]:
        return events_from_payloads(self._payloads())

    def starting_states(
        self, ruleset: RuleSet
    ) -> tuple[dict[str, MemberSeed], dict[str, BudgetUse]]:
        from service.storage.database import make_engine
        from service.storage.event_log import starting_states

        programme = ruleset.programme
        window = max(programme.tiers.window, programme.rfm.window)
        budgeted = sorted(c.id for c in ruleset.campaigns if c.budget is not None)
        engine = make_engine(self.database_url)
        try:
            return starting_states(engine, self.since, window, budgeted)
        finally:
            engine.dispose()

    def links(self) -> Links:
        links = Links()
        for _where, payload in self._payloads():
            _link(links, payload)
        return links

    def share_events(self, shares: Shares, index: int) -> Iterator[Positioned]:
        for position, (where, payload) in enumerate(self._payloads(), start=1):
            named = payload.get("customer_id") if isinstance(payload, Mapping) else None
            share = shares.of(named) if isinstance(named, str) else 0
            if share == index:
                yield position, event_or_skipped(where, payload)


Source = EventFile | StoredEvents


def _link(links: Links, payload: Any) -> None:
    if not isinstance(payload, Mapping):
        return
    customer, referrer = payload.get("customer_id"), payload.get("referrer_id")
    if isinstance(customer, str) and isinstance(referrer, str):
        links.link(customer, referrer)
