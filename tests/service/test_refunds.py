"""Refunds claw back the points an order earned, in proportion; what was already spent is
owed as debt that later earnings pay first. On SQLite and PostgreSQL."""

from __future__ import annotations

from flask.testing import FlaskClient

from service.bootstrap import Services
from tests.conftest import AUTH
from tests.databases import row_counts
from tests.service.helpers import (
    assert_balanced,
    awards,
    ledger_rows,
    member_row,
    post,
    purchase,
    refund,
    spend_points,
)


def clawback(answer: dict) -> dict:  # type: ignore[type-arg]
    found = [e for e in answer["effects"] if e["type"] == "claw_back_points"]
    assert len(found) == 1, answer
    return found[0]  # type: ignore[no-any-return]


def test_a_partial_refund_claws_back_its_share(client: FlaskClient, services: Services) -> None:
    order = purchase("ann", "200")
    assert post(client, order).status_code == 201

    response = post(client, refund("ann", order["order_id"], "50"))

    assert response.status_code == 201, response.get_data(as_text=True)
    answer = response.get_json()
    assert clawback(answer) == {
        "type": "claw_back_points",
        "points": 50,
        "order_id": order["order_id"],
        "shortfall": 0,
    }
    assert answer["customer"]["points"] == {"available": 150, "pending": 0}
    assert assert_balanced(services.db, "ann") == {"available": 150, "pending": 0, "debt": 0}
    clawed = [r for r in ledger_rows(services.db, "ann") if r["kind"] == "clawed_back"]
    assert [r["points"] for r in clawed] == [-50]
    assert clawed[0]["order_id"] == order["order_id"]
    assert clawed[0]["event_id"] is not None


def test_partial_refunds_add_up_to_exactly_the_full_clawback(
    client: FlaskClient, services: Services
) -> None:
    order = purchase("bob", "99.99")
    assert post(client, order).get_json()["effects"][0]["points"] == 99

    taken = [
        clawback(post(client, refund("bob", order["order_id"], "33.33")).get_json())["points"]
        for _ in range(3)
    ]

    assert sum(taken) == 99
    assert all(points >= 32 for points in taken), taken
    assert assert_balanced(services.db, "bob") == {"available": 0, "pending": 0, "debt": 0}


def test_a_refund_of_more_than_the_order_takes_only_the_orders_points(
    client: FlaskClient, services: Services
) -> None:
    kept = purchase("cat", "40")
    order = purchase("cat", "60")
    for body in (kept, order):
        assert post(client, body).status_code == 201

    first = post(client, refund("cat", order["order_id"], "100")).get_json()
    second = post(client, refund("cat", order["order_id"], "10"))

    assert clawback(first)["points"] == 60
    assert second.status_code == 201
    assert not [e for e in second.get_json()["effects"] if e["type"] == "claw_back_points"]
    assert assert_balanced(services.db, "cat") == {"available": 40, "pending": 0, "debt": 0}


def test_a_refund_of_the_points_of_a_coffee_basket_takes_every_campaigns_share(
    client: FlaskClient, services: Services
) -> None:
    items = [{"sku": "latte", "category": "coffee", "quantity": 1, "price": "100"}]
    order = purchase("dan", "100", channel="store", items=items)
    earned = post(client, order).get_json()
    # 100 from base-earn and 30 from coffee-lovers (3 per 10 CNY of coffee).
    assert awards(earned) == [("base-earn", 100), ("coffee-lovers", 30)]

    answer = post(client, refund("dan", order["order_id"], "50")).get_json()

    assert clawback(answer)["points"] == 65
    assert assert_balanced(services.db, "dan")["available"] == 65


def test_a_refund_after_the_points_were_spent_records_debt_that_the_next_purchase_pays(
    client: FlaskClient, services: Services
) -> None:
    order = purchase("eve", "100")
    assert post(client, order).status_code == 201
    spend_points(services.db, "eve", 80)
    assert assert_balanced(services.db, "eve") == {"available": 20, "pending": 0, "debt": 0}

    refunded = post(client, refund("eve", order["order_id"], "100"))

    assert refunded.status_code == 201, refunded.get_data(as_text=True)
    assert clawback(refunded.get_json()) == {
        "type": "claw_back_points",
        "points": 100,
        "order_id": order["order_id"],
        "shortfall": 80,
    }
    assert refunded.get_json()["customer"]["points"] == {"available": 0, "pending": 0}
    assert assert_balanced(services.db, "eve") == {"available": 0, "pending": 0, "debt": 80}
    recorded = [r for r in ledger_rows(services.db, "eve") if r["kind"] == "debt_recorded"]
    assert [(r["points"], r["debt"]) for r in recorded] == [(0, 80)]

    partly = post(client, purchase("eve", "50")).get_json()

    assert partly["customer"]["points"]["available"] == 0
    assert assert_balanced(services.db, "eve") == {"available": 0, "pending": 0, "debt": 30}

    paid_off = post(client, purchase("eve", "100")).get_json()

    assert paid_off["customer"]["points"]["available"] == 70
    assert assert_balanced(services.db, "eve") == {"available": 70, "pending": 0, "debt": 0}
    paid = [r for r in ledger_rows(services.db, "eve") if r["kind"] == "debt_paid"]
    assert [(r["points"], r["debt"]) for r in paid] == [(0, -50), (0, -30)]
    member = member_row(services.db, "eve")
    assert member is not None
    assert member["points_debt"] == 0


