"""A refund undoes what its order caused: the upgrade its purchase qualified the member
for (when what is left no longer reaches it), and the thank-you its purchase gave the
referrer. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from service.application.personal_data import erase_member
from service.bootstrap import Services
from service.storage.tables import referrer_awards, tier_history
from tests.conftest import AUTH, FixedClock
from tests.service.helpers import (
    assert_balanced,
    event,
    ledger_rows,
    member_row,
    post,
    purchase,
    refund,
    spend_points,
)


def tier_moves(answer: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    return [
        (e["from"], e["to"], e["reason"]) for e in answer["effects"] if e["type"] == "change_tier"
    ]


def history(services: Services, customer_id: str) -> list[tuple[str | None, str, str]]:
    with services.db.connect() as connection:
        rows = connection.execute(
            select(tier_history.c.from_tier, tier_history.c.to_tier, tier_history.c.reason)
            .where(tier_history.c.customer_id == customer_id)
            .order_by(tier_history.c.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def tier_of(client: FlaskClient, customer_id: str) -> str:
    return client.get(f"/v1/customers/{customer_id}", headers=AUTH).get_json()["tier"]  # type: ignore[no-any-return]


# -- the upgrade a refunded purchase made


def test_a_refunded_purchase_takes_back_the_upgrade_it_made(
    client: FlaskClient, services: Services
) -> None:
    order = purchase("ann", "1200")
    assert tier_moves(post(client, order).get_json()) == [("bronze", "silver", "qualified")]

    answer = post(client, refund("ann", order["order_id"], "1200")).get_json()

    assert tier_moves(answer) == [("silver", "bronze", "refund")]
    assert answer["customer"]["tier"] == "bronze"
    assert tier_of(client, "ann") == "bronze"
    assert history(services, "ann") == [
        ("bronze", "silver", "qualified"),
        ("silver", "bronze", "refund"),
    ]
    assert member_row(services.db, "ann")["tier_below_since"] is None  # type: ignore[index]


def test_a_partial_refund_undoes_the_upgrade_only_once_what_is_left_falls_below_it(
    client: FlaskClient, services: Services
) -> None:
    order = purchase("bob", "1500")
    post(client, order)

    kept = post(client, refund("bob", order["order_id"], "400")).get_json()
    lost = post(client, refund("bob", order["order_id"], "200")).get_json()

    assert tier_moves(kept) == []
    assert tier_moves(lost) == [("silver", "bronze", "refund")]
    assert tier_of(client, "bob") == "bronze"


def test_an_upgrade_past_two_levels_falls_back_only_to_what_is_left_reaches(
    client: FlaskClient, services: Services
) -> None:
    order = purchase("cat", "6000")
    assert tier_moves(post(client, order).get_json()) == [("bronze", "gold", "qualified")]

    answer = post(client, refund("cat", order["order_id"], "3000")).get_json()

    assert tier_moves(answer) == [("gold", "silver", "refund")]
    assert tier_of(client, "cat") == "silver"


def test_an_upgrade_another_purchase_earned_stays_until_the_review(
    client: FlaskClient, services: Services
) -> None:
    first, second = purchase("dan", "600"), purchase("dan", "500")
    post(client, first)
    assert tier_moves(post(client, second).get_json()) == [("bronze", "silver", "qualified")]

    answer = post(client, refund("dan", first["order_id"], "600")).get_json()

    assert tier_moves(answer) == []
    assert tier_of(client, "dan") == "silver"
    assert [reason for _f, _t, reason in history(services, "dan")] == ["qualified"]


def test_a_level_reached_since_by_another_purchase_is_kept(
    client: FlaskClient, services: Services
) -> None:
    silver, gold = purchase("eve", "1200"), purchase("eve", "4000")
    post(client, silver)
    assert tier_moves(post(client, gold).get_json()) == [("silver", "gold", "qualified")]

    answer = post(client, refund("eve", silver["order_id"], "1200")).get_json()

    assert tier_moves(answer) == []
    assert tier_of(client, "eve") == "gold"


def test_a_refund_held_for_its_purchase_undoes_the_upgrade_in_the_purchases_answer(
    client: FlaskClient, services: Services
) -> None:
    post(client, refund("fay", "late-t", "1200"))

    answer = post(client, purchase("fay", "1200", order_id="late-t")).get_json()

    assert tier_moves(answer) == [
        ("bronze", "silver", "qualified"),
        ("silver", "bronze", "refund"),
    ]
    assert answer["customer"]["tier"] == "bronze"
    assert tier_of(client, "fay") == "bronze"
    assert assert_balanced(services.db, "fay") == {"available": 0, "pending": 0, "debt": 0}


# -- the referrer's thank-you for a first order


def referred(client: FlaskClient, referee: str, referrer: str) -> None:
    """``referrer`` (with 10 points of their own) refers ``referee``: 200 points for it."""
    post(client, purchase(referrer, "10"))
    answer = post(client, event("referral", referee, referrer_id=referrer)).get_json()
    assert [e["points"] for e in answer["effects"] if e["type"] == "award_points"] == [100, 200]


def thanked(client: FlaskClient, referee: str, amount: str = "150") -> dict[str, Any]:
    order = purchase(referee, amount)
    answer = post(client, order).get_json()
    thanks = [e for e in answer["effects"] if e.get("customer_id")]
    assert [(e["campaign"], e["points"]) for e in thanks] == [("referral-rewards", 300)]
    return order


def test_refunding_a_first_order_takes_back_the_referrers_thank_you(
    client: FlaskClient, services: Services
) -> None:
    referred(client, "ned", "gil")
    order = thanked(client, "ned")
    assert assert_balanced(services.db, "gil")["available"] == 510

    answer = post(client, refund("ned", order["order_id"], "150")).get_json()

    taken = {e.get("customer_id"): e for e in answer["effects"] if e["type"] == "claw_back_points"}
    assert taken["gil"] == {
        "type": "claw_back_points",
        "points": 300,
        "order_id": order["order_id"],
        "shortfall": 0,
        "customer_id": "gil",
    }
    assert taken[None]["points"] == 150
    assert assert_balanced(services.db, "gil") == {"available": 210, "pending": 0, "debt": 0}
    assert assert_balanced(services.db, "ned") == {"available": 100, "pending": 0, "debt": 0}
    referrer_lines = [r for r in ledger_rows(services.db, "gil") if r["kind"] == "clawed_back"]
    assert [(r["points"], r["event_id"]) for r in referrer_lines] == [(-300, answer["event_id"])]
    assert order["order_id"] in referrer_lines[0]["note"]
    referee_lines = [r for r in ledger_rows(services.db, "ned") if r["kind"] == "clawed_back"]
    assert [r["points"] for r in referee_lines] == [-150]


def test_a_partial_refund_takes_back_the_same_share_of_the_thank_you(
    client: FlaskClient, services: Services
) -> None:
    referred(client, "oli", "hal")
    order = thanked(client, "oli", "200")

    post(client, refund("oli", order["order_id"], "50"))
    post(client, refund("oli", order["order_id"], "150"))

    assert assert_balanced(services.db, "hal") == {"available": 210, "pending": 0, "debt": 0}
    clawed = [r["points"] for r in ledger_rows(services.db, "hal") if r["kind"] == "clawed_back"]
    assert clawed == [-75, -225]


def test_a_thank_you_already_spent_is_owed_as_debt(client: FlaskClient, services: Services) -> None:
    referred(client, "pia", "ida")
    order = thanked(client, "pia")
    spend_points(services.db, "ida", 450)

    answer = post(client, refund("pia", order["order_id"], "150")).get_json()

    (taken,) = [e for e in answer["effects"] if e.get("customer_id") == "ida"]
    assert (taken["points"], taken["shortfall"]) == (300, 240)
    assert assert_balanced(services.db, "ida") == {"available": 0, "pending": 0, "debt": 240}
    earned_back = post(client, purchase("ida", "100")).get_json()
    assert earned_back["customer"]["points"]["available"] == 0
    assert assert_balanced(services.db, "ida") == {"available": 0, "pending": 0, "debt": 140}


def test_a_refund_held_for_a_first_order_takes_the_thank_you_back_when_it_comes(
    client: FlaskClient, services: Services
) -> None:
    referred(client, "quy", "jan")
    post(client, refund("quy", "late-r", "150"))

    answer = post(client, purchase("quy", "150", order_id="late-r")).get_json()

    effects = [(e["type"], e.get("customer_id"), e["points"]) for e in answer["effects"]]
    assert ("award_points", "jan", 300) in effects
    assert ("claw_back_points", "jan", 300) in effects
    assert assert_balanced(services.db, "jan") == {"available": 210, "pending": 0, "debt": 0}
    assert assert_balanced(services.db, "quy") == {"available": 100, "pending": 0, "debt": 0}


def test_an_erased_referrer_still_gives_the_thank_you_back_under_the_pseudonym(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    referred(client, "ray", "kim")
    order = thanked(client, "ray")
    erasure = erase_member(services.uow, "kim", "support-desk", clock())
    with services.db.connect() as connection:
        given = connection.execute(select(referrer_awards)).mappings().all()
    assert [row["referrer_id"] for row in given] == [erasure.pseudonym]

    answer = post(client, refund("ray", order["order_id"], "150")).get_json()

    taken = [e for e in answer["effects"] if e.get("customer_id") == erasure.pseudonym]
    assert [e["points"] for e in taken] == [300]
    assert assert_balanced(services.db, erasure.pseudonym)["available"] == 210
