"""Shared helpers for the service tests: event builders, direct database checks and
services built on rules of a test's own."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, func, insert, select, text, update
from sqlalchemy.pool import NullPool
from werkzeug.test import TestResponse

from service.api.app import create_app
from service.bootstrap import Services
from service.settings import Settings
from service.storage.tables import ledger_entries, members, point_lots
from tests.conftest import AUTH, RULES_DIR, FixedClock, fresh_services

PROBLEM_JSON = "application/problem+json"
WEDNESDAY = "2026-12-02T10:00:00+08:00"
SATURDAY = "2026-12-05T10:00:00+08:00"
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def purchase(customer_id: str = "c-1", amount: Any = "120.80", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": new_id("evt"),
        "type": "purchase",
        "customer_id": customer_id,
        "occurred_at": WEDNESDAY,
        "order_id": new_id("order"),
        "amount": amount,
    }
    body.update(extra)
    return body


def refund(customer_id: str, order_id: str, amount: Any, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": new_id("evt"),
        "type": "refund",
        "customer_id": customer_id,
        "occurred_at": "2026-12-03T10:00:00+08:00",
        "order_id": order_id,
        "amount": amount,
    }
    body.update(extra)
    return body


def activity(customer_id: str, kind: str, occurred_at: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": new_id("evt"),
        "type": "activity",
        "customer_id": customer_id,
        "occurred_at": occurred_at,
        "kind": kind,
    }
    body.update(extra)
    return body


def event(kind: str, customer_id: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": new_id("evt"),
        "type": kind,
        "customer_id": customer_id,
        "occurred_at": WEDNESDAY,
    }
    body.update(extra)
    return body


def post(client: FlaskClient, body: Any, path: str = "/v1/events") -> TestResponse:
    return client.post(path, json=body, headers=AUTH)


def points_of(answer: dict[str, Any]) -> int:
    return sum(e["points"] for e in answer["effects"] if e["type"] == "award_points")


def awards(answer: dict[str, Any]) -> list[tuple[str, int]]:
    """(campaign, points) of every award, sorted; each award must also name its rule."""
    found = [e for e in answer["effects"] if e["type"] == "award_points"]
    for effect in found:
        assert isinstance(effect["rule"], str), effect
        assert effect["rule"], effect
    return sorted((e["campaign"], e["points"]) for e in found)


# The example coffee-lovers campaign: 3 points per whole 10 CNY of coffee lines, in store.
COFFEE_BASKET = [
    {"sku": "latte-l", "category": "coffee", "quantity": 2, "price": "30"},
    {"sku": "croissant", "category": "bakery", "quantity": 1, "price": "28"},
]
COFFEE_BASKET_AMOUNT = "88"
COFFEE_BASKET_BONUS = 18  # 60 CNY of coffee


def assert_problem(response: TestResponse, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with the given status; returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json(force=True)
    assert isinstance(body, dict)
    for name in ("type", "title", "status", "detail"):
        assert name in body, f"problem lacks {name!r}: {body}"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


# -- the database, read directly


def member_row(engine: Engine, customer_id: str) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = (
            connection.execute(select(members).where(members.c.customer_id == customer_id))
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


def ledger_rows(engine: Engine, customer_id: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(ledger_entries)
            .where(ledger_entries.c.customer_id == customer_id)
            .order_by(ledger_entries.c.id)
        ).mappings()
        return [dict(row) for row in rows]


def assert_balanced(engine: Engine, customer_id: str) -> dict[str, int]:
    """The promise: balance = sum of ledger points = what is left in the lots; debt = sum of
    ledger debt; nothing below zero. Returns the member's balances."""
    of_member = ledger_entries.c.customer_id == customer_id
    of_lots = point_lots.c.customer_id == customer_id
    sums = (  # one round trip: the member's row and the sums beside it
        select(func.coalesce(func.sum(ledger_entries.c.points), 0)).where(of_member),
        select(func.coalesce(func.sum(ledger_entries.c.debt), 0)).where(of_member),
        select(func.coalesce(func.sum(point_lots.c.remaining), 0)).where(of_lots),
        select(func.count()).where(of_lots, point_lots.c.remaining < 0),
    )
    names = ("ledger_points", "ledger_debt", "lots_left", "negative_lots")
    with engine.connect() as connection:
        row = (
            connection.execute(
                select(
                    members,
                    *(q.scalar_subquery().label(n) for q, n in zip(sums, names, strict=True)),
                ).where(members.c.customer_id == customer_id)
            )
            .mappings()
            .one()
        )
    ledger_points, ledger_debt = row["ledger_points"], row["ledger_debt"]
    lots_left, negative_lots = row["lots_left"], row["negative_lots"]
    balance = row["points_available"] + row["points_pending"]
    assert row["points_available"] >= 0
    assert row["points_pending"] >= 0
    assert row["points_debt"] >= 0
    assert negative_lots == 0
    assert balance == int(ledger_points) == int(lots_left), (balance, ledger_points, lots_left)
    assert row["points_debt"] == int(ledger_debt)
    return {
        "available": row["points_available"],
        "pending": row["points_pending"],
        "debt": row["points_debt"],
    }


