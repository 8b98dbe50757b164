"""Dry runs: `POST /v1/events?dry_run=true` and `POST /v1/dry-run` evaluate, explain, and
write nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.bootstrap import Services
from tests.conftest import RULES_DIR
from tests.databases import row_counts
from tests.service.helpers import (
    SATURDAY,
    activity,
    add_member,
    assert_problem,
    post,
    purchase,
    refund,
)


class Unchanged:
    """Row counts taken now, compared when asked."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.counts = row_counts(services.db)

    def check(self) -> None:
        assert row_counts(self.services.db) == self.counts


@pytest.fixture
def unchanged(services: Services, app: Flask) -> Iterator[Unchanged]:
    """Row counts from once the app is made (which records the rules version it serves)."""
    yield (watch := Unchanged(services))
    watch.check()


def trace_of(answer: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(t["campaign"], t["rule"]): t for t in answer["trace"]}


def outcomes(answer: dict[str, Any], campaign: str) -> set[str]:
    return {t["outcome"] for t in answer["trace"] if t["campaign"] == campaign}


def dry_run_event(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    response = post(client, body, "/v1/events?dry_run=true")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def test_a_dry_run_event_answers_effects_and_a_trace_and_writes_nothing(
    client: FlaskClient, services: Services
) -> None:
    watch = Unchanged(services)
    body = purchase("ann", "120", channel="app", occurred_at=SATURDAY)

    answer = dry_run_event(client, body)

    watch.check()
    assert answer["dry_run"] is True
    assert answer["event_id"] == body["event_id"]
    assert answer["customer_state"] == "new"
    assert answer["effects"] == [
        {
            "type": "award_points",
            "points": 120,
            "campaign": "base-earn",
            "rule": "one-point-per-cny",
        }
    ]
    assert answer["points"] == 120
    assert answer["rules_version"] == services.rules.active.version
    trace = trace_of(answer)
    assert trace["base-earn", "one-point-per-cny"]["outcome"] == "matched"
    weekend = trace["weekend-double-points", "double-on-weekend"]
    assert weekend["outcome"] == "not_matched"
    assert "customer.tier" in weekend["reason"]
    assert "bronze" in weekend["reason"]
    assert outcomes(answer, "coffee-lovers") == {"not_matched"}
    assert all(t["reason"] for t in answer["trace"] if t["outcome"] == "not_matched")
    # Rules for other event types are not in a purchase's trace.
    assert ("review-bonus", "points-for-a-review") not in trace

    # The same event afterwards is applied for real, as new.
    real = post(client, body)
    assert real.status_code == 201
    assert real.get_json()["effects"] == answer["effects"]


def test_a_dry_run_uses_a_stored_members_state(client: FlaskClient, services: Services) -> None:
    add_member(services.db, "gil", tier="gold")
    watch = Unchanged(services)

    answer = dry_run_event(client, purchase("gil", "120", channel="app", occurred_at=SATURDAY))

    watch.check()
    assert answer["customer_state"] == "stored"
    assert sorted((e["campaign"], e["points"]) for e in answer["effects"]) == [
        ("base-earn", 180),
        ("weekend-double-points", 240),
    ]
    assert answer["points"] == 420


def test_a_dry_run_explains_a_limit_reached(client: FlaskClient, services: Services) -> None:
    assert post(client, activity("eve", "review", "2026-12-02T12:00:00+08:00")).status_code == 201
    watch = Unchanged(services)

    answer = dry_run_event(client, activity("eve", "review", "2026-12-02T15:00:00+08:00"))

    watch.check()
    assert answer["effects"] == []
    assert trace_of(answer)["review-bonus", "points-for-a-review"]["outcome"] == "limit_reached"


def test_a_dry_run_refund_shows_the_clawback_without_taking_it(
    client: FlaskClient, services: Services
) -> None:
    order = purchase("bob", "100")
    assert post(client, order).status_code == 201
    watch = Unchanged(services)

    answer = dry_run_event(client, refund("bob", order["order_id"], "25"))

    watch.check()
    assert answer["effects"] == [
        {"type": "claw_back_points", "points": 25, "order_id": order["order_id"], "shortfall": 0}
    ]
    assert post(client, refund("bob", order["order_id"], "25")).status_code == 201


def test_a_dry_run_of_a_stored_event_id_writes_nothing(
    client: FlaskClient, services: Services
) -> None:
    body = purchase("cat", "10")
    assert post(client, body).status_code == 201
    watch = Unchanged(services)

    dry_run_event(client, {**body, "amount": "99"})

    watch.check()


def test_an_invalid_dry_run_event_is_refused(client: FlaskClient, unchanged: Unchanged) -> None:
    problem = assert_problem(post(client, purchase(amount="-3"), "/v1/events?dry_run=true"), 422)

    assert "amount" in problem["errors"]


def test_the_dry_run_flag_is_validated(client: FlaskClient, unchanged: Unchanged) -> None:
    response = post(client, purchase(), "/v1/events?dry_run=maybe")

    assert "dry_run" in assert_problem(response, 422)["errors"]


def test_the_dry_run_endpoint_uses_the_live_rules(
    client: FlaskClient, services: Services, unchanged: Unchanged
) -> None:
    response = post(client, {"event": purchase("dan", "88.80")}, "/v1/dry-run")

    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["points"] == 88
    assert answer["rules_version"] == services.rules.active.version
    assert answer["customer_state"] == "new"
    assert trace_of(answer)["base-earn", "one-point-per-cny"]["outcome"] == "matched"


def test_the_dry_run_endpoint_takes_a_hypothetical_customer(
    client: FlaskClient, unchanged: Unchanged
) -> None:
    body = {
        "event": purchase("dan", "120", channel="app", occurred_at=SATURDAY),
        "customer": {"tier": "gold", "balance": 5000},
    }

    response = post(client, body, "/v1/dry-run")

    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["customer_state"] == "hypothetical"
    assert answer["points"] == 420
    assert trace_of(answer)["weekend-double-points", "double-on-weekend"]["outcome"] == "matched"


def test_a_bad_hypothetical_customer_is_a_422(client: FlaskClient, unchanged: Unchanged) -> None:
    customers: list[Any] = [
        {"bogus": 1},
        {"tier": "gold", "balance": "lots"},
        {"birthday": "someday"},
        {"days_since_last_purchase": "a week"},
        "gold",
    ]

    for customer in customers:
        body = {"event": purchase("dan", "10"), "customer": customer}
        response = post(client, body, "/v1/dry-run")
        assert response.status_code == 422, (customer, response.get_data(as_text=True))
        assert_problem(response, 422)


def program_yaml() -> str:
    return (RULES_DIR / "program.yaml").read_text(encoding="utf-8")


SENT_CAMPAIGN = """\
campaign: x
description: Seven points for anything bought in store
priority: 0
rules:
  - name: seven-in-store
    when:
      type: purchase
      channel: store
    then:
      - award_points: {points: 7, tier_multiplier: false}
tests:
  - name: a purchase in store earns seven
    event: {type: purchase, amount: 1, channel: store, occurred_at: 2026-12-02T10:00:00+08:00}
    expect: {points: 7}
"""


def test_the_dry_run_endpoint_takes_rule_files_in_the_body(
    client: FlaskClient, services: Services, unchanged: Unchanged
) -> None:
    body = {
        "event": purchase("dan", "120", channel="store"),
        "rules": {"program.yaml": program_yaml(), "campaigns/x.yaml": SENT_CAMPAIGN},
    }

    response = post(client, body, "/v1/dry-run")

    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["effects"] == [
        {"type": "award_points", "points": 7, "campaign": "x", "rule": "seven-in-store"}
    ]
    assert answer["rules_version"] != services.rules.active.version
    # The live rules are untouched.
    assert services.rules.active.ruleset.campaign("x") is None
    live = post(client, {"event": purchase("dan", "120", channel="store")}, "/v1/dry-run")
    assert live.get_json()["points"] == 120


BAD_CAMPAIGN = """\
campaign: x
description: A rule with a typo in its operator
priority: 0
rules:
  - name: typo
    when:
      type: purchase
      amount: {gtee: 50}
    then:
      - award_points: {points: 7}
"""


def test_bad_rule_files_in_the_body_are_a_422_with_file_and_line(
    client: FlaskClient, unchanged: Unchanged
) -> None:
    body = {
        "event": purchase("dan", "120"),
        "rules": {"program.yaml": program_yaml(), "campaigns/x.yaml": BAD_CAMPAIGN},
    }

    problem = assert_problem(post(client, body, "/v1/dry-run"), 422)

    typos = [p for p in problem["problems"] if "gtee" in p["message"]]
    assert len(typos) == 1, problem
    found = typos[0]
    assert found["file"] == "campaigns/x.yaml"
    assert found["line"] == 8
    assert "campaigns/x.yaml:8" in problem["detail"]


def test_rule_files_without_a_programme_are_a_422(
    client: FlaskClient, unchanged: Unchanged
) -> None:
    body = {"event": purchase("dan", "120"), "rules": {"campaigns/x.yaml": SENT_CAMPAIGN}}

    problem = assert_problem(post(client, body, "/v1/dry-run"), 422)

    assert any(p["file"] == "program.yaml" for p in problem["problems"])


def test_a_bad_dry_run_request_is_a_422(client: FlaskClient, unchanged: Unchanged) -> None:
    bodies: list[Any] = [
        {},
        {"event": "purchase"},
        {"event": {"type": "purchase"}},
        {"event": {}, "extra": 1},
        {"event": {}, "rules": ["program.yaml"]},
        [{"event": {}}],
    ]

    for body in bodies:
        response = post(client, body, "/v1/dry-run")
        assert response.status_code == 422, (body, response.get_data(as_text=True))
        assert_problem(response, 422)
