"""Single events that arrive together share a transaction (group commit), and each request
still gets exactly its own answer. Raced on SQLite and PostgreSQL from parallel clients."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from flask import Flask
from sqlalchemy import func, select

from service.application.apply_event import apply_group
from service.application.group_commit import GroupCommit
from service.application.rules_runtime import RulesRuntime
from service.bootstrap import Services
from service.core.conditions import Facts
from service.core.evaluation import Matcher
from service.core.programme import RuleSet
from service.rules.matchers import build_matcher
from service.settings import Settings
from service.storage.tables import events, members
from tests.conftest import AUTH, FixedClock
from tests.service.helpers import app_for, assert_balanced, points_of, purchase, services_for
from tests.service.test_concurrency import race

FAILING_AMOUNT = Decimal("66.61")


class FailsOnOneAmount:
    """The real matcher, except that an event of one amount makes it raise: an event that
    fails on its own, past the schema."""

    def __init__(self, inner: Matcher) -> None:
        self.inner = inner
        self.name = inner.name

    def match(self, facts: Facts) -> frozenset[str]:
        if facts.get("amount") == FAILING_AMOUNT:
            raise RuntimeError("this event cannot be evaluated")
        return self.inner.match(facts)


@pytest.fixture
def grouped(settings: Settings) -> Iterator[tuple[Services, list[int]]]:
    """Services whose matcher fails on one amount, with the size of every group recorded."""
    sizes: list[int] = []
    with services_for(settings, FixedClock()) as built:

        def matcher_for(ruleset: RuleSet) -> Matcher:
            real = build_matcher(ruleset.rules, ruleset.version, "durable", lambda _: None)
            return FailsOnOneAmount(real)

        built.rules = RulesRuntime(matcher_for)
        built.reload_rules()
        built.events = GroupCommit(
            lambda rules, evs: apply_group(built.uow, rules, evs, built.clock),
            on_group=sizes.append,
        )
        yield built, sizes


def test_requests_sharing_groups_each_get_their_own_answer(
    grouped: tuple[Services, list[int]],
) -> None:
    services, sizes = grouped
    app: Flask = app_for(services)
    customers = [f"grp-{n}" for n in range(8)]
    # Three purchases per member (distinct amounts, so each answer can be told apart).
    own = [purchase(c, f"{20 + 10 * k + n}.00") for n, c in enumerate(customers) for k in range(3)]
    repeated = own[:3]  # each posted twice
    changed = dict(own[3], amount="99.00")  # the same event_id, another body
    failing = purchase(customers[0], str(FAILING_AMOUNT))
    bodies = own + repeated + [changed, failing]
    bodies += [purchase(customers[n % 8], f"{200 + n}.00") for n in range(32 - len(bodies))]
    assert len(bodies) == 32

    results = race(app, bodies)

    for body, (status, answer) in zip(bodies, results, strict=True):
        if body is failing:
            assert status == 500, answer
            continue
        if status == 409:  # whichever of the two bodies came second
            assert body["event_id"] == changed["event_id"], answer
            continue
        assert status in (200, 201), answer
        assert answer["event_id"] == body["event_id"]
        assert answer["customer"]["customer_id"] == body["customer_id"]
        # base-earn: a point per whole CNY: the answer is this request's own event.
        assert points_of(answer) == int(Decimal(body["amount"])), (body, answer)
    by_id: dict[str, list[int]] = {}
    for body, (status, _) in zip(bodies, results, strict=True):
        by_id.setdefault(body["event_id"], []).append(status)
    for body in repeated:
        assert sorted(by_id[body["event_id"]]) == [200, 201]
    assert sorted(by_id[changed["event_id"]]) == [201, 409]
    assert max(sizes) > 1, f"no requests shared a group: {sizes}"

    with services.db.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(events)).scalar_one()
        assert (
            connection.execute(
                select(events.c.event_id).where(events.c.event_id == failing["event_id"])
            ).first()
            is None
        )
    winner = next(
        b
        for b, (status, _) in zip(bodies, results, strict=True)
        if b in (own[3], changed) and status == 201
    )
    applied = {b["event_id"]: b for b in bodies if b is not failing and b is not changed}
    applied[winner["event_id"]] = winner
    assert stored == len(applied)
    for customer in customers:
        expected = sum(
            int(Decimal(b["amount"])) for b in applied.values() if b["customer_id"] == customer
        )
        balances = assert_balanced(services.db, customer)
        assert balances["available"] == expected, customer
    with services.db.connect() as connection:
        counts = dict(
            connection.execute(select(members.c.customer_id, members.c.order_count)).all()
        )
    for customer in customers:
        assert counts[customer] == sum(1 for b in applied.values() if b["customer_id"] == customer)


def test_an_event_alone_is_a_group_of_one(grouped: tuple[Services, list[int]]) -> None:
    services, sizes = grouped
    client = app_for(services).test_client()
    for n in range(3):
        assert (
            client.post("/v1/events", json=purchase("solo", f"{n + 1}0"), headers=AUTH).status_code
            == 201
        )
    assert sizes == [1, 1, 1]
