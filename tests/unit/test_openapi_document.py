"""The OpenAPI document and the Flask app describe the same API: every route is in the
document (the views declare their schemas; a plain Flask route must be documented by
hand) and every documented operation is a route, with the scope its view checks.

The app runs on a throwaway SQLite database; the document never reads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from service.api.app import create_app
from service.api.document import api_document
from service.bootstrap import build_services
from service.settings import Settings
from tests.conftest import RULES_DIR
from tests.databases import sqlite_database

IMPLICIT = {"HEAD", "OPTIONS"}  # Flask answers these for every route by itself


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    with sqlite_database(str(tmp_path_factory.mktemp("openapi"))) as url:
        services = build_services(
            Settings(database_url=url, rules_dir=str(RULES_DIR), engine="reference")
        )
        yield create_app(services=services)
        services.db.dispose()


@pytest.fixture(scope="module")
def document(app: Flask) -> dict[str, Any]:
    served = app.test_client().get("/openapi.json")
    assert served.status_code == 200
    assert json.loads(served.get_data()) == api_document()  # with or without a database
    return api_document()


def openapi_path(rule: str) -> str:
    """Flask's /v1/customers/<id:customer_id> -> OpenAPI's /v1/customers/{customer_id}."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (method.lower(), openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - IMPLICIT
    }


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_every_route_is_documented(app: Flask, document: dict[str, Any]) -> None:
    missing = routes(app) - documented(document)
    assert not missing, (
        f"routes missing from the document: {sorted(missing)}; declare them on a "
        "service.api.contract.Blueprint, or document a plain Flask route in service.api.document"
    )


def test_every_documented_operation_is_a_route(app: Flask, document: dict[str, Any]) -> None:
    assert documented(document) - routes(app) == set()


def test_each_operation_names_its_endpoint_and_the_scope_its_view_checks(
    app: Flask, document: dict[str, Any]
) -> None:
    for rule in app.url_map.iter_rules():
        for method in (rule.methods or set()) - IMPLICIT:
            documented_op = document["paths"][openapi_path(rule.rule)][method.lower()]
            view = app.view_functions[rule.endpoint]
            scope = getattr(view, "required_scope", None)
            assert documented_op["operationId"] == rule.endpoint
            expected = [{"bearerAuth": [scope]}] if scope else []
            assert documented_op["security"] == expected, rule.endpoint
            if scope:
                assert {"401", "403", "429"} <= set(documented_op["responses"]), rule.endpoint


def test_every_error_answer_is_a_problem_with_a_request_id(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status == "414":  # gunicorn's own, before the app
                    continue
                assert "X-Request-ID" in answer["headers"], (method, path, status)
                if int(status) >= 400 and not (path == "/readyz" and status == "503"):
                    assert list(answer["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )


def test_request_schemas_refuse_unknown_fields(document: dict[str, Any]) -> None:
    """unknown=RAISE in every request schema reads as additionalProperties: false."""
    schemas = document["components"]["schemas"]
    for name in (
        "Purchase",
        "Refund",
        "Referral",
        "Activity",
        "Enrolment",
        "ProfileEvent",
        "Item",
        "Profile",
        "BatchRequest",
        "DryRunRequest",
        "HypotheticalCustomer",
        "RedemptionRequest",
        "OfferRedemptionRequest",
    ):
        assert schemas[name]["additionalProperties"] is False, name


def test_each_event_type_fits_exactly_one_branch_of_event(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    event = schemas["Event"]
    mapping = event["discriminator"]["mapping"]
    assert set(mapping) == {"purchase", "refund", "referral", "activity", "enrolment", "profile"}
    for kind, ref in mapping.items():
        branch = schemas[ref.rsplit("/", 1)[1]]
        assert branch["properties"]["type"]["enum"] == [kind]
        assert "type" in branch["required"]


def test_ids_are_documented_with_their_length_and_characters(document: dict[str, Any]) -> None:
    event_id = document["components"]["schemas"]["Purchase"]["properties"]["event_id"]
    assert event_id["minLength"] == 1
    assert event_id["maxLength"] == 128
    assert "pattern" in event_id
    amount = document["components"]["schemas"]["Purchase"]["properties"]["amount"]
    assert amount["type"] == ["number", "string"]
    assert isinstance(amount["maximum"], int)  # a JSON number, not a Decimal's text


def test_the_bearer_scheme_lists_every_scope(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {"type": "http", "scheme": "bearer", "description": scheme["description"]}
    for scope in ("events:write", "customers:read", "customers:write", "admin"):
        assert scope in scheme["description"]
