"""Replays (`loyalty replay`, `loyalty rules diff`) refund as the service does: a refund
held for its purchase, a referrer's thank-you taken back, an upgrade undone; from a file
(every member new) and from the database's state when the span began. On SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from service.application.replay import Replay
from service.bootstrap import Services
from service.event_schema import parse_event
from service.storage.event_log import starting_states
from tests.service.helpers import member_row, post

START = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
SINCE = START + timedelta(hours=10)


def at(hour: int) -> str:
    return (START + timedelta(hours=hour)).isoformat()


def _purchase(n: int, customer_id: str, order_id: str, amount: str) -> dict[str, Any]:
    return {
        "event_id": f"r-{n}",
        "type": "purchase",
        "customer_id": customer_id,
        "order_id": order_id,
        "amount": amount,
        "occurred_at": at(n),
    }


def _refund(n: int, customer_id: str, order_id: str, amount: str) -> dict[str, Any]:
    return {**_purchase(n, customer_id, order_id, amount), "type": "refund"}


def _referral(n: int, customer_id: str, referrer_id: str) -> dict[str, Any]:
    return {
        "event_id": f"r-{n}",
        "type": "referral",
        "customer_id": customer_id,
        "referrer_id": referrer_id,
        "occurred_at": at(n),
    }


# Before SINCE: referrals, a first order that thanks the referrer, an upgrade, a refund
# held for its purchase. After: the purchase that applies it (and thanks the referrer),
# and refunds of the orders made before.
EVENTS = [
    _purchase(1, "gil", "g-1", "10"),
    _referral(2, "ned", "gil"),
    _referral(3, "oli", "gil"),
    _purchase(4, "oli", "o-1", "200"),
    _purchase(5, "ann", "a-1", "1200"),
    _refund(6, "ned", "late-1", "150"),
    _purchase(11, "ned", "late-1", "150"),
    _refund(12, "ann", "a-1", "1200"),
    _refund(13, "oli", "o-1", "100"),
]
MEMBERS = ("gil", "ned", "oli", "ann")


def _as_stored(services: Services) -> dict[str, tuple[int, int, str | None]]:
    found = {}
    for customer_id in MEMBERS:
        row = member_row(services.db, customer_id)
        assert row is not None
        balance = row["points_available"] + row["points_pending"]
        found[customer_id] = (balance, row["points_debt"], row["tier"])
    return found


def _as_replayed(replay: Replay) -> dict[str, tuple[int, int, str | None]]:
    result = replay.finish()
    return {
        customer_id: (outcome.balance, outcome.debt, outcome.tier)
        for customer_id, outcome in result.customers.items()
        if customer_id in MEMBERS
    }


def test_replays_refund_as_the_service_does(client: FlaskClient, services: Services) -> None:
    for body in EVENTS:
        assert post(client, body).status_code == 201, body
    stored = _as_stored(services)
    assert stored == {
        "gil": (10 + 200 + 200 + 300 + 300 - 300 - 150, 0, None),
        "ned": (100, 0, None),
        "oli": (100 + 100, 0, None),
        "ann": (0, 0, "bronze"),
    }
    rules = services.rules.active

    from_file = Replay(rules)
    for position, body in enumerate(EVENTS):
        from_file.apply(parse_event(body), position)
    replayed = _as_replayed(from_file)

    programme = rules.ruleset.programme
    window = max(programme.tiers.window, programme.rfm.window)
    seeds, budgets = starting_states(services.db, SINCE, window, sorted(rules.budgeted))
    from_database = Replay(rules, seeds, budgets)
    later = [body for body in EVENTS if datetime.fromisoformat(body["occurred_at"]) >= SINCE]
    for position, body in enumerate(later):
        from_database.apply(parse_event(body), position)
    resumed = _as_replayed(from_database)

    # A replay names the lowest level where the member has none of their own.
    lowest = {c: (balance, debt, tier or "bronze") for c, (balance, debt, tier) in stored.items()}
    assert replayed == lowest
    assert resumed == lowest
