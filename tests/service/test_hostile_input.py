"""Hostile request bodies, on SQLite and PostgreSQL: each answers a 4xx problem naming
what is wrong, and nothing of it is stored. Deep nesting, numbers with huge exponents,
other encodings, NUL and lone surrogates, ids that cannot stand in a URL path, duplicate
keys, byte-order marks and minus zero."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from service.bootstrap import Services
from service.storage.tables import events
from tests.conftest import AUTH
from tests.databases import row_counts
from tests.service.helpers import (
    WEDNESDAY,
    activity,
    assert_problem,
    event,
    new_id,
    post,
    purchase,
)

JSON_TYPE = {**AUTH, "Content-Type": "application/json"}
DEEP = 1000  # the nesting that answered 500 (RecursionError)
NUMBER = "must have at most 28 significant digits and an exponent between -30 and 30"
SURROGATE = "must not contain a lone surrogate (U+D800 to U+DFFF): send valid Unicode"
NUL = "must not contain the NUL character (U+0000)"


def post_raw(
    client: FlaskClient, data: bytes, path: str = "/v1/events", **headers: str
) -> TestResponse:
    return client.post(path, data=data, headers={**JSON_TYPE, **headers})


def stored_payload(services: Services, event_id: str) -> Any:
    with services.db.connect() as connection:
        return connection.execute(
            select(events.c.payload).where(events.c.event_id == event_id)
        ).scalar_one()


@pytest.fixture
def unchanged(services: Services) -> Any:
    """Asserts, after the test, that no table gained or lost a row."""
    before = row_counts(services.db)
    yield
    assert row_counts(services.db) == before


# -- finding 3: deep nesting


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch", "/v1/dry-run"])
def test_a_deeply_nested_body_is_a_400_naming_the_limit(
    client: FlaskClient, unchanged: None, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = post_raw(client, b"[" * DEEP + b"]" * DEEP, path)

    problem = assert_problem(response, 400)
    assert problem["type"].endswith("/too-deep")
    assert "1000 levels deep; at most 64" in problem["detail"]
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_deep_nesting_inside_attributes_is_a_400_too(client: FlaskClient, unchanged: None) -> None:
    body = json.dumps(activity(new_id("deep"), "review", WEDNESDAY, attributes={"x": "HOLE"}))
    hole = '"HOLE"'
    data = body.replace(hole, "[" * DEEP + "]" * DEEP).encode()

    problem = assert_problem(post_raw(client, data), 400)
    assert "at most 64" in problem["detail"]


def test_nesting_at_the_limit_is_judged_by_the_schema_not_refused_unread(
    client: FlaskClient, unchanged: None
) -> None:
    nested = "[" * 61 + "1" + "]" * 61  # event, attributes, {"y": ...}: 64 levels in all
    body = json.dumps(activity(new_id("deep"), "review", WEDNESDAY, attributes={"x": "HOLE"}))
    data = body.replace('"HOLE"', '{"y": ' + nested + "}").encode()

    problem = assert_problem(post_raw(client, data), 422)
    assert "attributes" in problem["errors"]


# -- finding 4: numbers without bounds


@pytest.mark.parametrize("number", ["1e999999", "1e1000000", "-1E-31", "1" * 29, "0.1e-40"])
def test_an_attribute_number_out_of_bounds_is_a_422_naming_it(
    client: FlaskClient, unchanged: None, number: str
) -> None:
    body = json.dumps(activity(new_id("num"), "review", WEDNESDAY, attributes={"n": 0}))
    data = body.replace('"n": 0', f'"n": {number}').encode()

    problem = assert_problem(post_raw(client, data), 422)
    assert problem["errors"] == {"attributes": {"n": [NUMBER]}}
    assert "attributes.n" in problem["detail"]


def test_numbers_are_bounded_everywhere_in_a_body(client: FlaskClient, unchanged: None) -> None:
    body = json.dumps(purchase(new_id("num"), "0", items=[{"sku": "a", "price": "0"}]))
    data = body.replace('"amount": "0"', '"amount": 1e999999').replace(
        '"price": "0"', '"price": ' + "9" * 50
    )

    problem = assert_problem(post_raw(client, data.encode()), 422)
    assert problem["errors"] == {"amount": [NUMBER], "items": {"0": {"price": [NUMBER]}}}
    assert "items.0.price" in problem["detail"]


def test_a_number_within_the_bounds_is_stored_as_written(
    client: FlaskClient, services: Services
) -> None:
    body = activity(new_id("num"), "review", WEDNESDAY)
    data = json.dumps(body).replace("}", ', "attributes": {"n": 1.5e3, "m": -0.0}}', 1)

    assert post_raw(client, data.encode()).status_code == 201

    assert stored_payload(services, body["event_id"])["attributes"] == {"n": "1500", "m": "0"}


# -- finding 5: other encodings, NUL and lone surrogates


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_a_body_in_utf16_or_utf32_is_a_415(
    client: FlaskClient, unchanged: None, encoding: str
) -> None:
    data = json.dumps(purchase(new_id("enc"), "10", channel="a\u0000b")).encode(encoding)

    problem = assert_problem(post_raw(client, data), 415)
    assert problem["type"].endswith("/unsupported-encoding")
    assert "UTF-8" in problem["detail"]


def test_a_charset_other_than_utf8_is_a_415(client: FlaskClient) -> None:
    data = json.dumps(purchase(new_id("enc"), "10")).encode()
    declared = {"Content-Type": "application/json; charset=latin-1"}

    problem = assert_problem(post_raw(client, data, **declared), 415)
    assert "charset=latin-1" in problem["detail"]
    utf8 = {"Content-Type": "application/json; charset=UTF-8"}
    assert post_raw(client, data, **utf8).status_code == 201


def test_bytes_that_are_not_utf8_are_a_400_naming_the_byte(
    client: FlaskClient, unchanged: None
) -> None:
    encoded_surrogate = b"\xed\xa0\x80"  # what UTF-8 would be for U+D800, which it forbids
    data = json.dumps(purchase(new_id("enc"), "10", channel="HOLE")).encode()

    problem = assert_problem(post_raw(client, data.replace(b"HOLE", encoded_surrogate)), 400)
    assert "not valid UTF-8: byte 0xed" in problem["detail"]


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch"])
def test_lone_surrogates_anywhere_are_a_422_naming_each_field(
    client: FlaskClient, unchanged: None, path: str
) -> None:
    one = activity(new_id("sur"), "review", WEDNESDAY, attributes={"a": "x\ud800", "b\udfff": 1})
    one["channel"] = "\udc00"
    body: Any = one if path == "/v1/events" else {"events": [one]}

    response = client.post(path, data=json.dumps(body), headers=JSON_TYPE)

    problem = assert_problem(response, 422)
    errors = problem["errors"] if path == "/v1/events" else problem["errors"]["events"]["0"]
    assert errors == {
        "channel": [SURROGATE],
        "attributes": {"a": [SURROGATE], "b\\udfff": [SURROGATE]},
    }


def test_nul_in_items_and_profiles_is_a_422_naming_the_field(
    client: FlaskClient, unchanged: None
) -> None:
    body = event("enrolment", new_id("nul"), profile={"tags": ["ok", "b\u0000d"]})

    problem = assert_problem(post(client, body), 422)
    assert problem["errors"] == {"profile": {"tags": {"1": [NUL]}}}


# -- finding 6: ids that cannot stand in a URL path


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", "a/b-1"),
        ("customer_id", ".."),
        ("customer_id", ".hidden"),
        ("customer_id", "ann\n"),
        ("customer_id", "ann%2F"),
        ("customer_id", "a?b"),
        ("customer_id", "a#b"),
        ("referrer_id", "x/y"),
    ],
)
def test_an_id_that_cannot_stand_in_a_url_path_is_a_422(
    client: FlaskClient, unchanged: None, field: str, value: str
) -> None:
    body = event("referral", new_id("ref"), referrer_id=new_id("friend"))
    body[field] = value

    problem = assert_problem(post(client, body), 422)
    assert "stand in a URL path" in problem["errors"][field][0]


def test_a_redemption_id_with_a_slash_is_a_422(client: FlaskClient, unchanged: None) -> None:
    body = {"reward_id": "free-coffee", "redemption_id": "r/1"}

    response = client.post(f"/v1/customers/{new_id('m')}/redemptions", json=body, headers=AUTH)

    problem = assert_problem(response, 422)
    assert "redemption_id" in problem["errors"]


@pytest.mark.parametrize(
    "member", ["ann+shop@example.com", "crm:42~a=b", "A.b_c-d", "o'neil;(x),*!$&"]
)
def test_an_id_of_the_allowed_characters_earns_and_can_be_read_back(
    client: FlaskClient, member: str
) -> None:
    assert post(client, purchase(member, "10")).status_code == 201

    found = client.get(f"/v1/customers/{member}", headers=AUTH)
    ledger = client.get(f"/v1/customers/{member}/ledger", headers=AUTH)

    assert found.status_code == 200, found.get_data(as_text=True)
    assert found.get_json()["customer_id"] == member
    assert ledger.get_json()["entries"]


# -- finding 8: duplicate keys, byte-order marks, minus zero


def test_a_key_given_twice_is_a_400_naming_it(client: FlaskClient, unchanged: None) -> None:
    data = json.dumps(purchase(new_id("dup"), "10")).replace("{", '{"amount": "9999", ', 1)

    problem = assert_problem(post_raw(client, data.encode()), 400)
    assert problem["type"].endswith("/duplicate-key")
    assert "'amount' appears twice" in problem["detail"]


def test_a_utf8_byte_order_mark_is_a_415(client: FlaskClient, unchanged: None) -> None:
    data = b"\xef\xbb\xbf" + json.dumps(purchase(new_id("bom"), "10")).encode()

    problem = assert_problem(post_raw(client, data), 415)
    assert "UTF-8 byte-order mark" in problem["detail"]


@pytest.mark.parametrize("zero", ["-0", '"-0"', "-0.00", '"-0.0"'])
def test_minus_zero_is_read_as_zero(client: FlaskClient, services: Services, zero: str) -> None:
    body = purchase(new_id("zero"), "HOLE")
    data = json.dumps(body).replace('"HOLE"', zero)

    assert post_raw(client, data.encode()).status_code == 201

    assert stored_payload(services, body["event_id"])["amount"] == "0"