def add_member(engine: Engine, customer_id: str, **values: Any) -> None:
    """A member made directly in the members table (e.g. with a tier already)."""
    with engine.begin() as connection:
        connection.execute(
            insert(members).values(
                customer_id=customer_id,
                first_seen_at=datetime(2026, 1, 1, tzinfo=UTC),
                tags=[],
                **values,
            )
        )


def set_tier(engine: Engine, customer_id: str, tier: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(members).where(members.c.customer_id == customer_id).values(tier=tier)
        )


def spend_points(engine: Engine, customer_id: str, points: int) -> None:
    """What a redemption does, written directly: take points FIFO from the lots, write a
    ledger line and lower the balance, keeping every invariant."""
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    with engine.begin() as connection:
        lots = connection.execute(
            select(point_lots.c.id, point_lots.c.remaining)
            .where(point_lots.c.customer_id == customer_id, point_lots.c.remaining > 0)
            .order_by(point_lots.c.id)
        ).all()
        left = points
        for lot_id, remaining in lots:
            taken = min(left, remaining)
            if taken == 0:
                break
            connection.execute(
                update(point_lots)
                .where(point_lots.c.id == lot_id)
                .values(remaining=point_lots.c.remaining - taken)
            )
            connection.execute(
                insert(ledger_entries).values(
                    customer_id=customer_id,
                    kind="redeemed",
                    points=-taken,
                    debt=0,
                    lot_id=lot_id,
                    occurred_at=now,
                    recorded_at=now,
                    note="test redemption",
                )
            )
            left -= taken
        assert left == 0, f"the member has fewer than {points} points"
        connection.execute(
            update(members)
            .where(members.c.customer_id == customer_id)
            .values(points_available=members.c.points_available - points)
        )


# -- services on rules of a test's own


def flat_hundred_campaign(campaign: str, budget_points: int) -> str:
    """A campaign file: 100 points a purchase until its points budget is spent."""
    return f"""\
campaign: {campaign}
description: A flat hundred points a purchase until {budget_points} points are given
priority: 0
budget: {{points: {budget_points}}}
rules:
  - name: flat-hundred
    when:
      type: purchase
    then:
      - award_points: {{points: 100, tier_multiplier: false}}
tests:
  - name: a purchase earns a hundred
    event: {{type: purchase, amount: 1, occurred_at: 2026-12-02T10:00:00+08:00}}
    expect: {{points: 100}}
"""


def write_rules(directory: Path, campaigns: dict[str, str], *, keep_examples: bool = False) -> Path:
    """A rules directory: the example programme plus the given campaign files."""
    (directory / "campaigns").mkdir(parents=True)
    shutil.copy(RULES_DIR / "program.yaml", directory / "program.yaml")
    if keep_examples:
        for path in (RULES_DIR / "campaigns").glob("*.yaml"):
            shutil.copy(path, directory / "campaigns" / path.name)
    for name, body in campaigns.items():
        (directory / "campaigns" / name).write_text(body, encoding="utf-8")
    return directory


@contextmanager
def services_for(settings: Settings, clock: FixedClock | None = None) -> Iterator[Services]:
    """Services on settings of the test's own, on an emptied database (the session's
    engine for it, and its rules compiled once a session)."""
    yield fresh_services(settings, clock or FixedClock())


def app_for(services: Services) -> Flask:
    app = create_app(services=services)
    app.testing = True
    return app


# A campaign that sends a transactional receipt by email (a channel a default install lacks).
EMAILING = """\
campaign: receipts
description: a receipt by email
rules:
  - name: receipt
    when: {type: purchase}
    then:
      - send_message: {template: receipt, channel: email, category: transactional}
tests:
  - name: a purchase sends a receipt
    event: {type: purchase, amount: 10, occurred_at: 2026-12-02T10:00:00+08:00}
    expect: {messages: [receipt]}
"""


def terminate_connections(engine: Engine) -> None:
    """End every PostgreSQL session of the engine's database but this one's own."""
    admin = create_engine(str(engine.url.set(database="test")), poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": engine.url.database},
        )
        connection.commit()
    admin.dispose()
