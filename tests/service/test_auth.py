"""Bearer keys with scopes; health endpoints are open. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask.testing import FlaskClient

from service.bootstrap import Services
from service.settings import DEV_API_KEY, parse_api_keys
from tests.databases import row_counts
from tests.service.helpers import app_for, assert_problem, purchase

READER = {"Authorization": "Bearer reader"}
WRITER = {"Authorization": "Bearer writer"}


@pytest.fixture
def scoped(services: Services) -> Iterator[FlaskClient]:
    """A client on the same services, with a reader key and a writer key only."""
    keys = parse_api_keys("reader:customers:read writer:events:write")
    original = services.settings
    services.settings = replace(original, api_keys=keys)
    try:
        yield app_for(services).test_client()
    finally:
        services.settings = original


def assert_unauthorized(response: object) -> None:
    assert_problem(response, 401)  # type: ignore[arg-type]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")  # type: ignore[attr-defined]


ROUTES = [
    ("POST", "/v1/events"),
    ("POST", "/v1/events?dry_run=true"),
    ("POST", "/v1/events/batch"),
    ("POST", "/v1/dry-run"),
    ("GET", "/v1/customers/ann"),
    ("GET", "/v1/customers/ann/ledger"),
    ("GET", "/v1/rules"),
]


def test_every_api_route_needs_a_key(client: FlaskClient, services: Services) -> None:
    before = row_counts(services.db)

    for method, path in ROUTES:
        response = client.open(path, method=method, json=purchase("ann"))
        assert response.status_code == 401, (method, path)
        assert_unauthorized(response)

    assert row_counts(services.db) == before


def test_a_wrong_key_is_a_401(client: FlaskClient, services: Services) -> None:
    before = row_counts(services.db)
    headers = [
        "Bearer wrong-key",
        f"Bearer {DEV_API_KEY}x",
        f"Bearer {DEV_API_KEY[:-1]}",
        f"Basic {DEV_API_KEY}",
        DEV_API_KEY,
        "Bearer ",
        "",
    ]

    for header in headers:
        response = client.post(
            "/v1/events", json=purchase("ann"), headers={"Authorization": header}
        )
        assert response.status_code == 401, header
        assert_unauthorized(response)

    assert row_counts(services.db) == before


def test_auth_comes_before_reading_the_body(client: FlaskClient) -> None:
    response = client.post("/v1/events", data="{not json", content_type="application/json")

    assert_unauthorized(response)


def test_a_key_without_the_scope_is_a_403(scoped: FlaskClient, services: Services) -> None:
    before = row_counts(services.db)

    refused = [
        scoped.post("/v1/events", json=purchase("ann"), headers=READER),
        scoped.post("/v1/dry-run", json={"event": purchase("ann")}, headers=READER),
        scoped.get("/v1/customers/ann", headers=WRITER),
        scoped.get("/v1/customers/ann/ledger", headers=WRITER),
    ]

    for response in refused:
        problem = assert_problem(response, 403)
        assert "scope" in problem["detail"]
    assert row_counts(services.db) == before


def test_a_key_with_the_scope_is_let_through(scoped: FlaskClient) -> None:
    written = scoped.post("/v1/events", json=purchase("ann", "10"), headers=WRITER)
    read = scoped.get("/v1/customers/ann", headers=READER)

    assert written.status_code == 201, written.get_data(as_text=True)
    assert read.status_code == 200
    assert read.get_json()["points"]["available"] == 10


def test_the_dev_key_is_refused_once_other_keys_are_configured(scoped: FlaskClient) -> None:
    response = scoped.get("/v1/customers/ann", headers={"Authorization": f"Bearer {DEV_API_KEY}"})

    assert_unauthorized(response)


def test_health_endpoints_need_no_key(client: FlaskClient) -> None:
    alive = client.get("/healthz")
    ready = client.get("/readyz")

    assert alive.status_code == 200, alive.get_data(as_text=True)
    assert alive.get_json()["status"] == "ok"
    assert ready.status_code == 200, ready.get_data(as_text=True)
    assert ready.get_json()["status"] == "ready"
    assert ready.get_json()["checks"]["rules"] is True
    assert ready.get_json()["checks"]["database"] is True
