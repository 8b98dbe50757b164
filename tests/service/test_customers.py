"""GET /v1/customers/{id} and its ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient

from service.bootstrap import Services
from tests.conftest import AUTH, FixedClock
from tests.service.helpers import (
    activity,
    add_member,
    assert_problem,
    event,
    post,
    purchase,
)


def get(client: FlaskClient, path: str) -> Any:
    return client.get(path, headers=AUTH)


def test_a_customer_answers_tier_progress_points_and_offers(
    client: FlaskClient, services: Services
) -> None:
    answer = post(client, purchase("ann", "120.80")).get_json()

    response = get(client, "/v1/customers/ann")

    assert response.status_code == 200, response.get_data(as_text=True)
    customer = response.get_json()
    assert customer["customer_id"] == "ann"
    assert customer["tier"] == "bronze"
    assert customer["tier_progress"] == {
        "metric": "spend",
        "window_days": 365,
        "value": "120.8",
        "next_tier": "silver",
        "needed": "879.2",
    }
    assert customer["points"]["available"] == 120
    assert customer["points"]["pending"] == 0
    assert customer["points"]["expiring"] == []
    assert customer["offers"] == []
    # The event's answer and the customer agree.
    assert answer["customer"]["points"] == {
        "available": customer["points"]["available"],
        "pending": customer["points"]["pending"],
    }
    assert answer["customer"]["tier"] == customer["tier"]


def test_points_expiring_within_a_month_are_listed(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    post(client, purchase("bob", "50", occurred_at="2026-12-02T10:00:00+08:00"))
    post(client, purchase("bob", "30", occurred_at="2027-01-15T10:00:00+08:00"))
    clock.now = datetime(2027, 11, 20, tzinfo=UTC)

    customer = get(client, "/v1/customers/bob").get_json()

    # Each earn expires 365 days later; only the first falls within the next 30 days.
    assert customer["points"]["available"] == 80
    assert customer["points"]["expiring"] == [{"points": 50, "on": "2027-12-02"}]


def test_a_gold_member_has_the_top_tiers_ahead(client: FlaskClient, services: Services) -> None:
    add_member(services.db, "gil", tier="gold")

    customer = get(client, "/v1/customers/gil").get_json()

    assert customer["tier"] == "gold"
    assert customer["tier_progress"]["next_tier"] == "platinum"
    assert customer["tier_progress"]["needed"] == "20000"


def test_an_unknown_customer_is_a_404_problem(client: FlaskClient, services: Services) -> None:
    problem = assert_problem(get(client, "/v1/customers/nobody"), 404)

    assert "nobody" in problem["detail"]


def test_the_ledger_of_an_unknown_customer_is_a_404_problem(
    client: FlaskClient, services: Services
) -> None:
    assert_problem(get(client, "/v1/customers/nobody/ledger"), 404)


def test_the_ledger_pages_newest_first(client: FlaskClient, services: Services) -> None:
    bodies = [
        event("enrolment", "cat"),
        purchase("cat", "10"),
        purchase("cat", "20"),
        activity("cat", "review", "2026-12-02T12:00:00+08:00"),
        purchase("cat", "30"),
    ]
    for body in bodies:
        assert post(client, body).status_code == 201

    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        path = "/v1/customers/cat/ledger?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = get(client, path)
        assert response.status_code == 200, response.get_data(as_text=True)
        page = response.get_json()
        assert len(page["entries"]) <= 2
        seen += page["entries"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)

    assert pages == 3
    assert [e["event_id"] for e in seen] == [b["event_id"] for b in reversed(bodies)]
    assert [e["points"] for e in seen] == [30, 20, 20, 10, 100]
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids, reverse=True)
    for entry in seen:
        assert entry["kind"] == "earned"
        assert entry["campaign"]
        assert entry["rule"]
        assert entry["rules_version"]
    assert seen[-1]["campaign"] == "welcome-bonus"
    assert seen[-1]["rule"] == "points-for-joining"


def test_a_full_last_page_has_no_next_cursor(client: FlaskClient, services: Services) -> None:
    for amount in ("1", "2", "3", "4"):
        post(client, purchase("dan", amount))

    first = get(client, "/v1/customers/dan/ledger?limit=2").get_json()
    second = get(client, f"/v1/customers/dan/ledger?limit=2&cursor={first['next_cursor']}")

    assert [e["points"] for e in first["entries"]] == [4, 3]
    assert [e["points"] for e in second.get_json()["entries"]] == [2, 1]
    assert second.get_json()["next_cursor"] is None


def test_the_ledger_defaults_to_one_page(client: FlaskClient, services: Services) -> None:
    post(client, purchase("eve", "5"))

    page = get(client, "/v1/customers/eve/ledger").get_json()

    assert [e["points"] for e in page["entries"]] == [5]
    assert page["next_cursor"] is None


def test_ledger_paging_parameters_are_validated(client: FlaskClient, services: Services) -> None:
    post(client, purchase("fay", "5"))
    cases = [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=-3", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("cursor=0", "cursor"),
        ("cursor=abc", "cursor"),
        ("page=2", "page"),
    ]

    for query, field in cases:
        problem = assert_problem(get(client, f"/v1/customers/fay/ledger?{query}"), 422)
        assert field in problem["errors"], (query, problem)

    assert get(client, "/v1/customers/fay/ledger?limit=200").status_code == 200
