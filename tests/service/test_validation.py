"""Bad input gets a clear problem+json answer and changes nothing.

Each test compares every table's row count before and after, on SQLite and PostgreSQL.
Cases of one kind share a test (one database setup) and report every case that fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from service.bootstrap import Services
from tests.conftest import AUTH
from tests.databases import row_counts
from tests.service.helpers import WEDNESDAY, activity, assert_problem, event, post, purchase


@pytest.fixture(autouse=True)
def nothing_changes(services: Services, client: FlaskClient) -> Iterator[None]:
    """Every request in this module is refused: no table may gain or lose a row (counted
    once the app is made, which records the rules version it serves)."""
    before = row_counts(services.db)
    yield
    assert row_counts(services.db) == before


def field_errors(response: TestResponse, status: int = 422) -> dict[str, Any]:
    problem = assert_problem(response, status)
    assert isinstance(problem.get("errors"), dict), problem
    return problem["errors"]  # type: ignore[no-any-return]


def every_case(cases: list[tuple[str, Callable[[], None]]]) -> None:
    """Run each named check; fail once, naming every case that failed and why."""
    failures = []
    for name, check in cases:
        try:
            check()
        except AssertionError as error:
            failures.append(f"{name}: {str(error).splitlines()[0] if str(error) else 'failed'}")
    assert not failures, "\n".join(failures)


def refused(
    client: FlaskClient, body: Any, fields: set[str] | None = None, path: str = "/v1/events"
) -> Callable[[], None]:
    """A check: the body is a 422 whose errors name exactly ``fields`` (when given)."""

    def check() -> None:
        errors = field_errors(post(client, body, path))
        if fields is not None:
            assert set(errors) == fields, errors

    return check


def raw(client: FlaskClient, data: str, content_type: str = "application/json") -> TestResponse:
    return client.post("/v1/events", data=data, content_type=content_type, headers=AUTH)


def test_malformed_json_is_a_400(client: FlaskClient) -> None:
    for text in ['{"event_id": "e-1",', "", "{'single': 'quotes'}"]:
        problem = assert_problem(raw(client, text), 400)
        assert "JSON" in problem["detail"], text

    nan = json.dumps(purchase()).replace('"120.80"', "NaN")
    assert_problem(raw(client, nan), 400)


def test_a_body_that_is_not_json_is_a_415(client: FlaskClient) -> None:
    body = json.dumps(purchase())
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/xml"]:
        assert_problem(raw(client, body, content_type), 415)
    assert_problem(client.post("/v1/events", headers=AUTH), 415)


def test_an_unknown_field_is_named(client: FlaskClient) -> None:
    response = post(client, purchase(coupon="SAVE10"))

    errors = field_errors(response)
    assert list(errors) == ["coupon"]
    assert "coupon" in response.get_json()["detail"]


def test_an_unknown_nested_field_is_named(client: FlaskClient) -> None:
    items = [{"sku": "latte", "category": "coffee", "colour": "brown"}]

    errors = field_errors(post(client, purchase(items=items)))

    assert list(errors) == ["items"]
    assert "colour" in json.dumps(errors["items"])


def test_wrong_types_are_refused_per_field(client: FlaskClient) -> None:
    cases = [
        ({"amount": "lots"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": [1]}, "amount"),
        ({"amount": None}, "amount"),
        ({"customer_id": 123}, "customer_id"),
        ({"event_id": {"id": 1}}, "event_id"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"customer_id": "has space"}, "customer_id"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": 1764640800}, "occurred_at"),
        ({"items": "coffee"}, "items"),
        ({"items": [{"sku": "latte", "quantity": 0}]}, "items"),
        ({"items": [{"category": "coffee"}]}, "items"),
        ({"channel": 7}, "channel"),
    ]
    every_case(
        [(f"{changes}", refused(client, purchase(**changes), {field})) for changes, field in cases]
    )


def test_bad_amounts_are_refused(client: FlaskClient) -> None:
    cases = [
        ("-1", "negative"),
        ("-0.01", "negative"),
        ("100000000.01", "absurd"),
        ("1e12", "absurd"),
        (1000000000, "absurd"),
        ("12.34567", "too many decimal places"),
        ("NaN", "not a number"),
        ("Infinity", "not a number"),
    ]
    every_case(
        [
            (f"{amount!r} ({why})", refused(client, purchase(amount=amount), {"amount"}))
            for amount, why in cases
        ]
    )
    # A refund must refund something.
    refund = event("refund", "c-1", order_id="o-1", amount="0")
    every_case([("refund of 0", refused(client, refund, {"amount"}))])


def test_a_time_without_an_offset_is_refused(client: FlaskClient) -> None:
    every_case(
        [
            (at, refused(client, purchase(occurred_at=at), {"occurred_at"}))
            for at in ["2026-12-02T10:00:00", "2026-12-02 10:00:00", "2026-12-02"]
        ]
    )


def test_each_type_needs_its_own_fields(client: FlaskClient) -> None:
    required = {
        "purchase": {"order_id", "amount"},
        "refund": {"order_id", "amount"},
        "referral": {"referrer_id"},
        "activity": {"kind"},
        "profile": {"profile"},
    }
    every_case(
        [(kind, refused(client, event(kind, "c-1"), fields)) for kind, fields in required.items()]
    )


def test_every_event_needs_the_common_fields(client: FlaskClient) -> None:
    cases = []
    for missing in ["event_id", "customer_id", "occurred_at"]:
        body = event("enrolment", "c-1")
        del body[missing]
        cases.append((missing, refused(client, body, {missing})))
    every_case(cases)


def test_an_unknown_or_missing_type_is_refused(client: FlaskClient) -> None:
    cases = []
    for kind in ["order", "PURCHASE", "", None, 5]:
        cases.append((repr(kind), refused(client, {**purchase(), "type": kind}, {"type"})))
    untyped = purchase()
    del untyped["type"]
    cases.append(("no type", refused(client, untyped, {"type"})))
    every_case(cases)


def test_a_body_that_is_not_an_object_is_refused(client: FlaskClient) -> None:
    for body in [[], "purchase", 42, None, [purchase()]]:
        field_errors(raw(client, json.dumps(body)))


def test_bad_profiles_are_refused(client: FlaskClient) -> None:
    profiles: list[dict[str, Any]] = [
        {"timezone": "Mars/Olympus"},
        {"email": "not-an-address"},
        {"birthday": "31/12/1990"},
        {"tags": ["Not Allowed"]},
        {"tags": "vip"},
        {"phone": "call me"},
        {"nickname": "bob"},
    ]
    every_case(
        [
            (f"{profile}", refused(client, event("profile", "c-1", profile=profile), {"profile"}))
            for profile in profiles
        ]
    )


def test_bad_activities_are_refused(client: FlaskClient) -> None:
    cases: list[tuple[str, Any, str]] = [
        ("Write A Review", None, "kind"),
        ("review", {"stars": [5]}, "attributes"),
        ("review", {f"a{n}": n for n in range(51)}, "attributes"),
        ("review", "five stars", "attributes"),
        ("review", {"note": "x" * 257}, "attributes"),
    ]
    checks = []
    for kind, attributes, field in cases:
        body = activity("c-1", kind, WEDNESDAY)
        if attributes is not None:
            body["attributes"] = attributes
        checks.append((f"{kind} {str(attributes)[:40]}", refused(client, body, {field})))
    every_case(checks)


def test_a_body_over_the_size_limit_is_a_413(client: FlaskClient, services: Services) -> None:
    body = purchase(channel="x" * (services.settings.max_body_bytes + 1))

    assert_problem(post(client, body), 413)
    assert_problem(post(client, {"events": [body]}, "/v1/events/batch"), 413)


def test_a_batch_over_a_thousand_events_is_refused_whole(client: FlaskClient) -> None:
    batch = [purchase(f"c-{n}", "1") for n in range(1001)]

    errors = field_errors(post(client, {"events": batch}, "/v1/events/batch"))

    assert list(errors) == ["events"]


def test_a_batch_needs_a_list_of_events(client: FlaskClient) -> None:
    bodies: list[Any] = [{}, {"events": []}, {"events": "many"}, {"evts": []}, [purchase()]]
    every_case([(f"{body}", refused(client, body, path="/v1/events/batch")) for body in bodies])


def test_a_batch_of_only_invalid_events_rejects_each(client: FlaskClient) -> None:
    batch = [purchase(amount="-5"), {"type": "purchase"}, "not an event", 42]

    response = post(client, {"events": batch}, "/v1/events/batch")

    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.get_json()["results"]
    assert [r["status"] for r in results] == ["rejected"] * 4
    assert [r["http_status"] for r in results] == [422] * 4
    assert "amount" in results[0]["errors"]


def test_unknown_routes_and_wrong_methods_are_problems_too(client: FlaskClient) -> None:
    assert_problem(client.get("/v1/nothing-here", headers=AUTH), 404)

    response = client.get("/v1/events", headers=AUTH)

    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]
