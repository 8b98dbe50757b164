"""The API's one contract: each view declares (flask-smorest) the schema it loads and the
one it dumps, and `GET /openapi.json` is built from those declarations (apispec).

What every operation has in common is added here, by `Conventions`: its operationId (the
Flask endpoint), the bearer scope its view checks (read from `require`), the X-Request-ID
header, and the problem+json answers (401/403/429 for a guarded view, 404 for an id in
the path, 422 and gunicorn's 414 for a query, 500 always). tests/e2e/test_openapi.py has
schemathesis check the live server against the document.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import flask_smorest
from apispec import BasePlugin
from flask import Flask, Response, jsonify
from marshmallow import ValidationError
from webargs import missing
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from service.api import openapi_fields
from service.api.openapi_fields import ref
from service.api.paths import (
    ID_SCHEMA,
    ROW_ID_SCHEMA,
    IdConverter,
    NamedIdRule,
    RowIdConverter,
)
from service.api.problems import http_problem
from service.api.request_body import json_body
from service.api.schemas import ProblemSchema

PROBLEM_JSON = "application/problem+json"
PROBLEM = "problem"  # in a view's declared responses: answered as problem+json
PROBLEM_TITLES = {
    400: "the body is not valid JSON or UTF-8, nests over 64 levels or repeats a key",
    401: "no key, or an unknown one (`WWW-Authenticate: Bearer`)",
    403: "the key lacks the scope this operation needs",
    404: "no such member, reward, redemption or offer",
    409: "a conflict: the same id with another body, too few points, an offer already used",
    413: "the body is larger than LOYALTY_MAX_BODY_BYTES",
    415: "the body is not sent as application/json in UTF-8 (no byte-order mark)",
    422: "the request is well-formed JSON but invalid; `errors` names each field",
    429: "too many requests for this key, or without a valid key from this address; "
    "`Retry-After` says when to retry",
    500: "the service failed; the failure is logged with the request id",
    503: "the database could not be reached (for an event: nothing was applied, send the "
    "same request again after `Retry-After`), or not ready: no rules are loaded",
}
BODY_PROBLEMS = (400, 413, 415, 422)
REQUEST_ID = {"$ref": "#/components/headers/X-Request-ID"}
URI_TOO_LONG = {
    "description": "the request line is longer than gunicorn takes (limit_request_line); "
    "answered by gunicorn, before the app",
    "content": {"text/html": {"schema": {"type": "string"}}},
}


def problems(*statuses: int) -> dict[int, str]:
    """A view's own problem answers, for `Blueprint.doc(responses=...)`."""
    return dict.fromkeys(statuses, PROBLEM)


def json_body_of(schema: dict[str, Any]) -> dict[str, Any]:
    """A request body read by the view itself (an event: its type picks the schema)."""
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def dumped(schema: Any, record: Any, status: int = 200) -> Response:
    """For a view whose answer is one of several schemas: dumped with the one it is."""
    response = jsonify(schema.dump(record))
    response.status_code = status
    return response


class StrictBodyParser(FlaskParser):
    """webargs, reading bodies as service.api.request_body does (media type, UTF-8,
    duplicate keys, nesting, NUL) and leaving `unknown` to each schema: RAISE, so an
    unknown field or query parameter is refused, not dropped."""

    def load_json(self, req: Any, schema: Any) -> Any:
        return json_body()

    def load_querystring(self, req: Any, schema: Any) -> Any:
        # Most requests have no query (POST /v1/events): nothing to read.
        return super().load_querystring(req, schema) if req.args else missing

    def handle_error(self, error: ValidationError, *args: Any, **kwargs: Any) -> Any:
        # webargs files the messages under the location ({"json": {...}}); the problem
        # names the fields as the caller sent them.
        (messages,) = error.messages.values()  # type: ignore[union-attr]
        raise ValidationError(messages)


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = StrictBodyParser(unknown=None)


class Api(flask_smorest.Api):  # type: ignore[misc]
    """flask-smorest's Api, answering with our problems: its error schema is ours (the
    `Problem` component), no default error answer in the document, and HTTP errors as
    problem+json."""

    DEFAULT_ERROR_RESPONSE_NAME = None
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        return http_problem(error)


