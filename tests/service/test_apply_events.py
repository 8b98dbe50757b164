"""The event path's use cases (apply_event, apply_batch, apply_group) against the
in-memory store and against SQLite and PostgreSQL: the same promises on all three."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from service.application.apply_event import (
    EventOutcome,
    EventUnitOfWorkFactory,
    apply_batch,
    apply_event,
    apply_group,
)
from service.application.memory_store import MemoryDatabase
from service.application.rules_runtime import ActiveRules, RulesRuntime
from service.core.errors import EventConflict
from service.core.events import Event
from service.event_schema import parse_event
from service.rules.loader import read_rules_dir
from service.rules.matchers import build_matcher
from service.settings import Settings
from service.storage.tables import ledger_entries, members, point_lots
from tests.conftest import RULES_DIR, FixedClock
from tests.service.helpers import event, purchase, refund, services_for


@dataclass
class EventPath:
    uow: EventUnitOfWorkFactory
    rules: ActiveRules
    clock: FixedClock
    balance: Callable[[str], tuple[int, int, int]]  # (member's available, ledger sum, lots left)


@pytest.fixture(scope="module")
def example_rules() -> ActiveRules:
    runtime = RulesRuntime(
        lambda ruleset: build_matcher(ruleset.rules, ruleset.version, "reference", lambda _: None)
    )
    return runtime.load(read_rules_dir(str(RULES_DIR)))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def path(request: pytest.FixtureRequest, example_rules: ActiveRules) -> Iterator[EventPath]:
    clock = FixedClock()
    if request.param == "memory":
        database = MemoryDatabase()

        def memory_balance(customer_id: str) -> tuple[int, int, int]:
            state = database.state
            ledger = sum(line.points for c, _e, line in state.ledger if c == customer_id)
            lots = sum(lot.remaining for c, lot in state.lots.values() if c == customer_id)
            return state.members[customer_id].points_available, ledger, lots

        yield EventPath(database.unit_of_work, example_rules, clock, memory_balance)
        return
    url = request.getfixturevalue(f"{request.param}_url")
    settings = Settings(database_url=url, rules_dir=str(RULES_DIR), engine="reference")
    with services_for(settings, clock) as services:

        def sql_balance(customer_id: str) -> tuple[int, int, int]:
            with services.db.connect() as connection:
                available = connection.execute(
                    select(members.c.points_available).where(members.c.customer_id == customer_id)
                ).scalar_one()
                ledger = connection.execute(
                    select(func.coalesce(func.sum(ledger_entries.c.points), 0)).where(
                        ledger_entries.c.customer_id == customer_id
                    )
                ).scalar_one()
                lots = connection.execute(
                    select(func.coalesce(func.sum(point_lots.c.remaining), 0)).where(
                        point_lots.c.customer_id == customer_id
                    )
                ).scalar_one()
            return int(available), int(ledger), int(lots)

        yield EventPath(services.uow, example_rules, clock, sql_balance)


def parsed(body: dict[str, object]) -> Event:
    return parse_event(body)


def points(outcome: EventOutcome) -> int:
    return sum(e["points"] for e in outcome.answer["effects"] if e["type"] == "award_points")


def test_an_event_is_applied_once_and_its_repeat_answers_the_same(path: EventPath) -> None:
    body = purchase("ann", "120.80")
    first = apply_event(path.uow, path.rules, parsed(body), path.clock)
    again = apply_event(path.uow, path.rules, parsed(body), path.clock)
    assert (first.status, again.status) == ("applied", "duplicate")
    assert again.answer["effects"] == first.answer["effects"]
    assert points(first) == 120
    with pytest.raises(EventConflict):
        apply_event(path.uow, path.rules, parsed({**body, "amount": "99"}), path.clock)
    assert path.balance("ann") == (120, 120, 120)


def test_a_members_events_in_one_group_see_each_other(path: EventPath) -> None:
    bought = purchase("bob", "200")
    later = purchase("bob", "50")
    back = refund("bob", bought["order_id"], "200")
    outcomes = apply_group(
        path.uow, path.rules, [parsed(bought), parsed(later), parsed(back)], path.clock
    )
    assert all(isinstance(o, EventOutcome) for o in outcomes)
    answers = [o.answer for o in outcomes if isinstance(o, EventOutcome)]
    assert [a["customer"]["points"]["available"] for a in answers] == [200, 250, 50]
    assert path.balance("bob") == (50, 50, 50)


def test_a_batch_answers_each_event_on_its_own(path: EventPath) -> None:
    known = purchase("cy", "10")
    apply_event(path.uow, path.rules, parsed(known), path.clock)
    batch = [
        parsed(purchase("dee", "30")),
        parsed(known),  # a repeat
        parsed({**known, "amount": "11"}),  # the same event_id, another body
        parsed(purchase("cy", "20")),
        parsed({**event("activity", "dee"), "kind": "review"}),
    ]
    outcomes = apply_batch(path.uow, path.rules, batch, path.clock)
    kinds = [o.status if isinstance(o, EventOutcome) else "conflict" for o in outcomes]
    assert kinds == ["applied", "duplicate", "conflict", "applied", "applied"]
    assert path.balance("cy") == (30, 30, 30)
    assert path.balance("dee")[0] == path.balance("dee")[1] == path.balance("dee")[2]


def test_the_same_event_twice_in_one_group_is_applied_once(path: EventPath) -> None:
    body = purchase("eve", "40")
    outcomes = apply_group(path.uow, path.rules, [parsed(body), parsed(body)], path.clock)
    assert [o.status for o in outcomes if isinstance(o, EventOutcome)] == [
        "applied",
        "duplicate",
    ]
    assert path.balance("eve") == (40, 40, 40)


def test_a_referral_in_a_group_rewards_the_referrer_once(path: EventPath) -> None:
    apply_event(path.uow, path.rules, parsed(purchase("gil", "10")), path.clock)
    group = [
        parsed(event("referral", "hal", referrer_id="gil")),
        parsed(purchase("hal", "80")),
        parsed(purchase("gil", "5")),
    ]
    outcomes = apply_group(path.uow, path.rules, group, path.clock)
    assert all(isinstance(o, EventOutcome) for o in outcomes)
    available, ledger, lots = path.balance("gil")
    assert available == ledger == lots
    assert available > 15  # the referrer's reward came on top of their own purchases
    assert path.balance("hal")[0] == path.balance("hal")[1]


def test_a_group_decides_as_one_event_after_another(path: EventPath) -> None:
    # The referrer's first event comes after the referral: to the referral, the referrer
    # does not exist yet, whether the two share a group or not.
    together = [
        parsed(event("referral", "kim", referrer_id="lee")),
        parsed(purchase("lee", "10")),
    ]
    apply_group(path.uow, path.rules, together, path.clock)
    apart = [
        parsed(event("referral", "max", referrer_id="ned")),
        parsed(purchase("ned", "10")),
    ]
    for one in apart:
        apply_event(path.uow, path.rules, one, path.clock)
    assert path.balance("lee") == path.balance("ned") == (10, 10, 10)
    assert path.balance("kim")[0] == path.balance("max")[0]
