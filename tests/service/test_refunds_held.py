"""A refund that arrives before its purchase (upstream systems deliver out of order) is
held, and applied when a purchase of its order by the same member arrives. On SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from service.bootstrap import Services
from service.storage.tables import held_refunds
from tests.conftest import AUTH
from tests.databases import row_counts
from tests.service.helpers import (
    assert_balanced,
    awards,
    ledger_rows,
    post,
    purchase,
    refund,
)


def clawbacks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in answer["effects"] if e["type"] == "claw_back_points"]


def held_rows(services: Services) -> list[dict[str, Any]]:
    with services.db.connect() as connection:
        rows = connection.execute(select(held_refunds).order_by(held_refunds.c.event_id))
        return [dict(row) for row in rows.mappings()]


def test_a_refund_before_its_purchase_is_held_then_applied_by_the_purchase(
    client: FlaskClient, services: Services
) -> None:
    early = refund("ann", "late-1", "50")

    held = post(client, early)

    assert held.status_code == 201, held.get_data(as_text=True)
    assert held.get_json()["status"] == "applied"
    assert held.get_json()["held"] is True
    assert held.get_json()["effects"] == []
    assert assert_balanced(services.db, "ann") == {"available": 0, "pending": 0, "debt": 0}

    bought = post(client, purchase("ann", "200", order_id="late-1"))

    assert bought.status_code == 201, bought.get_data(as_text=True)
    answer = bought.get_json()
    assert "held" not in answer
    assert awards(answer) == [("base-earn", 200)]
    assert clawbacks(answer) == [
        {"type": "claw_back_points", "points": 50, "order_id": "late-1", "shortfall": 0}
    ]
    assert answer["customer"]["points"] == {"available": 150, "pending": 0}
    assert assert_balanced(services.db, "ann") == {"available": 150, "pending": 0, "debt": 0}
    clawed = [r for r in ledger_rows(services.db, "ann") if r["kind"] == "clawed_back"]
    assert [(r["points"], r["order_id"], r["event_id"]) for r in clawed] == [
        (-50, "late-1", early["event_id"])
    ]
    customer = client.get("/v1/customers/ann", headers=AUTH).get_json()
    assert customer["lifetime_spend"] == "150"
    (row,) = held_rows(services)
    assert (row["event_id"], row["applied_by"]) == (early["event_id"], answer["event_id"])


def test_a_held_refund_repeated_answers_the_same_and_another_body_conflicts(
    client: FlaskClient, services: Services
) -> None:
    early = refund("bob", "late-2", "30")
    first = post(client, early).get_json()

    again = post(client, early)
    changed = post(client, {**early, "amount": "31"})

    assert again.status_code == 200
    assert again.get_json() == {**first, "status": "duplicate"}
    assert changed.status_code == 409
    assert len(held_rows(services)) == 1

    post(client, purchase("bob", "100", order_id="late-2"))
    counts = row_counts(services.db)
    after_purchase = post(client, early)

    assert after_purchase.status_code == 200
    assert after_purchase.get_json() == {**first, "status": "duplicate"}
    assert row_counts(services.db) == counts
    assert assert_balanced(services.db, "bob") == {"available": 70, "pending": 0, "debt": 0}


def test_a_held_refund_of_more_than_its_order_takes_only_what_the_order_has(
    client: FlaskClient, services: Services
) -> None:
    post(client, purchase("cat", "40"))
    post(client, refund("cat", "late-3", "500"))

    answer = post(client, purchase("cat", "120", order_id="late-3")).get_json()

    assert clawbacks(answer)[0]["points"] == 120
    assert assert_balanced(services.db, "cat") == {"available": 40, "pending": 0, "debt": 0}
    customer = client.get("/v1/customers/cat", headers=AUTH).get_json()
    assert customer["lifetime_spend"] == customer["tier_progress"]["value"] == "40"


def test_two_held_refunds_both_apply_and_a_later_refund_is_not_held(
    client: FlaskClient, services: Services
) -> None:
    post(client, refund("dan", "late-4", "10"))
    post(client, refund("dan", "late-4", "20"))

    answer = post(client, purchase("dan", "100", order_id="late-4")).get_json()
    later = post(client, refund("dan", "late-4", "5")).get_json()

    assert sorted(c["points"] for c in clawbacks(answer)) == [10, 20]
    assert "held" not in later
    assert clawbacks(later)[0]["points"] == 5
    assert assert_balanced(services.db, "dan") == {"available": 65, "pending": 0, "debt": 0}
    assert all(row["applied_by"] == answer["event_id"] for row in held_rows(services))


def test_a_held_refund_waits_for_its_own_members_purchase(
    client: FlaskClient, services: Services
) -> None:
    post(client, refund("eve", "late-5", "50"))

    others = post(client, purchase("fay", "100", order_id="late-5")).get_json()

    assert clawbacks(others) == []
    assert assert_balanced(services.db, "fay")["available"] == 100
    (row,) = held_rows(services)
    assert row["applied_by"] is None


def test_a_refund_and_its_purchase_in_one_batch_apply_in_their_order(
    client: FlaskClient, services: Services
) -> None:
    early = refund("gil", "late-6", "100")
    bought = purchase("gil", "100", order_id="late-6")

    results = post(client, {"events": [early, bought]}, "/v1/events/batch").get_json()["results"]

    assert [r["http_status"] for r in results] == [201, 201]
    assert results[0]["held"] is True
    assert clawbacks(results[1])[0]["points"] == 100
    assert assert_balanced(services.db, "gil") == {"available": 0, "pending": 0, "debt": 0}
    again = post(client, bought)
    first = {k: v for k, v in results[1].items() if k != "http_status"}
    assert again.status_code == 200
    assert again.get_json() == {**first, "status": "duplicate"}
