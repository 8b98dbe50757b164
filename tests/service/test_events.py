"""POST /v1/events: what each event earns, idempotency, and the ledger behind the balance.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture)."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select

from service.bootstrap import Services
from service.settings import Settings
from service.storage.tables import campaign_budgets, events, rule_firings
from tests.conftest import FixedClock
from tests.databases import row_counts
from tests.service.helpers import (
    COFFEE_BASKET,
    COFFEE_BASKET_BONUS,
    SATURDAY,
    WEDNESDAY,
    activity,
    add_member,
    app_for,
    assert_balanced,
    assert_problem,
    awards,
    event,
    flat_hundred_campaign,
    ledger_rows,
    member_row,
    points_of,
    post,
    purchase,
    refund,
    services_for,
    write_rules,
)


def test_a_purchase_earns_the_base_points_and_answers_the_documented_shape(
    client: FlaskClient, services: Services
) -> None:
    body = purchase("ann", "120.80")

    response = post(client, body)

    assert response.status_code == 201, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["event_id"] == body["event_id"]
    assert answer["status"] == "applied"
    assert answer["effects"] == [
        {
            "type": "award_points",
            "points": 120,
            "campaign": "base-earn",
            "rule": "one-point-per-cny",
        }
    ]
    assert answer["customer"]["tier"] == "bronze"
    assert answer["customer"]["points"] == {"available": 120, "pending": 0}
    assert answer["rules_version"] == services.rules.active.version
    assert assert_balanced(services.db, "ann") == {"available": 120, "pending": 0, "debt": 0}


def test_the_same_event_again_is_a_duplicate_with_the_first_answer_and_changes_nothing(
    client: FlaskClient, services: Services
) -> None:
    body = purchase("ann", "99.50")
    first = post(client, body)
    assert first.status_code == 201
    counts = row_counts(services.db)

    again = post(client, body)

    assert again.status_code == 200, again.get_data(as_text=True)
    repeated = again.get_json()
    assert repeated["status"] == "duplicate"
    assert repeated["effects"] == first.get_json()["effects"]
    assert repeated["customer"] == first.get_json()["customer"]
    assert row_counts(services.db) == counts
    assert assert_balanced(services.db, "ann")["available"] == 99


def test_the_same_event_written_another_way_is_still_a_duplicate(
    client: FlaskClient, services: Services
) -> None:
    body = purchase("ann", "120.80")
    assert post(client, body).status_code == 201

    again = post(client, {**body, "amount": 120.8})

    assert again.status_code == 200
    assert again.get_json()["status"] == "duplicate"
    assert assert_balanced(services.db, "ann")["available"] == 120


def test_the_same_event_id_with_a_different_body_is_a_conflict_and_changes_nothing(
    client: FlaskClient, services: Services
) -> None:
    body = purchase("ann", "100")
    assert post(client, body).status_code == 201
    counts = row_counts(services.db)
    before = member_row(services.db, "ann")

    response = post(client, {**body, "amount": "500"})

    problem = assert_problem(response, 409)
    assert body["event_id"] in problem["detail"]
    assert row_counts(services.db) == counts
    assert member_row(services.db, "ann") == before
    assert assert_balanced(services.db, "ann")["available"] == 100


def test_every_event_type_is_accepted(client: FlaskClient, services: Services) -> None:
    order = purchase("bob", "50")
    bodies = [
        event("enrolment", "bob", profile={"email": "bob@example.com"}),
        order,
        refund("bob", order["order_id"], "10"),
        event("referral", "bob", referrer_id="ann", code="ANN-2026"),
        activity("bob", "check_in", WEDNESDAY, attributes={"store": "s-1", "visits": 3}),
        event(
            "profile",
            "bob",
            profile={
                "birthday": "1990-05-17",
                "timezone": "Europe/Berlin",
                "phone": "+49 30 1234567",
                "tags": ["vip"],
            },
        ),
    ]
    for body in bodies:
        response = post(client, body)
        assert response.status_code == 201, (body["type"], response.get_data(as_text=True))
        assert response.get_json()["status"] == "applied"

    member = member_row(services.db, "bob")
    assert member is not None
    assert member["email"] == "bob@example.com"
    assert str(member["birthday"]) == "1990-05-17"
    assert member["timezone"] == "Europe/Berlin"
    assert member["phone"] == "+49 30 1234567"
    assert member["tags"] == ["vip"]
    assert member["events_applied"] == len(bodies)
    with services.db.connect() as connection:
        stored = connection.execute(
            select(events.c.type).where(events.c.customer_id == "bob")
        ).scalars()
        assert sorted(stored) == sorted(b["type"] for b in bodies)
    # 100 welcome + 50 purchase - 10 clawed back by the refund of 10 of the 50.
    assert assert_balanced(services.db, "bob")["available"] == 140


def test_the_welcome_bonus_is_paid_once(client: FlaskClient, services: Services) -> None:
    first = post(client, event("enrolment", "cat"))
    assert first.status_code == 201
    assert first.get_json()["effects"] == [
        {
            "type": "award_points",
            "points": 100,
            "campaign": "welcome-bonus",
            "rule": "points-for-joining",
        }
    ]

    second = post(client, event("enrolment", "cat", occurred_at="2026-12-09T10:00:00+08:00"))

    assert second.status_code == 201
    assert second.get_json()["effects"] == []
    assert assert_balanced(services.db, "cat")["available"] == 100


def test_an_existing_member_enrolling_earns_no_welcome_bonus(
    client: FlaskClient, services: Services
) -> None:
    assert post(client, purchase("dan", "10")).status_code == 201

    response = post(client, event("enrolment", "dan"))

    assert response.status_code == 201
    assert points_of(response.get_json()) == 0
    assert assert_balanced(services.db, "dan")["available"] == 10


def test_the_review_bonus_is_limited_to_one_a_day(client: FlaskClient, services: Services) -> None:
    first = post(client, activity("eve", "review", "2026-12-02T12:00:00+08:00"))
    same_day = post(client, activity("eve", "review", "2026-12-02T18:00:00+08:00"))
    next_day = post(client, activity("eve", "review", "2026-12-03T12:00:00+08:00"))

    assert [r.status_code for r in (first, same_day, next_day)] == [201, 201, 201]
    assert first.get_json()["effects"] == [
        {
            "type": "award_points",
            "points": 20,
            "campaign": "review-bonus",
            "rule": "points-for-a-review",
        }
    ]
    assert same_day.get_json()["effects"] == []
    assert points_of(next_day.get_json()) == 20
    assert assert_balanced(services.db, "eve")["available"] == 40
    with services.db.connect() as connection:
        fired = (
            connection.execute(
                select(rule_firings.c.rule_key).where(rule_firings.c.customer_id == "eve")
            )
            .scalars()
            .all()
        )
    assert fired == ["review-bonus/points-for-a-review"] * 2


def test_tags_come_from_rules_and_from_profile_events(
    client: FlaskClient, services: Services
) -> None:
    profile = post(client, event("profile", "fay", profile={"tags": ["vip", "newsletter"]}))
    assert profile.status_code == 201

    coffee = post(client, purchase("fay", "88", channel="store", items=COFFEE_BASKET))
    share = post(client, activity("fay", "social_share", WEDNESDAY))

    assert coffee.status_code == 201
    effects = coffee.get_json()["effects"]
    assert awards(coffee.get_json()) == [("base-earn", 88), ("coffee-lovers", COFFEE_BASKET_BONUS)]
    assert any(e["type"] == "tag" and e["add"] == ["coffee_lover"] for e in effects)
    assert share.status_code == 201
    assert any(
        e["type"] == "tag" and e["add"] == ["social_sharer"] for e in share.get_json()["effects"]
    )
    member = member_row(services.db, "fay")
    assert member is not None
    assert sorted(member["tags"]) == ["coffee_lover", "newsletter", "social_sharer", "vip"]
    assert assert_balanced(services.db, "fay")["available"] == 88 + COFFEE_BASKET_BONUS


def test_the_tier_multiplier_applies_to_a_member_with_a_tier(
    client: FlaskClient, services: Services
) -> None:
    add_member(services.db, "gil", tier="gold")

    weekday = post(client, purchase("gil", "200"))
    weekend_app = post(client, purchase("gil", "120", channel="app", occurred_at=SATURDAY))
    weekend_again = post(
        client, purchase("gil", "120", channel="app", occurred_at="2026-12-05T15:00:00+08:00")
    )

    assert weekday.status_code == 201
    assert weekday.get_json()["customer"]["tier"] == "gold"
    assert weekday.get_json()["effects"] == [
        {
            "type": "award_points",
            "points": 300,
            "campaign": "base-earn",
            "rule": "one-point-per-cny",
        }
    ]
    # 1.5 x 120 from base-earn, plus the campaign's own double (no tier multiplier).
    assert sorted((e["campaign"], e["points"]) for e in weekend_app.get_json()["effects"]) == [
        ("base-earn", 180),
        ("weekend-double-points", 240),
    ]
    # The weekend bonus is limited to once a day.
    assert weekend_again.get_json()["effects"] == [
        {
            "type": "award_points",
            "points": 180,
            "campaign": "base-earn",
            "rule": "one-point-per-cny",
        }
    ]
    assert assert_balanced(services.db, "gil")["available"] == 300 + 420 + 180


def test_a_bronze_member_gets_no_weekend_bonus(client: FlaskClient, services: Services) -> None:
    response = post(client, purchase("hal", "120", channel="app", occurred_at=SATURDAY))

    assert response.status_code == 201
    assert points_of(response.get_json()) == 120


BUDGET_CAMPAIGN = flat_hundred_campaign("tiny-budget", 250)


def test_a_campaign_budget_runs_out_exactly(
    database_url: str, tmp_path: Path, clock: FixedClock
) -> None:
    rules = write_rules(tmp_path / "rules", {"tiny-budget.yaml": BUDGET_CAMPAIGN})
    settings = Settings(database_url=database_url, rules_dir=str(rules), engine="durable")
    with services_for(settings, clock) as services:
        client = app_for(services).test_client()

        earned = []
        for customer in ("m-1", "m-2", "m-3", "m-4"):
            response = post(client, purchase(customer, "0.50"))
            assert response.status_code == 201, response.get_data(as_text=True)
            earned.append(points_of(response.get_json()))

        assert earned == [100, 100, 50, 0]
        with services.db.connect() as connection:
            used = connection.execute(
                select(campaign_budgets.c.points_used).where(
                    campaign_budgets.c.campaign == "tiny-budget"
                )
            ).scalar_one()
        assert used == 250
        total = sum(assert_balanced(services.db, c)["available"] for c in ("m-1", "m-2", "m-3"))
        assert total == 250


def test_ledger_entries_name_event_campaign_rule_and_rules_version(
    client: FlaskClient, services: Services
) -> None:
    body = purchase("ivy", "88", channel="store", items=COFFEE_BASKET)
    answer = post(client, body).get_json()

    rows = ledger_rows(services.db, "ivy")

    assert sorted((r["campaign"], r["points"]) for r in rows) == [
        ("base-earn", 88),
        ("coffee-lovers", COFFEE_BASKET_BONUS),
    ]
    rules = {(e["campaign"], e["rule"]) for e in answer["effects"] if "rule" in e}
    assert {(r["campaign"], r["rule"]) for r in rows} <= rules
    for row in rows:
        assert row["kind"] == "earned"
        assert row["event_id"] == body["event_id"]
        assert row["order_id"] == body["order_id"]
        assert row["rules_version"] == answer["rules_version"] == services.rules.active.version
        assert row["lot_id"] is not None


def test_balance_equals_the_ledger_and_the_lots_after_a_sequence_of_events(
    client: FlaskClient, services: Services
) -> None:
    first = purchase("jon", "300")
    second = purchase("jon", "88", channel="store", items=COFFEE_BASKET)
    bodies = [
        event("enrolment", "jon"),
        first,
        second,
        activity("jon", "review", "2026-12-02T12:00:00+08:00"),
        refund("jon", first["order_id"], "100"),
        activity("jon", "review", "2026-12-02T13:00:00+08:00"),
        refund("jon", second["order_id"], "88"),
        purchase("jon", "19.99"),
        refund("jon", first["order_id"], "200"),
    ]
    answers = []
    for body in bodies:
        response = post(client, body)
        assert response.status_code == 201, response.get_data(as_text=True)
        answers.append(response.get_json())

    balances = assert_balanced(services.db, "jon")
    # 100 welcome + 300 + (88 + coffee) + 20 review - 100 - (88 + coffee) + 19 - 200.
    assert balances == {"available": 139, "pending": 0, "debt": 0}
    assert answers[-1]["customer"]["points"] == {"available": 139, "pending": 0}


def test_a_batch_applies_or_rejects_each_event_on_its_own(
    client: FlaskClient, services: Services
) -> None:
    good = purchase("kim", "10")
    conflicting = {**good, "amount": "11"}
    invalid = {**purchase("kim", "-1")}

    response = post(client, {"events": [good, invalid, good, conflicting]}, "/v1/events/batch")

    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.get_json()["results"]
    assert [r["http_status"] for r in results] == [201, 422, 200, 409]
    assert results[0]["status"] == "applied"
    assert results[1]["status"] == "rejected"
    assert "amount" in results[1]["errors"]
    assert results[2]["status"] == "duplicate"
    assert results[3]["status"] == "rejected"
    assert assert_balanced(services.db, "kim")["available"] == 10


def test_a_null_in_a_batch_is_rejected_on_its_own(client: FlaskClient, services: Services) -> None:
    good = purchase("lou", "10")

    response = post(client, {"events": [good, None]}, "/v1/events/batch")

    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.get_json()["results"]
    assert [r["http_status"] for r in results] == [201, 422]
    assert assert_balanced(services.db, "lou")["available"] == 10


def test_a_batch_keeps_each_members_order_and_answers_in_the_order_sent(
    client: FlaskClient, services: Services
) -> None:
    # Applied in one transaction with members locked in id order; a member's own events
    # still apply in the order sent (the second sees the first's points), and the answers
    # come back in the order of the request.
    first = purchase("zed", "100")
    second = purchase("amy", "10")
    third = purchase("zed", "50")
    response = post(client, {"events": [first, second, third]}, "/v1/events/batch")

    results = response.get_json()["results"]
    assert [r["event_id"] for r in results] == [e["event_id"] for e in (first, second, third)]
    assert [r["customer"]["points"]["available"] for r in results] == [100, 10, 150]
    assert assert_balanced(services.db, "zed")["available"] == 150
