"""A year of a programme's life for the report tests, generated from a seed through the
real paths (events, redemptions and reversals over HTTP, adjustments, the expiry and
release jobs), and the tables read back whole so the tests can count by hand.

The programme: a point per CNY (pending 14 days), referral rewards, a budgeted bonus for
big baskets, points that expire 90 days after they are earned, tiers by spend.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from service.application.manual_points import Adjustment, adjust_points
from service.bootstrap import Services
from service.storage.tables import (
    events,
    ledger_entries,
    members,
    order_awards,
    orders,
    point_lots,
    referrals,
    tier_history,
)
from tests.conftest import AUTH, RULES_DIR, FixedClock
from tests.service.helpers import app_for
from tests.service.jobs_helpers import EARN, context, run, services_on, write_programme

ZONE = ZoneInfo("Asia/Shanghai")
BIG_BASKET = """\
campaign: big-basket
description: fifty points on baskets of 500 CNY or more, while the budget lasts
budget: {points: 1500}
rules:
  - name: fifty
    when: {type: purchase, amount: {gte: 500}}
    then:
      - award_points: {points: 50, tier_multiplier: false}
tests:
  - name: a big basket
    event: {type: purchase, amount: 600, occurred_at: 2026-12-02T10:00:00+08:00}
    expect: {points: 50}
"""
PROGRAMME = {
    "expiry: {after: 365d, warn_before: [30d, 7d]}": "expiry: {after: 90d}",
    "pending: {for: [purchase], days: 0}": "pending: {for: [purchase], days: 14}",
}


def write_report_rules(directory: Path) -> Path:
    referral = (RULES_DIR / "campaigns" / "referral-rewards.yaml").read_text(encoding="utf-8")
    campaigns = {
        "earn.yaml": EARN,
        "referral-rewards.yaml": referral,
        "big-basket.yaml": BIG_BASKET,
    }
    return write_programme(directory, campaigns, PROGRAMME)


@contextmanager
def report_services(database_url: str, directory: Path) -> Iterator[tuple[Services, FixedClock]]:
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=ZONE))
    with services_on(database_url, write_report_rules(directory), clock) as services:
        yield services, clock


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), ZONE)


@dataclass
class History:
    """What the generator did, and the liability it read at each checkpoint as it went."""

    seen_at_checkpoints: dict[date, Any] = field(default_factory=dict)
    redemptions: int = 0
    reversals: int = 0
    refunds: int = 0
    referrals: int = 0


def generate(
    services: Services,
    clock: FixedClock,
    seed: int,
    checkpoints: tuple[date, ...],
    read_liability: Callable[[date], Any],
) -> History:
    """About a year of traffic for ~30 members, in time order. At the first step past the
    end of each checkpoint day, the liability of that day is read and kept."""
    rng = random.Random(seed)
    client = app_for(services).test_client()
    ctx = context(services)
    history = History()
    known: list[str] = []
    refundable: dict[tuple[str, str], Decimal] = {}
    completed: list[tuple[str, str]] = []
    waiting = sorted(checkpoints)
    serial = 0
    moment = datetime(2026, 1, 3, 9, 0, tzinfo=ZONE)
    while moment < datetime(2027, 1, 20, tzinfo=ZONE):
        while waiting and moment >= end_of(waiting[0]):
            day = waiting.pop(0)
            history.seen_at_checkpoints[day] = read_liability(day)
        clock.now = moment
        batch: list[dict[str, Any]] = []
        for offset in range(rng.randint(1, 5)):
            serial += 1
            at = (moment + timedelta(seconds=offset)).isoformat()
            base = {"event_id": f"e-{serial}", "occurred_at": at}
            roll = rng.random()
            if not known or roll < 0.12:  # someone new, referred by a member or not
                customer = f"m-{len(known):02d}"
                known.append(customer)
                if len(known) > 3 and rng.random() < 0.6:
                    referrer = rng.choice(known[:-1])
                    batch.append(
                        {
                            **base,
                            "type": "referral",
                            "customer_id": customer,
                            "referrer_id": referrer,
                        }
                    )
                    history.referrals += 1
                    continue
            else:
                customer = rng.choice(known)
            if refundable and roll > 0.85:
                (owner, order), left = rng.choice(sorted(refundable.items()))
                amount = left if rng.random() < 0.5 else (left / 2).quantize(Decimal("0.01"))
                batch.append(
                    {
                        **base,
                        "type": "refund",
                        "customer_id": owner,
                        "order_id": order,
                        "amount": str(amount),
                    }
                )
                refundable[(owner, order)] = left - amount
                if refundable[(owner, order)] <= 0:
                    del refundable[(owner, order)]
                history.refunds += 1
                continue
            if roll > 0.80:
                batch.append(
                    {**base, "type": "activity", "customer_id": customer, "kind": "check_in"}
                )
                continue
            amount = Decimal(rng.randint(2000, 90000)) / 100
            order = f"o-{serial}"
            batch.append(
                {
                    **base,
                    "type": "purchase",
                    "customer_id": customer,
                    "order_id": order,
                    "amount": str(amount),
                }
            )
            refundable[(customer, order)] = amount
        answer = client.post("/v1/events/batch", json={"events": batch}, headers=AUTH)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        statuses = {r["status"] for r in answer.get_json()["results"]}
        assert statuses <= {"applied"}, answer.get_json()
        clock.now = moment + timedelta(minutes=5)
        if known and rng.random() < 0.5:
            customer = rng.choice(known)
            redemption = f"r-{serial}"
            spent = client.post(
                f"/v1/customers/{customer}/redemptions",
                json={"reward_id": "free-coffee", "redemption_id": redemption},
                headers=AUTH,
            )
            assert spent.status_code in (201, 409), spent.get_data(as_text=True)
            if spent.status_code == 201:
                completed.append((customer, redemption))
                history.redemptions += 1
        if completed and rng.random() < 0.1:
            customer, redemption = completed.pop(rng.randrange(len(completed)))
            back = client.delete(f"/v1/customers/{customer}/redemptions/{redemption}", headers=AUTH)
            assert back.status_code == 200, back.get_data(as_text=True)
            history.reversals += 1
        if known and rng.random() < 0.05:
            adjust_points(
                services.uow,
                Adjustment(
                    f"adj-{serial}",
                    rng.choice(known),
                    rng.choice([25, -10]),
                    "desk",
                    True,
                    "desk",
                    clock(),
                ),
                services.rules.active.ruleset.programme.points,
            )
        moment += timedelta(days=rng.randint(1, 4), hours=rng.randint(0, 10))
        run(ctx, "release-pending", moment)
        run(ctx, "expire-points", moment)
    for day in waiting:
        history.seen_at_checkpoints[day] = read_liability(day)
    return history


@dataclass(frozen=True)
class Tables:
    """Every row of the tables the reports read, as plain dicts."""

    ledger: list[dict[str, Any]]
    lots: dict[int, dict[str, Any]]
    events: list[dict[str, Any]]
    members: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    order_awards: list[dict[str, Any]]
    referrals: list[dict[str, Any]]
    tier_history: list[dict[str, Any]]


def read_tables(engine: Engine) -> Tables:
    with engine.connect() as connection:

        def rows(table: Any) -> list[dict[str, Any]]:
            return [dict(r) for r in connection.execute(select(table)).mappings()]

        return Tables(
            ledger=rows(ledger_entries),
            lots={lot["id"]: lot for lot in rows(point_lots)},
            events=rows(events),
            members=rows(members),
            orders=rows(orders),
            order_awards=rows(order_awards),
            referrals=rows(referrals),
            tier_history=rows(tier_history),
        )