def test_a_refund_of_an_unknown_order_changes_no_points(
    client: FlaskClient, services: Services
) -> None:
    assert post(client, purchase("fay", "30")).status_code == 201
    ledger_before = ledger_rows(services.db, "fay")
    counts = row_counts(services.db)

    response = post(client, refund("fay", "no-such-order", "30"))

    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["effects"] == []
    assert response.get_json()["customer"]["points"] == {"available": 30, "pending": 0}
    assert ledger_rows(services.db, "fay") == ledger_before
    after = row_counts(services.db)
    assert after["ledger_entries"] == counts["ledger_entries"]
    assert after["point_lots"] == counts["point_lots"]
    assert after["orders"] == counts["orders"]
    assert assert_balanced(services.db, "fay") == {"available": 30, "pending": 0, "debt": 0}


def test_a_refund_of_another_members_order_changes_no_points(
    client: FlaskClient, services: Services
) -> None:
    order = purchase("gil", "30")
    assert post(client, order).status_code == 201

    response = post(client, refund("hal", order["order_id"], "30"))

    assert response.status_code == 201
    assert response.get_json()["effects"] == []
    assert assert_balanced(services.db, "gil")["available"] == 30
    assert assert_balanced(services.db, "hal") == {"available": 0, "pending": 0, "debt": 0}


def test_a_refund_never_takes_the_balance_below_zero(
    client: FlaskClient, services: Services
) -> None:
    order = purchase("ivy", "10")
    assert post(client, order).status_code == 201
    spend_points(services.db, "ivy", 10)

    answer = post(client, refund("ivy", order["order_id"], "10")).get_json()

    assert answer["customer"]["points"]["available"] == 0
    assert clawback(answer)["shortfall"] == 10
    assert assert_balanced(services.db, "ivy") == {"available": 0, "pending": 0, "debt": 10}


def test_a_reversed_redemption_pays_debt_first(client: FlaskClient, services: Services) -> None:
    order = purchase("ike", "600")
    assert post(client, order).status_code == 201
    redeemed = client.post(
        "/v1/customers/ike/redemptions",
        json={"reward_id": "free-coffee", "redemption_id": "r-1"},
        headers=AUTH,
    )
    assert redeemed.status_code == 201, redeemed.get_data(as_text=True)
    post(client, refund("ike", order["order_id"], "600"))
    assert assert_balanced(services.db, "ike") == {"available": 0, "pending": 0, "debt": 500}
    post(client, purchase("ike", "200"))
    assert assert_balanced(services.db, "ike") == {"available": 0, "pending": 0, "debt": 300}

    reversed_ = client.delete("/v1/customers/ike/redemptions/r-1", headers=AUTH)

    assert reversed_.status_code == 200, reversed_.get_data(as_text=True)
    assert reversed_.get_json()["points_available"] == 200
    assert assert_balanced(services.db, "ike") == {"available": 200, "pending": 0, "debt": 0}
    lines = [
        (r["kind"], r["points"], r["debt"])
        for r in ledger_rows(services.db, "ike")
        if "reversal of r-1" in (r["note"] or "")
    ]
    assert sorted(lines) == [("debt_paid", 0, -300), ("redemption_reversed", 200, 0)]
    customer = client.get("/v1/customers/ike", headers=AUTH).get_json()
    assert customer["points"]["debt"] == 0


def test_a_refund_lowers_spend_by_no_more_than_is_left_of_its_order(
    client: FlaskClient, services: Services
) -> None:
    first, second = purchase("jon", "100"), purchase("jon", "150")
    post(client, first)
    post(client, second)
    post(client, refund("jon", second["order_id"], "150"))

    again = post(client, refund("jon", second["order_id"], "150"))
    unknown = post(client, refund("jon", "never-seen", "80"))

    assert again.status_code == unknown.status_code == 201
    assert again.get_json()["effects"] == unknown.get_json()["effects"] == []
    customer = client.get("/v1/customers/jon", headers=AUTH).get_json()
    assert customer["lifetime_spend"] == "100"
    assert customer["tier_progress"]["value"] == "100"

    post(client, refund("jon", first["order_id"], "60"))
    post(client, refund("jon", first["order_id"], "60"))  # only 40 was left of the order

    customer = client.get("/v1/customers/jon", headers=AUTH).get_json()
    assert customer["lifetime_spend"] == customer["tier_progress"]["value"] == "0"
    post(client, purchase("jon", "30"))
    member = member_row(services.db, "jon")
    assert member is not None
    assert member["lifetime_spend"] == 30
