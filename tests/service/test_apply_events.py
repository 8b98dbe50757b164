"""The event path's use cases (apply_event, apply_batch, apply_group) against the
in-memory store and against SQLite and PostgreSQL: the same promises on all three."""

from __future__ import annotations

import pytest

from service.application.apply_event import (
    EventOutcome,
    apply_batch,
    apply_event,
    apply_group,
)
from service.core.errors import EventConflict
from service.core.events import Event
from service.event_schema import parse_event
from tests.conftest import EventPath
from tests.service.helpers import event, purchase, refund


@pytest.fixture
def path(event_path: EventPath) -> EventPath:
    """The in-memory store, SQLite and PostgreSQL in turn (tests/conftest.py)."""
    return event_path


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


def test_a_batch_whose_transaction_fails_is_applied_event_by_event(
    memory_path: EventPath,
) -> None:
    # The batch's one transaction fails at commit (a lost connection, a deadlock): it is
    # rolled back whole, and each event is then applied in its own transaction. What the
    # use case does then is no database's business: the in-memory store shows it.
    path = memory_path
    applied_before = parse_event(purchase("bea", "20"))
    apply_event(path.uow, path.rules, applied_before, path.clock)
    failed = []

    def uow_failing_once():  # type: ignore[no-untyped-def]
        uow = path.uow()
        if not failed:
            failed.append(True)

            def commit() -> None:
                raise ConnectionError("the connection was lost")

            uow.commit = commit  # type: ignore[method-assign]
        return uow

    batch = [
        parse_event(purchase("bea", "30")),
        applied_before,
        parse_event(purchase("cy", "5")),
    ]
    outcomes = apply_batch(uow_failing_once, path.rules, batch, path.clock)

    assert failed
    assert [getattr(o, "status", None) for o in outcomes] == ["applied", "duplicate", "applied"]
    assert path.balance("bea") == (20 + 30, 20 + 30, 20 + 30)
    assert path.balance("cy") == (5, 5, 5)
