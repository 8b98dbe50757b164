"""The edge's limits that are not about bodies, on SQLite and PostgreSQL: requests
without a valid key throttled per client address, in the same limiter as the keys;
request lines and headers past gunicorn's default limits refused as problem+json; the
413 names the limit."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.api.app import create_app
from service.api.hardening import MAX_HEADER_FIELD, MAX_HEADER_FIELDS, RateLimiter
from service.bootstrap import Services
from service.settings import Settings, SettingsError, parse_api_keys
from tests.conftest import AUTH
from tests.service.helpers import assert_problem, new_id, post, purchase

WRONG = {"Authorization": "Bearer not-a-key"}


def app_with(services: Services, **changes: Any) -> Flask:
    settings = dataclasses.replace(services.settings, **changes)
    app = create_app(settings=settings, services=dataclasses.replace(services, settings=settings))
    app.testing = True
    return app


def from_address(address: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": address}}


# -- finding 7: failed authentication


def test_wrong_and_missing_keys_are_throttled_per_address(services: Services) -> None:
    client = app_with(services, auth_failure_limit="5/m").test_client()
    member = new_id("guess")
    guesser = from_address("203.0.113.7")

    answers = [
        client.get(f"/v1/customers/{member}", headers=WRONG, **guesser).status_code
        for _ in range(4)
    ] + [client.post("/v1/events", json={}, **guesser).status_code]  # no key at all
    refused = client.get(f"/v1/customers/{member}", headers=WRONG, **guesser)

    assert answers == [401] * 5
    problem = assert_problem(refused, 429)
    assert "without a valid key from this address" in problem["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # A valid key from the same address is not held back, nor is another address.
    assert client.get(f"/v1/customers/{member}", headers=AUTH, **guesser).status_code == 404
    other = client.get(f"/v1/customers/{member}", headers=WRONG, **from_address("192.0.2.1"))
    assert other.status_code == 401


def test_health_and_metrics_never_count_as_failed_authentication(services: Services) -> None:
    client = app_with(services, auth_failure_limit="2/m").test_client()

    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200

    assert client.get("/v1/rules").status_code == 401


def test_failed_authentication_limit_of_off_never_throttles(services: Services) -> None:
    client = app_with(services, auth_failure_limit="off").test_client()

    answers = {client.get("/v1/rules", headers=WRONG).status_code for _ in range(80)}

    assert answers == {401}


def test_the_default_throttles_a_flood_of_wrong_keys(services: Services) -> None:
    """The reported flood (3,000 wrong keys in 2.6 s) meets 429 after the first 60."""
    client = app_with(services).test_client()

    answers = [client.get("/v1/rules", headers=WRONG).status_code for _ in range(100)]

    assert answers[:60] == [401] * 60
    assert set(answers[60:]) == {429}


@pytest.mark.parametrize("text", ["sixty", "0/m", "10/d"])
def test_a_bad_failed_authentication_limit_is_refused_at_start(text: str) -> None:
    with pytest.raises(SettingsError, match="LOYALTY_AUTH_FAILURE_LIMIT"):
        Settings.from_env({"LOYALTY_AUTH_FAILURE_LIMIT": text})


def test_the_limiter_forgets_refilled_buckets_so_addresses_cannot_grow_it() -> None:
    now = [0.0]
    limiter = RateLimiter(1000, 1.0, clock=lambda: now[0], max_buckets=100)

    for address in range(1000):
        limiter.wait(("failed-auth", address), (1, 60.0))
        now[0] += 0.001

    assert len(limiter) <= 100
    now[0] += 120.0  # all refilled: a new address finds room at once
    limiter.wait("fresh")
    assert len(limiter) == 1


def test_forgetting_keeps_the_buckets_that_still_hold_someone_back() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 60.0, clock=lambda: now[0], max_buckets=10)
    assert [limiter.wait("key") for _ in range(2)] == [0.0, 0.0]
    for address in range(9):
        limiter.wait(address, (1, 1.0))

    now[0] = 5.0  # the addresses' buckets have refilled, the key's has not
    limiter.wait("newcomer")

    assert len(limiter) == 2
    assert limiter.wait("key") > 0


def test_a_flood_from_many_addresses_holds_back_only_those_that_flood(
    services: Services,
) -> None:
    keys = parse_api_keys("key:*")
    client = app_with(
        services, auth_failure_limit="1/m", rate_limit="2/m", api_keys=keys
    ).test_client()
    key = {"Authorization": "Bearer key"}
    member = new_id("flood")
    assert [client.get("/v1/rules", headers=key).status_code for _ in range(3)] == [200, 200, 429]

    for address in range(300):
        guesser = from_address(f"2001:db8::{address:x}")  # documentation addresses
        first = client.get(f"/v1/customers/{member}", headers=WRONG, **guesser).status_code
        again = client.get(f"/v1/customers/{member}", headers=WRONG, **guesser).status_code
        assert (first, again) == (401, 429), address

    newcomer = client.get("/v1/rules", headers=WRONG, **from_address("192.0.2.99"))
    assert newcomer.status_code == 401
    assert client.get("/v1/rules", headers=key).status_code == 429  # still held back


def test_while_the_shared_store_cannot_be_reached_each_worker_counts_alone(
    services: Services,
) -> None:
    # Nothing listens on port 1: every call to this store fails at once.
    client = app_with(
        services, rate_limit="3/m", rate_limit_storage="redis://127.0.0.1:1/0"
    ).test_client()

    answers = [client.get("/v1/rules", headers=AUTH).status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]


@pytest.mark.parametrize("url", ["127.0.0.1:6379", "nosuch://127.0.0.1"])
def test_a_storage_that_is_no_storage_url_is_refused_at_start(services: Services, url: str) -> None:
    with pytest.raises(SettingsError, match="LOYALTY_RATE_LIMIT_STORAGE"):
        app_with(services, rate_limit_storage=url)


def test_a_storage_without_a_scheme_is_refused_when_read() -> None:
    with pytest.raises(SettingsError, match="LOYALTY_RATE_LIMIT_STORAGE"):
        Settings.from_env({"LOYALTY_RATE_LIMIT_STORAGE": "127.0.0.1:6379"})


# -- finding 8: what gunicorn answered as text/html, refused by the app first


def test_a_request_line_past_4094_bytes_is_a_414_problem(client: FlaskClient) -> None:
    response = client.get(f"/v1/customers/{new_id('m')}?pad={'a' * 4100}", headers=AUTH)

    problem = assert_problem(response, 414)
    assert "at most 4094" in problem["detail"]


def test_a_header_field_past_8190_bytes_is_a_431_problem(client: FlaskClient) -> None:
    response = client.get("/healthz", headers={"X-Pad": "a" * MAX_HEADER_FIELD})

    problem = assert_problem(response, 431)
    assert "'X-Pad'" in problem["detail"]
    assert f"at most {MAX_HEADER_FIELD}" in problem["detail"]


def test_more_than_100_header_fields_is_a_431_problem(client: FlaskClient) -> None:
    headers = {f"X-Pad-{i}": "a" for i in range(MAX_HEADER_FIELDS + 1)}

    problem = assert_problem(client.get("/healthz", headers=headers), 431)
    assert f"at most {MAX_HEADER_FIELDS}" in problem["detail"]


def test_a_body_over_the_limit_names_the_limit(services: Services) -> None:
    client = app_with(services, max_body_bytes=2048).test_client()

    response = post(client, purchase(new_id("big"), "10", items=[{"sku": "x" * 100}] * 40))

    problem = assert_problem(response, 413)
    assert "larger than 2048 bytes (LOYALTY_MAX_BODY_BYTES)" in problem["detail"]
