"""The ledger's promises under random sequences of everything that moves points.

A hypothesis state machine drives purchases, refunds (part, whole, of unknown orders),
redemptions (affordable or not, repeated), replayed and conflicting duplicates, the clock
moving on, and the expiry and pending-release jobs, through the application layer, on
SQLite and PostgreSQL. After every step, for every member:

- balance (available + pending) = sum of what the lots have left = sum of ledger points;
- debt = sum of ledger debt; no balance, debt or lot below zero;
- lifetime spend = what is left of the member's orders once refunds are taken off;
- a duplicate (event or redemption) answers what the first did and changes no row.

The programme is the example one with points pending for 7 days after a purchase,
expiring 60 days after they were earned, and cheaper rewards, so that every kind of
ledger line occurs in a short run.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from service.application.apply_event import apply_event
from service.application.jobs import JobContext, run_job
from service.application.rewards import redeem_reward
from service.bootstrap import Services, build_services
from service.core.errors import EventConflict, InsufficientPoints, NotFound
from service.event_schema import parse_event
from service.settings import Settings
from service.storage.tables import members, orders
from tests.conftest import RULES_DIR, FixedClock
from tests.databases import empty_tables, row_counts
from tests.service.helpers import assert_balanced, member_row

MEMBERS = ("ann", "bob", "cat")
REWARDS = ("free-coffee", "voucher-50", "no-such-reward")
START = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
# Bounded for `make test` (about 10-20 s per database); raise for a longer hunt.
STEPS = int(os.environ.get("LOYALTY_PROPERTY_STEPS", "25"))
EXAMPLES = int(os.environ.get("LOYALTY_PROPERTY_EXAMPLES", "10"))
amounts = st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal("3000"), places=2, allow_nan=False
)


@pytest.fixture
def property_services(database_url: str, tmp_path: Path) -> Iterator[Services]:
    rules = tmp_path / "rules"
    (rules / "campaigns").mkdir(parents=True)
    programme = (RULES_DIR / "program.yaml").read_text(encoding="utf-8")
    for old, new in {
        "expiry: {after: 365d,": "expiry: {after: 60d,",
        "pending: {for: [purchase], days: 0}": "pending: {for: [purchase], days: 7}",
        "cost: 500}": "cost: 50}",  # cheap rewards: redemptions go through often
        "cost: 5000}": "cost: 700}",
    }.items():
        assert old in programme, f"rules/program.yaml no longer has {old!r}"
        programme = programme.replace(old, new)
    (rules / "program.yaml").write_text(programme, encoding="utf-8")
    for campaign in (RULES_DIR / "campaigns").glob("*.yaml"):
        (rules / "campaigns" / campaign.name).write_bytes(campaign.read_bytes())
    clock = FixedClock(START)
    built = build_services(
        Settings(database_url=database_url, rules_dir=str(rules), engine="reference"),
        clock=clock,
        load_rules=False,
    )
    yield built
    built.db.dispose()


def test_the_ledger_keeps_its_promises(property_services: Services) -> None:
    services = property_services
    clock: FixedClock = services.clock  # type: ignore[assignment]
    ids = itertools.count(1)
    jobs = JobContext(
        uow=services.uow,  # type: ignore[arg-type]
        rules=lambda: services.rules.active,
        clock=services.clock,
    )

    class Ledger(RuleBasedStateMachine):
        orders = Bundle("orders")
        events = Bundle("events")
        redemptions = Bundle("redemptions")

        def __init__(self) -> None:
            super().__init__()
            empty_tables(services.db)
            services.reload_rules()
            clock.now = START

        @initialize(target=orders, amount=amounts)
        def a_first_purchase_each_gone_through_the_return_window(self, amount: Decimal) -> Any:
            first = [self.purchase(customer_id, amount) for customer_id in MEMBERS]
            self.time_passes(8)
            return multiple(*first)

        # -- what moves points

        def send(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
            outcome = apply_event(
                services.uow, services.rules.active, parse_event(body), services.clock
            )
            assert outcome.status == "applied", outcome.answer
            return body, outcome.answer

        def event(self, event_type: str, customer_id: str, **fields: Any) -> dict[str, Any]:
            return {
                "event_id": f"evt-{next(ids)}",
                "type": event_type,
                "customer_id": customer_id,
                "occurred_at": clock.now.isoformat(),
                **fields,
            }

        @rule(target=orders, customer_id=st.sampled_from(MEMBERS), amount=amounts)
        def purchase(self, customer_id: str, amount: Decimal) -> tuple[str, str, Decimal]:
            order_id = f"order-{next(ids)}"
            self.send(self.event("purchase", customer_id, order_id=order_id, amount=str(amount)))
            return customer_id, order_id, amount

        @rule(
            target=events,
            customer_id=st.sampled_from(MEMBERS),
            kind=st.sampled_from(["review", "check_in", "app_login"]),
        )
        def activity(self, customer_id: str, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
            return self.send(self.event("activity", customer_id, kind=kind))

        @rule(target=events, order=orders, share=st.sampled_from([1, 2, 3, 4]))
        def refund(
            self, order: tuple[str, str, Decimal], share: int
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            """A quarter, a half, three quarters or all of an order (again and again: a
            refund beyond what is left claws back nothing more)."""
            customer_id, order_id, amount = order
            part = max(Decimal("0.01"), (amount * share / 4).quantize(Decimal("0.01")))
            return self.send(self.event("refund", customer_id, order_id=order_id, amount=str(part)))

        @rule(customer_id=st.sampled_from(MEMBERS), amount=amounts)
        def refund_of_an_unknown_order(self, customer_id: str, amount: Decimal) -> None:
            self.send(
                self.event("refund", customer_id, order_id=f"never-{next(ids)}", amount=str(amount))
            )

        @rule(
            target=redemptions,
            customer_id=st.sampled_from(MEMBERS),
            reward_id=st.sampled_from(REWARDS),
        )
        def redeem(self, customer_id: str, reward_id: str) -> tuple[str, str, str, Any]:
            redemption_id = f"red-{next(ids)}"
            before = snapshot(services)
            try:
                status, answer = redeem_reward(
                    services.uow,
                    services.rules.active,
                    customer_id,
                    reward_id,
                    redemption_id,
                    services.clock,
                )
            except (InsufficientPoints, NotFound):
                assert snapshot(services) == before, "a refused redemption changed rows"
                return customer_id, reward_id, redemption_id, None
            assert status == "created"
            return customer_id, reward_id, redemption_id, answer

        # -- repeats change nothing

        @rule(sent=events)
        def the_same_event_again(self, sent: tuple[dict[str, Any], dict[str, Any]]) -> None:
            body, first = sent
            before = snapshot(services)
            outcome = apply_event(
                services.uow, services.rules.active, parse_event(body), services.clock
            )
            assert outcome.status == "duplicate"
            assert {**outcome.answer, "status": "applied"} == first
            assert snapshot(services) == before, "a duplicate changed rows"

        @rule(sent=consumes(events))
        def the_same_event_id_with_another_body(
            self, sent: tuple[dict[str, Any], dict[str, Any]]
        ) -> None:
            body, _ = sent
            other = {**body, "occurred_at": (clock.now + timedelta(seconds=1)).isoformat()}
            before = snapshot(services)
            with pytest.raises(EventConflict):
                apply_event(services.uow, services.rules.active, parse_event(other), services.clock)
            assert snapshot(services) == before, "a conflicting duplicate changed rows"

        @rule(redemption=redemptions)
        def the_same_redemption_again(self, redemption: tuple[str, str, str, Any]) -> None:
            customer_id, reward_id, redemption_id, first = redemption
            if first is None and affordable(services, customer_id, reward_id):
                # Nothing of a refused redemption is kept (see redeem), so once the member
                # can afford the reward the same id is a new request, not a repeat.
                return
            before = snapshot(services)
            try:
                status, answer = redeem_reward(
                    services.uow,
                    services.rules.active,
                    customer_id,
                    reward_id,
                    redemption_id,
                    services.clock,
                )
            except (InsufficientPoints, NotFound):
                assert first is None, "a redemption that went through was refused when repeated"
            else:
                assert first is not None, "a refused redemption went through when repeated"
                assert status == "duplicate"
                assert {k: v for k, v in answer.items() if k != "points_available"} == {
                    k: v for k, v in first.items() if k != "points_available"
                }
            assert snapshot(services) == before, "a repeated redemption changed rows"

        # -- time

        @rule(days=st.integers(min_value=1, max_value=40))
        def time_passes(self, days: int) -> None:
            """...and the scheduler does what falls due: pending points become available,
            points older than 60 days expire."""
            clock.now += timedelta(days=days)
            run_job(jobs, "release-pending", clock.now)
            run_job(jobs, "expire-points", clock.now)

        @rule(job=st.sampled_from(["release-pending", "expire-points"]))
        def a_job_runs(self, job: str) -> None:
            run_job(jobs, job, clock.now)
            before = snapshot(services)
            run_job(jobs, job, clock.now)
            assert snapshot(services) == before, f"{job} run twice for one `now` did more"

        # -- after every step

        @invariant()
        def every_balance_is_its_ledger_and_its_lots(self) -> None:
            for customer_id in existing_members(services):
                assert_balanced(services.db, customer_id)

        @invariant()
        def lifetime_spend_is_what_is_left_of_the_orders(self) -> None:
            with services.db.connect() as connection:
                left = dict(
                    connection.execute(
                        select(
                            orders.c.customer_id,
                            func.sum(orders.c.amount - orders.c.refunded_amount),
                        ).group_by(orders.c.customer_id)
                    ).all()
                )
                spend = dict(
                    connection.execute(
                        select(members.c.customer_id, members.c.lifetime_spend)
                    ).all()
                )
            for customer_id, value in spend.items():
                assert value == left.get(customer_id, 0), customer_id

    run_state_machine_as_test(
        Ledger,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def existing_members(services: Services) -> list[str]:
    with services.db.connect() as connection:
        return list(connection.execute(select(members.c.customer_id)).scalars())


def affordable(services: Services, customer_id: str, reward_id: str) -> bool:
    reward = services.rules.active.ruleset.programme.reward(reward_id)
    member = member_row(services.db, customer_id)
    return reward is not None and member is not None and member["points_available"] >= reward.cost


def snapshot(services: Services) -> dict[str, Any]:
    """Row counts of every table (but the log of job runs) and every member's row."""
    counts = {name: n for name, n in row_counts(services.db).items() if name != "job_runs"}
    with services.db.connect() as connection:
        rows = [
            dict(row)
            for row in connection.execute(
                select(members).order_by(members.c.customer_id)
            ).mappings()
        ]
    return {"counts": counts, "members": rows}
