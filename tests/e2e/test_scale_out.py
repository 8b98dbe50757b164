"""Scale-out: two `loyalty serve` instances (different ports, their own gunicorn masters and
workers) share one fresh PostgreSQL database, and events for the same members are raced
across both. Nothing is lost and nothing is doubled: each event is applied by exactly one
instance, the other answers it as a duplicate, and every balance is its ledger."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, func, select

from service.storage.tables import events, ledger_entries, members
from tests.databases import postgres_database
from tests.e2e.live import AUTH, LiveServer, live_server
from tests.service.helpers import assert_balanced

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("scale-out")]

MEMBERS = 5
EVENTS_PER_MEMBER = 12
RACERS = 8  # client threads, split over both instances
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def shared_database() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def instances(
    shared_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    directory = tmp_path_factory.mktemp("scale-out")
    with (
        live_server(shared_database, directory, name="a") as a,
        live_server(shared_database, directory, name="b") as b,
    ):
        assert a.port != b.port
        yield a, b


def purchase(customer_id: str, amount: str) -> dict[str, Any]:
    return {
        "event_id": f"evt-{uuid.uuid4().hex[:12]}",
        "type": "purchase",
        "customer_id": customer_id,
        "occurred_at": "2026-12-02T10:00:00+08:00",
        "order_id": f"order-{uuid.uuid4().hex[:12]}",
        "amount": amount,
    }


def race(sends: list[tuple[LiveServer, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """Every (server, body) at once, RACERS at a time, each released by one barrier per
    round so that both instances work on the same members in the same instant."""
    results: list[tuple[int, dict[str, Any]]] = []
    for start in range(0, len(sends), RACERS):
        batch = sends[start : start + RACERS]
        barrier = threading.Barrier(len(batch), timeout=TIMEOUT_S)

        def send(item: tuple[LiveServer, dict[str, Any]], barrier: threading.Barrier = barrier):
            server, body = item
            with requests.Session() as session:
                barrier.wait()
                response = session.post(
                    f"{server.url}/v1/events", json=body, headers=AUTH, timeout=TIMEOUT_S
                )
                return response.status_code, response.json()

        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            results.extend(pool.map(send, batch))
    return results


def test_the_same_events_raced_on_both_instances_apply_once(
    instances: tuple[LiveServer, LiveServer], shared_database: str
) -> None:
    a, b = instances
    ids = [f"twin-{n}-{uuid.uuid4().hex[:6]}" for n in range(MEMBERS)]
    amounts = itertools.cycle(["10", "25.50", "99.99", "120", "7"])
    bodies = [purchase(ids[n % MEMBERS], next(amounts)) for n in range(MEMBERS * EVENTS_PER_MEMBER)]
    # Each event goes to both instances in the same round; which one is sent first
    # alternates, so neither always has the head start.
    sends = [
        pair
        for n, body in enumerate(bodies)
        for pair in (((a, body), (b, body)) if n % 2 else ((b, body), (a, body)))
    ]

    results = race(sends)

    applied: dict[str, dict[str, Any]] = {}
    for event_id, answers in grouped(sends, results).items():
        assert Counter(status for status, _ in answers) == {201: 1, 200: 1}, (event_id, answers)
        (first,) = [answer for status, answer in answers if status == 201]
        (repeat,) = [answer for status, answer in answers if status == 200]
        assert repeat["status"] == "duplicate"
        assert repeat["effects"] == first["effects"]
        applied[event_id] = first
    check_database(shared_database, ids, applied)


def test_distinct_events_for_the_same_members_split_across_both_all_apply(
    instances: tuple[LiveServer, LiveServer], shared_database: str
) -> None:
    a, b = instances
    ids = [f"split-{n}-{uuid.uuid4().hex[:6]}" for n in range(MEMBERS)]
    bodies = [purchase(ids[n % MEMBERS], str(10 + n)) for n in range(MEMBERS * EVENTS_PER_MEMBER)]
    sends = [((a, b)[n % 2], body) for n, body in enumerate(bodies)]

    results = race(sends)

    assert Counter(status for status, _ in results) == {201: len(bodies)}, results
    applied = {event_id: answers[0][1] for event_id, answers in grouped(sends, results).items()}
    check_database(shared_database, ids, applied)
    for member in ids:
        seen = sorted(
            answer["customer"]["points"]["available"]
            for answer in applied.values()
            if answer["customer"]["customer_id"] == member
        )
        assert len(set(seen)) == len(seen), "two events of one member saw the same balance"


def test_the_instances_are_separate_servers(instances: tuple[LiveServer, LiveServer]) -> None:
    a, b = instances
    assert a.pid != b.pid
    assert not set(a.workers()) & set(b.workers())
    for server in (a, b):
        assert requests.get(f"{server.url}/readyz", timeout=TIMEOUT_S).status_code == 200


def grouped(
    sends: list[tuple[LiveServer, dict[str, Any]]], results: list[tuple[int, dict[str, Any]]]
) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    by_event: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for (_, body), result in zip(sends, results, strict=True):
        by_event.setdefault(body["event_id"], []).append(result)
    return by_event


def points_of(answer: dict[str, Any]) -> int:
    return sum(e["points"] for e in answer["effects"] if e["type"] == "award_points")


def check_database(database_url: str, ids: list[str], applied: dict[str, dict[str, Any]]) -> None:
    """The events table holds each event once; the ledger holds each event's points once;
    each balance is the sum of its events' points, and its ledger, and its lots."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            stored = Counter(
                connection.execute(
                    select(events.c.event_id).where(events.c.customer_id.in_(ids))
                ).scalars()
            )
            ledger = dict(
                connection.execute(
                    select(ledger_entries.c.event_id, func.sum(ledger_entries.c.points))
                    .where(ledger_entries.c.customer_id.in_(ids))
                    .group_by(ledger_entries.c.event_id)
                ).all()
            )
            balances = dict(
                connection.execute(
                    select(members.c.customer_id, members.c.points_available).where(
                        members.c.customer_id.in_(ids)
                    )
                ).all()
            )
        assert stored == Counter(list(applied))  # each event once
        assert {k: int(v) for k, v in ledger.items()} == {
            event_id: points_of(answer) for event_id, answer in applied.items() if points_of(answer)
        }
        assert balances == {
            member: sum(
                points_of(answer)
                for answer in applied.values()
                if answer["customer"]["customer_id"] == member
            )
            for member in ids
        }
        for member in ids:
            assert_balanced(engine, member)
    finally:
        engine.dispose()
