"""How this API's own fields and shared components read in the OpenAPI document.

apispec documents marshmallow's fields by itself; these functions add what it cannot see:
validators inside `validate.And`, decimals sent as number or text, attribute values, and
answers that are one of several schemas. The components are what operations refer to by
name: the bearer scheme, the headers, the problem, and the events by type.
"""

from __future__ import annotations

import copy
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields, validate

from service.api import schemas as api
from service.event_schema import SCHEMAS, AttributeValue, HypotheticalCustomerSchema
from service.settings import SCOPES

DECIMAL_TEXT = "^-?[0-9]+(\\.[0-9]{1,4})?$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def declare(plugin: MarshmallowPlugin, spec: APISpec) -> None:
    converter = plugin.converter
    assert converter is not None
    for function in (_unwrap_and, _decimal, _attribute_value, _one_of_schemas):
        converter.add_attribute_function(function)  # type: ignore[no-untyped-call]
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
    spec.components.parameter(
        "X-Request-ID",
        "header",
        {"description": "an id of the caller's for this request", "schema": {"type": "string"}},
    )
    _events(spec)


def _events(spec: APISpec) -> None:
    names = {}
    for kind, schema in SCHEMAS.items():
        names[kind] = event_schema_name(schema)
        spec.components.schema(names[kind], schema=type(schema))
    spec.components.schema(
        "Event",
        {
            "description": "One event; `type` says which fields it has.",
            "oneOf": [ref(name) for name in names.values()],
            "discriminator": {
                "propertyName": "type",
                "mapping": {kind: ref(name)["$ref"] for kind, name in names.items()},
            },
        },
    )
    spec.components.schema("HypotheticalCustomer", schema=HypotheticalCustomerSchema)
    spec.components.schema("EventResult", schema=api.EventResultSchema)
    spec.components.schema("DryRunResult", schema=api.DryRunResultSchema)
    spec.components.schema("ReplayResult", schema=api.ReplayResultSchema)
    # Requests that carry events: read by the event contract, documented as its union.
    request_fields: dict[tuple[str, str], dict[str, Any]] = {
        ("BatchRequest", "events"): {"items": ref("Event")},
        ("DryRunRequest", "event"): ref("Event"),
        ("DryRunRequest", "customer"): ref("HypotheticalCustomer"),
        ("StoredDryRunRequest", "event"): ref("Event"),
        ("StoredDryRunRequest", "customer"): ref("HypotheticalCustomer"),
    }
    for request_schema in (api.BatchRequest, api.DryRunRequest, api.StoredDryRunRequest):
        spec.components.schema(request_schema.__name__, schema=request_schema)
    for (name, prop), replacement in request_fields.items():
        target = spec.components.schemas[name]["properties"][prop]
        description = target.get("description")
        if "$ref" in replacement:
            target.clear()
        target.update(copy.deepcopy(replacement))
        if description:
            target["description"] = description


def event_schema_name(schema: Any) -> str:
    return type(schema).__name__.removesuffix("Schema")


def pin_event_types(document: dict[str, Any]) -> None:
    """Every event schema shares EventSchema's `type` (any type); in the document each
    one names its own, so exactly one branch of `Event` fits a given event."""
    schemas = document["components"]["schemas"]
    for kind, schema in SCHEMAS.items():
        schemas[event_schema_name(schema)]["properties"]["type"] = {
            "type": "string",
            "enum": [kind],
        }


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
        for schema, ref_ in zip(field.schemas, refs, strict=True):
            tag = schema().fields[field.discriminator]
            (equal,) = (v for v in tag.validators if isinstance(v, validate.Equal))
            mapping[equal.comparable] = ref_["$ref"]
        found["discriminator"] = {"propertyName": field.discriminator, "mapping": mapping}
    return found
