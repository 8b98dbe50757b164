"""`GET /openapi.json`: the OpenAPI 3.1 document of the API, built from the marshmallow
schemas (apispec) and the table of operations below.

The table names each operation's Flask endpoint; the scope an operation needs is read from
the view itself (what `require(scope)` guards it with), so the document cannot claim a
scope the code does not check. tests/unit/test_openapi_document.py holds the table and
the app's url_map equal, and tests/e2e/test_openapi.py has schemathesis check the live
server against the document.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify
from marshmallow import Schema, fields, validate

from service.api import messages as member_messages
from service.api import rules_admin
from service.api import schemas as api
from service.event_schema import SCHEMAS, AttributeValue, HypotheticalCustomerSchema
from service.settings import SCOPES

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
PROBLEM_JSON = "application/problem+json"
# Path ids: what an id may hold (service.event_schema.ID), less "/", which no path
# segment can carry.
PATH_ID = {"type": "string", "pattern": "^[\\x21-\\x2e\\x30-\\x7e]{1,128}$"}
DECIMAL_TEXT = "^-?[0-9]+(\\.[0-9]{1,4})?$"
PATH_PARAMETER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
PATH_CONVERTERS = {"int": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}}
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


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # Flask's rule: /v1/customers/<customer_id>
    endpoint: str
    summary: str
    answers: dict[int, Any]  # status -> schema class, or a ready schema dict
    body: type[Schema] | dict[str, Any] | None = None
    query: type[Schema] | None = None
    problems: tuple[int, ...] = ()
    description: str = ""
    media_type: str = "application/json"
    tags: tuple[str, ...] = field(default=())


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


OPERATIONS = (
    Operation(
        "post",
        "/v1/events",
        "events.post_event",
        "Apply one event (or evaluate it only, with ?dry_run=true)",
        {201: api.EventResultSchema, 200: {"oneOf": [_ref("EventResult"), _ref("DryRunResult")]}},
        body=_ref("Event"),
        query=api.DryRunFlag,
        problems=(*BODY_PROBLEMS, 409, 503),
        description="201 when applied; 200 with `status: duplicate` for an event_id seen "
        "before with the same body (nothing changes), or the dry-run answer with "
        "`?dry_run=true`; 409 for a seen event_id with another body; 503 with "
        "`Retry-After` when the database cannot be reached even on a fresh connection.",
        tags=("events",),
    ),
    Operation(
        "post",
        "/v1/events/batch",
        "events.post_batch",
        "Apply up to 1,000 events, each on its own",
        {200: api.BatchResultSchema},
        body=api.BatchRequest,
        problems=(*BODY_PROBLEMS, 503),
        description="Each event is validated and applied or rejected on its own; the "
        "answer holds one result per event, in order.",
        tags=("events",),
    ),
    Operation(
        "post",
        "/v1/dry-run",
        "events.post_dry_run",
        "Evaluate an event against the live rules, rule files sent along, or a stored "
        "version; or replay a stored event",
        {200: {"oneOf": [_ref("DryRunResult"), _ref("ReplayResult")]}},
        body={"anyOf": [_ref("DryRunRequest"), _ref("StoredDryRunRequest")]},
        problems=(*BODY_PROBLEMS, 404),
        description="`{event, customer?, rules?}` evaluates an event (against the files "
        "in `rules` if sent: that needs the `admin` scope too, and the files are checked in "
        "a child process under LOYALTY_RULES_COMPILE_TIMEOUT and LOYALTY_RULES_COMPILE_MEMORY, "
        "422 when over); `{event, version, customer?}` against a stored rules version; "
        "`{event_id, version?, customer?}` replays a stored event. Nothing is written.",
        tags=("events",),
    ),
    Operation(
        "get",
        "/v1/customers/<customer_id>",
        "customers.get_customer",
        "A member's tier, progress, points and active offers",
        {200: api.CustomerViewSchema},
        problems=(404,),
        tags=("customers",),
    ),
    Operation(
        "get",
        "/v1/customers/<customer_id>/ledger",
        "customers.get_ledger",
        "A member's ledger, newest first, a page at a time",
        {200: api.LedgerPageSchema},
        query=api.LedgerQuery,
        problems=(404, 422),
        tags=("customers",),
    ),
    Operation(
        "get",
        "/v1/customers/<customer_id>/messages",
        "messages.get_messages",
        "A member's messages, newest first: queued, deferred, sent, suppressed or dead, and why",
        {200: member_messages.MessagePageSchema},
        query=member_messages.MessagesQuery,
        problems=(404, 422),
        tags=("customers",),
    ),
    Operation(
        "post",
        "/v1/customers/<customer_id>/redemptions",
        "customers.post_redemption",
        "Spend points on a catalogue reward (idempotent on redemption_id)",
        {201: api.RedemptionSchema, 200: api.RedemptionSchema},
        body=api.RedemptionRequest,
        problems=(*BODY_PROBLEMS, 404, 409),
        description="201 when spent; 200 for a redemption_id seen before; 409 when the "
        "balance is short.",
        tags=("customers",),
    ),
    Operation(
        "delete",
        "/v1/customers/<customer_id>/redemptions/<redemption_id>",
        "customers.delete_redemption",
        "Reverse a redemption: its points go back to the lots they came from",
        {200: api.RedemptionSchema},
        problems=(404,),
        tags=("customers",),
    ),
    Operation(
        "post",
        "/v1/offers/<code>/redeem",
        "offers.post_offer_redemption",
        "Use an issued offer, once",
        {200: api.OfferRedemptionSchema},
        body=api.OfferRedemptionRequest,
        problems=(*BODY_PROBLEMS, 404, 409),
        tags=("offers",),
    ),
    Operation(
        "get",
        "/v1/rules",
        "operations.get_rules",
        "The active rules version, its files and campaigns",
        {200: api.RulesViewSchema},
        description="Each campaign's `budget` has one entry per kind its file declares "
        "(`points`, `offers`, `share_of_revenue`) with its limit, what is used (0 for a "
        "budget never spent) and what is left.",
        tags=("operations",),
    ),
    Operation(
        "post",
        "/v1/rules/reload",
        "rules_admin.post_reload",
        "Load LOYALTY_RULES_DIR and make it the active version for every worker",
        {200: rules_admin.ReloadAnswer},
        problems=(422,),
        description="A version that fails to load answers 422 with each problem's file and "
        "line, and the active version stays.",
        tags=("rules",),
    ),
    Operation(
        "get",
        "/v1/rules/versions",
        "rules_admin.get_versions",
        "The active version and the history of activations",
        {200: rules_admin.VersionsAnswer},
        tags=("rules",),
    ),
    Operation(
        "get",
        "/v1/rules/versions/<version>",
        "rules_admin.get_version",
        "A stored rules version: its files and campaigns",
        {200: rules_admin.VersionAnswer},
        tags=("rules",),
    ),
    Operation(
        "get",
        "/v1/customers/<customer_id>/ledger/<int:entry_id>",
        "rules_admin.get_ledger_entry",
        "Why a ledger entry exists: its event, the rule's text and the evaluation's trace",
        {200: rules_admin.LedgerEntryExplanation},
        tags=("customers",),
    ),
    Operation(
        "get",
        "/healthz",
        "operations.healthz",
        "Alive",
        {200: api.HealthSchema},
        tags=("operations",),
    ),
    Operation(
        "get",
        "/readyz",
        "operations.readyz",
        "Ready: the database answers and rules are loaded",
        {200: api.ReadinessSchema, 503: api.ReadinessSchema},
        tags=("operations",),
    ),
    Operation(
        "get",
        "/metrics",
        "observability.get_metrics",
        "Prometheus metrics of every worker",
        {200: {"type": "string"}},
        media_type="text/plain",
        tags=("operations",),
    ),
    Operation(
        "get",
        "/openapi.json",
        "openapi.get_document",
        "This document",
        {200: {"type": "object"}},
        tags=("operations",),
    ),
)

blueprint = Blueprint("openapi", __name__)


@blueprint.get("/openapi.json")
def get_document() -> Response:
    document = current_app.extensions.get("loyalty_openapi")
    if document is None:
        document = current_app.extensions["loyalty_openapi"] = build_document(current_app)
    return jsonify(document)


def openapi_path(rule: str) -> str:
    """Flask's /v1/customers/<customer_id> -> OpenAPI's /v1/customers/{customer_id}."""
    return PATH_PARAMETER.sub(lambda found: "{" + found["name"] + "}", rule)


def path_parameters(rule: str) -> list[dict[str, Any]]:
    """One OpenAPI parameter per <converter:name> in a Flask rule."""
    return [
        {
            "in": "path",
            "name": found["name"],
            "required": True,
            "schema": dict(PATH_CONVERTERS.get(found["converter"] or "default", PATH_ID)),
        }
        for found in PATH_PARAMETER.finditer(rule)
    ]


def build_document(app: Flask) -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Loyalty rule engine",
        version=API_VERSION,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={
            "description": "Events in; points, tiers and offers out. Errors are "
            "application/problem+json (RFC 9457). Every answer carries X-Request-ID."
        },
    )
    converter = plugin.converter
    assert converter is not None
    for function in (_unwrap_and, _decimal, _attribute_value, _one_of_schemas):
        converter.add_attribute_function(function)  # type: ignore[no-untyped-call]
    _components(spec)
    for operation in OPERATIONS:
        view = app.view_functions.get(operation.endpoint)
        if view is None:
            raise LookupError(f"no view {operation.endpoint!r} for {operation.path}")
        scope = getattr(view, "required_scope", None)
        spec.path(
            path=openapi_path(operation.path),
            operations={operation.method: _operation(operation, scope)},
        )
    document: dict[str, Any] = _plain_numbers(spec.to_dict())
    _pin_event_types(document)
    return document


def _plain_numbers(value: Any) -> Any:
    """Bounds and defaults come as Decimal from the schemas; JSON Schema wants numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain_numbers(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(inner) for inner in value]
    return value


