"""The real service under gunicorn, over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.e2e.live import LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

PARALLEL = 20
TIMEOUT_S = 30


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def purchase(customer_id: str, amount: str, **extra: Any) -> dict[str, Any]:
    body = {
        "event_id": unique("evt"),
        "type": "purchase",
        "customer_id": customer_id,
        "occurred_at": "2026-12-02T10:00:00+08:00",
        "order_id": unique("order"),
        "amount": amount,
    }
    body.update(extra)
    return body


def race(server: LiveServer, bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Post every body at once, each from its own thread and connection."""
    barrier = threading.Barrier(len(bodies), timeout=TIMEOUT_S)

    def send(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with requests.Session() as session:
            barrier.wait()
            response = session.post(
                f"{server.url}/v1/events", json=body, headers=server.auth, timeout=TIMEOUT_S
            )
            return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies))


def customer(server: LiveServer, customer_id: str) -> dict[str, Any]:
    response = requests.get(
        f"{server.url}/v1/customers/{customer_id}", headers=server.auth, timeout=TIMEOUT_S
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def ledger(server: LiveServer, customer_id: str) -> list[dict[str, Any]]:
    response = requests.get(
        f"{server.url}/v1/customers/{customer_id}/ledger?limit=200",
        headers=server.auth,
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    return response.json()["entries"]  # type: ignore[no-any-return]


def test_health_needs_no_key_and_the_api_does(server: LiveServer) -> None:
    assert requests.get(f"{server.url}/healthz", timeout=TIMEOUT_S).status_code == 200
    ready = requests.get(f"{server.url}/readyz", timeout=TIMEOUT_S)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"rules": True, "database": True}

    response = requests.post(
        f"{server.url}/v1/events", json=purchase(unique("c"), "10"), timeout=TIMEOUT_S
    )

    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert "WWW-Authenticate" in response.headers


def test_a_purchase_earns_what_the_example_rules_promise(server: LiveServer) -> None:
    member = unique("ann")
    items = [{"sku": "latte", "category": "coffee", "quantity": 2, "price": "30"}]
    body = purchase(member, "88.80", channel="store", items=items)

    response = requests.post(
        f"{server.url}/v1/events", json=body, headers=server.auth, timeout=TIMEOUT_S
    )

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["status"] == "applied"
    # One point per whole CNY, plus three per whole 10 CNY of coffee bought in store.
    assert sorted(
        (e["campaign"], e["points"]) for e in answer["effects"] if e["type"] == "award_points"
    ) == [("base-earn", 88), ("coffee-lovers", 18)]
    assert answer["customer"]["tier"] == "bronze"
    assert answer["customer"]["points"] == {"available": 106, "pending": 0}

    stored = customer(server, member)
    assert stored["tier"] == answer["customer"]["tier"]
    assert stored["points"]["available"] == answer["customer"]["points"]["available"]
    assert stored["points"]["pending"] == answer["customer"]["points"]["pending"]
    assert "coffee_lover" in stored["tags"]

    again = requests.post(
        f"{server.url}/v1/events", json=body, headers=server.auth, timeout=TIMEOUT_S
    )
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["effects"] == answer["effects"]
    assert customer(server, member)["points"]["available"] == 106


def test_twenty_identical_posts_in_parallel_earn_once(server: LiveServer) -> None:
    member = unique("bob")
    body = purchase(member, "120.80")

    results = race(server, [body] * PARALLEL)

    assert Counter(status for status, _ in results) == {201: 1, 200: PARALLEL - 1}, results
    assert {answer["status"] for status, answer in results if status == 200} == {"duplicate"}
    assert customer(server, member)["points"]["available"] == 120
    entries = ledger(server, member)
    assert [(e["kind"], e["points"], e["event_id"]) for e in entries] == [
        ("earned", 120, body["event_id"])
    ]


def test_twenty_distinct_purchases_of_one_member_in_parallel_all_earn(server: LiveServer) -> None:
    member = unique("cat")
    bodies = [purchase(member, str(10 + n)) for n in range(PARALLEL)]

    results = race(server, bodies)

    assert Counter(status for status, _ in results) == {201: PARALLEL}, results
    expected = sum(10 + n for n in range(PARALLEL))
    balances = sorted(answer["customer"]["points"]["available"] for _, answer in results)
    assert balances[-1] == expected
    assert len(set(balances)) == PARALLEL  # each answer saw the ones before it, none twice
    stored = customer(server, member)
    assert stored["points"]["available"] == expected
    assert stored["order_count"] == PARALLEL
    entries = ledger(server, member)
    assert len(entries) == PARALLEL
    assert sum(e["points"] for e in entries) == expected
    assert {e["event_id"] for e in entries} == {b["event_id"] for b in bodies}


def test_one_event_id_raced_for_two_customers_is_applied_once(server: LiveServer) -> None:
    first, second = unique("dan"), unique("eve")
    body = purchase(first, "40")
    bodies = [body, {**body, "customer_id": second}] * (PARALLEL // 2)

    results = race(server, bodies)

    statuses = Counter(status for status, _ in results)
    assert statuses[201] == 1, results
    assert statuses[201] + statuses[200] + statuses[409] == PARALLEL, results
    winner = next(answer for status, answer in results if status == 201)["customer"]["customer_id"]
    for (status, answer), sent in zip(results, bodies, strict=True):
        if sent["customer_id"] != winner:
            assert status == 409, answer
    assert customer(server, winner)["points"]["available"] == 40
    loser = second if winner == first else first
    response = requests.get(
        f"{server.url}/v1/customers/{loser}", headers=server.auth, timeout=TIMEOUT_S
    )
    assert response.status_code == 404 or response.json()["points"]["available"] == 0
