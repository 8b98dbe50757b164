"""Replaying events through one rules version, with the members held in memory.

Each event is decided and applied exactly as the live service does it: ``record_event``
(service.application.apply_event) against a WorkingSet holding every member, which is
never written anywhere. What the report counts comes from each event's outcome (its
effects and the changes it made) and from the working set at the end. Scheduled jobs
(expiry, release of pending points, tier reviews) are not run, just as a replay of events
alone would not trigger them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from service.application.apply_event import record_event
from service.application.member_state import MemberState, MemoryOnly
from service.application.ports import BudgetChange
from service.application.replay_records import (
    CampaignTally,
    CustomerOutcome,
    MemberSeed,
    ReplayResult,
)
from service.application.rules_runtime import ActiveRules
from service.application.working_set import WorkingSet
from service.core.effects import AwardPoints, ClawBackPoints
from service.core.evaluation import BudgetUse
from service.core.events import Event
from service.core.ledger import Lot

__all__ = [
    "BudgetSpend",
    "CampaignTally",
    "CustomerOutcome",
    "MemberSeed",
    "Replay",
    "ReplayResult",
]

# A replay never stores an event: no canonical JSON, no body hash. Every repeat of an
# event_id is a duplicate, as the service answers a repeat of the same body.
_NO_PAYLOAD: dict[str, Any] = {}
_NO_DIGEST = ""


@dataclass(frozen=True, slots=True)
class BudgetSpend:
    """What one event changed in one budgeted campaign's use, at its place in the events."""

    position: int
    campaign: str
    points: int
    offers: int


class _EventTime:
    """The replay's clock: the moment of the event being replayed (members it creates are
    first seen then, messages it queues are created then)."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = datetime.min.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


class Replay:
    """One rules version, fed events in the order the service received them.

    ``record_budgets``: note every change to a budgeted campaign's use with the event's
    position, so replays of separate shares of the members can be checked against each
    other (service.application.replay_shares).
    """

    def __init__(
        self,
        rules: ActiveRules,
        seeds: Mapping[str, MemberSeed] | None = None,
        budgets: Mapping[str, BudgetUse] | None = None,
        *,
        record_budgets: bool = False,
    ) -> None:
        self.rules = rules
        self.result = ReplayResult(rules.version)
        self.members = WorkingSet(MemoryOnly(), rules.budgeted, keep_writes=False)
        for customer_id, seed in (seeds or {}).items():
            self.members.members[customer_id] = _seeded(seed, 1 + 2 * len(self.members.members))
        budgeted = set(rules.budgeted)
        self.members.budgets.update({c: use for c, use in (budgets or {}).items() if c in budgeted})
        # Seeded members count in the report once an event reaches them, as they would
        # have been read from the tables only then.
        self._untouched = set(seeds or ())
        self._clock = _EventTime()
        self._seen: set[str] = set()
        self.spends: list[BudgetSpend] | None = [] if record_budgets else None

    def apply(self, event: Event, position: int = 0) -> None:
        if event.event_id in self._seen:
            self.result.duplicates += 1  # the service answers a repeat and changes nothing
            return
        self._seen.add(event.event_id)
        self._clock.at = event.occurred_at
        outcome = record_event(
            self.members, self.rules, event, _NO_DIGEST, _NO_PAYLOAD, self._clock
        )
        # The working set keeps each event with its answer for a repeat in the group; a
        # replay of a million events knows its repeats by id alone.
        self.members.events.pop(event.event_id, None)
        changes, evaluation = outcome.changes, outcome.evaluation
        assert changes is not None
        assert evaluation is not None
        customer_id = event.customer_id
        self.result.count(customer_id, evaluation.effects)
        # A purchase's outcome holds the refunds that came before it and it applied.
        for applied in (changes, *outcome.held_applied):
            self.result.count_messages(
                customer_id, [m.campaign for m in applied.messages if m.status != "suppressed"]
            )
            if self.spends is not None and applied.budgets:
                self._note_spends(position, applied.budgets)
        if self._untouched:
            self._touch(event, evaluation.effects)

    def _touch(self, event: Event, effects: tuple[Any, ...]) -> None:
        untouched = self._untouched
        untouched.discard(event.customer_id)
        if event.type == "referral" and event.referrer_id is not None:
            untouched.discard(event.referrer_id)
        for effect in effects:
            if isinstance(effect, AwardPoints | ClawBackPoints) and effect.customer_id is not None:
                untouched.discard(effect.customer_id)

    def _note_spends(self, position: int, changes: list[BudgetChange]) -> None:
        assert self.spends is not None
        budgeted = self.rules.budgeted
        for change in changes:
            if change.campaign in budgeted and (change.points or change.offers):
                self.spends.append(
                    BudgetSpend(position, change.campaign, change.points, change.offers)
                )

    def finish(self) -> ReplayResult:
        """Close the books: final balances and tiers, budgets, the tier distribution."""
        result = self.result
        lowest = self.rules.ruleset.programme.tiers.level(None)
        tiers: Counter[str] = Counter()
        for customer_id, state in self.members.members.items():
            if customer_id in self._untouched:
                continue
            record = state.record
            outcome = result.customers.get(customer_id)
            if outcome is None:
                outcome = result.customers[customer_id] = CustomerOutcome()
            outcome.balance = record.points_available + record.points_pending
            outcome.debt = record.points_debt
            outcome.tier = record.tier or (lowest.name if lowest else None)
            tiers[outcome.tier or "-"] += 1
        result.tiers = dict(sorted(tiers.items()))
        result.budgets = dict(sorted(self.members.budgets.items()))
        return result


def _seeded(seed: MemberSeed, lot_id: int) -> MemberState:
    """A member as the database knew them when the span began: a copy, as each version
    changes its own. A seeded balance is one lot, spendable and never expiring within the
    replay, earned when the member was first seen (before any replayed lot). Its id is
    positive, as a stored lot's is; the working set names the lots it makes negatively."""
    record = replace(seed.record, tags=list(seed.record.tags))
    state = MemberState(
        record,
        firings={k: list(v) for k, v in seed.firings.items()},
        earned=list(seed.earned),
        referrals_rewarded=list(seed.referrals_rewarded),
    )
    for order in seed.orders:
        state.orders.include(replace(order))
    state.order_awards = {
        order_id: [replace(award) for award in awards]
        for order_id, awards in seed.order_awards.items()
    }
    for held in seed.held:
        state.held.setdefault(held.order_id, []).append(replace(held))
    state.referrer_awards = {
        order_id: [replace(award) for award in awards]
        for order_id, awards in seed.referrer_awards.items()
    }
    opening = ((record.points_available, False, lot_id), (record.points_pending, True, lot_id + 1))
    for points, pending, key in opening:
        if points > 0:
            state.lots[key] = Lot(key, record.first_seen_at, points, None, None, pending)
    return state