class Conventions(BasePlugin):
    """What every operation of this API has, added to what its view declares."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.app = app

    def path_helper(
        self,
        path: str | None = None,
        operations: dict[str, Any] | None = None,
        parameters: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # apispec's Flask plugin puts path parameters on the path; the document has always
        # listed them first in each operation.
        in_path = [p for p in parameters or () if isinstance(p, dict) and p["in"] == "path"]
        for parameter in in_path:
            parameters.remove(parameter)  # type: ignore[union-attr]
        for operation in (operations or {}).values():
            operation["parameters"] = copy.deepcopy(in_path) + operation.get("parameters", [])

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        endpoint = kwargs["rule"].endpoint
        scope = getattr(self.app.view_functions[endpoint], "required_scope", None)
        for operation in (operations or {}).values():
            _complete(operation, endpoint, scope)


def _complete(operation: dict[str, Any], endpoint: str, scope: str | None) -> None:
    parameters = operation.setdefault("parameters", [])
    places = {p["in"] for p in parameters if isinstance(p, dict)}
    parameters.append("X-Request-ID")  # a component, by name
    answers = {int(status): answer for status, answer in operation["responses"].items()}
    expected = {500} | ({401, 403, 429} if scope else set())
    expected |= ({422} if "query" in places else set()) | ({404} if "path" in places else set())
    for status in expected - set(answers):
        answers[status] = PROBLEM
    for status, answer in answers.items():
        if isinstance(answer, dict):
            answer["headers"] = {"X-Request-ID": REQUEST_ID}
        else:  # ours, or flask-smorest's name of its own error answer
            answers[status] = _problem(status)
    if "query" in places:
        answers[414] = URI_TOO_LONG
    operation["responses"] = answers
    operation["operationId"] = endpoint
    operation["security"] = [{"bearerAuth": [scope]}] if scope else []
    if scope:
        operation["x-required-scope"] = scope
    for key in ("summary", "description"):  # docstrings: one paragraph each, on one line
        if key in operation:
            operation[key] = " ".join(operation[key].split())


def _problem(status: int) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-ID": REQUEST_ID}
    if status in (429, 503):
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    if status == 401:
        headers["WWW-Authenticate"] = {"$ref": "#/components/headers/WWW-Authenticate"}
    return {
        "description": PROBLEM_TITLES[status],
        "headers": headers,
        "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
    }


def install_paths(app: Flask) -> None:
    """The id converters of the routes (service.api.paths); before any blueprint."""
    app.url_rule_class = NamedIdRule
    app.url_map.converters.update(id=IdConverter, row_id=RowIdConverter)


def init_api(app: Flask) -> Api:
    """The Api, before any blueprint: converters, field documentation and components."""
    install_paths(app)
    app.config.update(
        API_TITLE="Loyalty rule engine",
        API_VERSION="1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX=None,  # served by service.api.document, built once, as it was
    )
    api = Api(
        app,
        spec_kwargs={
            "extra_plugins": [Conventions(app)],
            "info": {
                "description": "Events in; points, tiers and offers out. Errors are "
                "application/problem+json (RFC 9457). Every answer carries X-Request-ID."
            },
        },
    )
    api.register_converter(IdConverter, lambda _: dict(ID_SCHEMA))
    api.register_converter(RowIdConverter, lambda _: dict(ROW_ID_SCHEMA))
    openapi_fields.declare(api.ma_plugin, api.spec)
    return api


def document_route(app: Flask, api: Api, endpoint: str, operation: dict[str, Any]) -> None:
    """A route of another package's plain Flask blueprint (/metrics), in the document."""
    rule = next(app.url_map.iter_rules(endpoint))
    methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    api.spec.path(rule=rule, operations={method.lower(): operation for method in methods})


def published(api: Api) -> dict[str, Any]:
    """The document as served: bounds as JSON numbers; left out, what flask-smorest
    declares of its own for features this API does not use (its tag per blueprint: each
    operation names its tags; the schema of its pagination header)."""
    document = api.spec.to_dict()
    document.pop("tags", None)
    document["components"]["schemas"].pop("PaginationMetadata", None)
    openapi_fields.pin_event_types(document)
    return _plain_numbers(document)  # type: ignore[no-any-return]


def _plain_numbers(value: Any) -> Any:
    """Bounds and defaults come as Decimal from the schemas; JSON Schema wants numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain_numbers(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(inner) for inner in value]
    return value