def _components(spec: APISpec) -> None:
    spec.components.security_scheme(
        "bearerAuth",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer <key>`. Keys carry scopes ("
            + ", ".join(f"`{s}`" for s in SCOPES)
            + ", or `*` for all); each operation lists the scope it needs.",
        },
    )
    spec.components.header(
        "X-Request-ID",
        {
            "description": "The caller's X-Request-ID if it is 1-128 printable ASCII "
            "characters, else one made for this request; it is in every log line.",
            "required": True,
            "schema": {"type": "string"},
        },
    )
    spec.components.header(
        "Retry-After",
        {"description": "seconds", "required": True, "schema": {"type": "integer"}},
    )
    spec.components.header("WWW-Authenticate", {"required": True, "schema": {"type": "string"}})
    spec.components.schema("Problem", schema=api.ProblemSchema)
    spec.components.parameter(
        "X-Request-ID",
        "header",
        {"description": "an id of the caller's for this request", "schema": {"type": "string"}},
    )
    names = {}
    for kind, schema in SCHEMAS.items():
        name = type(schema).__name__.removesuffix("Schema")
        names[kind] = name
        spec.components.schema(name, schema=type(schema))
    spec.components.schema(
        "Event",
        {
            "description": "One event; `type` says which fields it has.",
            "oneOf": [_ref(name) for name in names.values()],
            "discriminator": {
                "propertyName": "type",
                "mapping": {kind: _ref(name)["$ref"] for kind, name in names.items()},
            },
        },
    )
    spec.components.schema("HypotheticalCustomer", schema=HypotheticalCustomerSchema)
    spec.components.schema("EventResult", schema=api.EventResultSchema)
    spec.components.schema("DryRunResult", schema=api.DryRunResultSchema)
    spec.components.schema("ReplayResult", schema=api.ReplayResultSchema)
    request_fields: dict[tuple[str, str], dict[str, Any]] = {
        ("BatchRequest", "events"): {"items": _ref("Event")},
        ("DryRunRequest", "event"): _ref("Event"),
        ("DryRunRequest", "customer"): _ref("HypotheticalCustomer"),
        ("StoredDryRunRequest", "event"): _ref("Event"),
        ("StoredDryRunRequest", "customer"): _ref("HypotheticalCustomer"),
    }
    for request_schema in (api.BatchRequest, api.DryRunRequest, rules_admin.StoredDryRunRequest):
        spec.components.schema(request_schema.__name__, schema=request_schema)
    for (name, prop), replacement in request_fields.items():
        target = spec.components.schemas[name]["properties"][prop]
        description = target.get("description")
        if "$ref" in replacement:
            target.clear()
        target.update(copy.deepcopy(replacement))
        if description:
            target["description"] = description


def _operation(operation: Operation, scope: str | None) -> dict[str, Any]:
    in_path = path_parameters(operation.path)
    parameters: list[Any] = list(in_path)
    if operation.query is not None:
        parameters.append({"in": "query", "schema": operation.query})
    parameters.append("X-Request-ID")  # a component, by name
    problems = set(operation.problems) | {500}
    if scope is not None:
        problems |= {401, 403, 429}
    if operation.query is not None:
        problems.add(422)
    if in_path:
        problems.add(404)
    responses: dict[str, Any] = {}
    for status, schema in sorted(operation.answers.items()):
        responses[str(status)] = {
            "description": PROBLEM_TITLES.get(status, "OK" if status == 200 else "Created"),
            "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
            "content": {operation.media_type: {"schema": schema}},
        }
    for status in sorted(problems - set(operation.answers)):
        responses[str(status)] = _problem(status)
    if operation.query is not None:
        responses["414"] = {
            "description": "the request line is longer than gunicorn takes "
            "(limit_request_line); answered by gunicorn, before the app",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    body: dict[str, Any] = {
        "operationId": operation.endpoint,
        "summary": operation.summary,
        "tags": list(operation.tags),
        "parameters": parameters,
        "responses": responses,
        "security": [{"bearerAuth": [scope]}] if scope is not None else [],
    }
    if scope is not None:
        body["x-required-scope"] = scope
    if operation.description:
        body["description"] = operation.description
    if operation.body is not None:
        body["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": operation.body}},
        }
    return body


def _problem(status: int) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}
    if status in (429, 503):
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    if status == 401:
        headers["WWW-Authenticate"] = {"$ref": "#/components/headers/WWW-Authenticate"}
    return {
        "description": PROBLEM_TITLES[status],
        "headers": headers,
        "content": {PROBLEM_JSON: {"schema": _ref("Problem")}},
    }


def _pin_event_types(document: dict[str, Any]) -> None:
    """Every event schema shares EventSchema's `type` (any type); in the document each
    one names its own, so exactly one branch of `Event` fits a given event."""
    schemas = document["components"]["schemas"]
    for kind, schema in SCHEMAS.items():
        name = type(schema).__name__.removesuffix("Schema")
        schemas[name]["properties"]["type"] = {"type": "string", "enum": [kind]}


# -- apispec attribute functions (bound to its field converter)


def _unwrap_and(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:  # type: ignore[type-arg]
    """apispec reads Length, Range and Regexp validators, but not inside validate.And."""
    inner = [
        v
        for validator in field.validators
        if isinstance(validator, validate.And)
        for v in validator.validators
    ]
    if not inner:
        return {}
    shadow = copy.copy(field)
    shadow.validators = inner
    found: dict[str, Any] = {}
    found.update(self.field2length(shadow))
    found.update(self.field2pattern(shadow))
    found.update(self.field2range(shadow, ret=kwargs.get("ret", {})))
    return found


def _decimal(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:  # type: ignore[type-arg]
    """Money and quantities: a JSON number or a decimal string, never a float in storage."""
    if not isinstance(field, fields.Decimal):
        return {}
    return {"type": ["number", "string"], "pattern": DECIMAL_TEXT}


def _attribute_value(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:  # type: ignore[type-arg]
    if not isinstance(field, AttributeValue):
        return {}
    return {
        "oneOf": [
            {"type": "string", "maxLength": 256},
            {"type": "number"},
            {"type": "boolean"},
        ]
    }


def _one_of_schemas(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:  # type: ignore[type-arg]
    if not isinstance(field, api.OneOfSchemas):
        return {}
    refs = [self.resolve_nested_schema(schema) for schema in field.schemas]
    found: dict[str, Any] = {"oneOf": refs}
    if field.discriminator is not None:
        mapping = {}
        for schema, ref in zip(field.schemas, refs, strict=True):
            tag = schema._declared_fields[field.discriminator]
            (equal,) = (v for v in tag.validators if isinstance(v, validate.Equal))
            mapping[equal.comparable] = ref["$ref"]
        found["discriminator"] = {"propertyName": field.discriminator, "mapping": mapping}
    return found
