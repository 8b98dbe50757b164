"""JSON Schema (draft 2020-12) for program.yaml and campaign files, for editors.

Generated from the parsers themselves, so the schema never drifts from what `loyalty rules
check` accepts: the keys of every section are those the parsers accept
(service.rules.json_schema_keys), and field names, operators, effects, enumerations and
event fields come from the modules that define them. Only the *type* of each key's value
is written by hand (service.rules.json_schema_values); a key the parsers accept that has
no type there still appears, untyped, and a test says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from marshmallow import fields as mm

from service.core.events import EVENT_TYPES, INTERNAL_EVENT_TYPES
from service.core.facts import (
    BOOLEAN,
    DYNAMIC_PREFIXES,
    FIELD_TYPES,
    ITEM_FIELDS,
    ITEMS,
    NUMBER,
    STRING,
    STRINGS,
)
from service.core.schedules import JOB_NAMES
from service.event_schema import INTERNAL_SCHEMAS, SCHEMAS, HypotheticalCustomerSchema
from service.rules.condition_parser import (
    COMBINATORS,
    ENUMERATIONS,
    MAX_IN_VALUES,
    OPERATORS,
    ORDERED_TYPES,
    SCHEDULE_KINDS,
    SCHEDULES,
)
from service.rules.effect_parser import EFFECTS
from service.rules.json_schema_keys import accepted_keys
from service.rules.json_schema_values import (
    DURATION,
    FLAG,
    NUMBER_VALUE,
    POSITIVE_COUNT,
    TEXT,
    VALUES,
    json_list,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://loyalty.example/schemas/"
PROGRAM_SCHEMA = "program.schema.json"
CAMPAIGN_SCHEMA = "campaign.schema.json"
__all__ = ["VALUES", "accepted_keys", "campaign_schema", "program_schema", "schema_files"]


def _object(
    section: str, keys: Mapping[str, tuple[str, ...]], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    typed = VALUES.get(section, {})
    properties = {
        key: dict((extra or {}).get(key) or typed.get(key) or {}) for key in keys[section]
    }
    return {"type": "object", "properties": properties, "additionalProperties": False}


# -- conditions


def _literal(kind: str, path: str | None = None) -> dict[str, Any]:
    if kind == BOOLEAN:
        return {"type": "boolean"}
    if kind == NUMBER:
        return NUMBER_VALUE
    enumerated = ENUMERATIONS.get(path or "")
    if enumerated is not None:
        return {"enum": list(enumerated)}
    return {"type": ["string", "integer"]}


def _operators(kind: str, literal: dict[str, Any]) -> dict[str, Any]:
    allowed = {
        op
        for op in OPERATORS
        if op not in ("any", "all")
        and (op not in ("gt", "gte", "lt", "lte") or kind in ORDERED_TYPES)
        and (op != "matches" or kind == STRING)
    }
    properties: dict[str, Any] = {}
    for op in OPERATORS:
        if op not in allowed:
            continue
        if op in ("in", "not_in"):
            properties[op] = {**json_list(literal, 1), "maxItems": MAX_IN_VALUES}
        elif op == "exists":
            properties[op] = FLAG
        elif op == "matches":
            properties[op] = {"type": "string", "description": "a full-match pattern"}
        else:
            properties[op] = literal
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "minProperties": 1,
    }


def _field(kind: str, path: str, element_ref: str) -> dict[str, Any]:
    if kind == ITEMS:
        return _quantifiers(element_ref)
    if kind == STRINGS:
        return _quantifiers(f"#/$defs/{STRING}_field")
    if path in ENUMERATIONS:
        literal = _literal(kind, path)
        return {"anyOf": [literal, _operators(kind, literal)]}
    return {"$ref": f"#/$defs/{kind}_field"}


def _field_defs() -> dict[str, Any]:
    """One definition per field type: a value (equality) or a map of operators."""
    defs = {}
    for kind in (STRING, NUMBER, BOOLEAN):
        literal = _literal(kind)
        defs[f"{kind}_field"] = {"anyOf": [literal, _operators(kind, literal)]}
    return defs


def _quantifiers(element_ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"any": {"$ref": element_ref}, "all": {"$ref": element_ref}},
        "additionalProperties": False,
        "minProperties": 1,
    }


def _condition(
    fields: Mapping[str, str], self_ref: str, schedules: bool, dynamic: bool
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        path: _field(kind, path, "#/$defs/item_condition") for path, kind in fields.items()
    }
    for combinator in COMBINATORS:
        properties[combinator] = (
            {"$ref": self_ref}
            if combinator == "not"
            else {"type": "array", "items": {"$ref": self_ref}, "minItems": 1}
        )
    if schedules:
        schedule, inactive = SCHEDULES
        properties[schedule] = {"enum": list(SCHEDULE_KINDS[:2])}
        properties[inactive] = DURATION
    body: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "minProperties": 1,
    }
    if dynamic:
        pattern = "^(" + "|".join(re.escape(p) for p in DYNAMIC_PREFIXES) + ").+$"
        body["patternProperties"] = {pattern: {"$ref": "#/$defs/free_field"}}
    return body


def _free_field() -> dict[str, Any]:
    literal = {"type": ["string", "number", "boolean"]}
    return {"anyOf": [literal, _operators(STRING, literal)]}


# -- the two schemas


def _marshmallow_type(field: mm.Field) -> dict[str, Any]:  # type: ignore[type-arg]
    if isinstance(field, mm.Boolean):
        return FLAG
    if isinstance(field, mm.Integer):
        return {"type": "integer"}
    if isinstance(field, (mm.Decimal, mm.Float)):
        return NUMBER_VALUE
    if isinstance(field, mm.List):
        return {"type": "array"}
    if isinstance(field, (mm.Nested, mm.Dict)):
        return {"type": "object"}
    return {"type": "string"}


def program_schema(keys: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    keys = keys or accepted_keys()
    sections = {
        "points": _object(
            "points",
            keys,
            {"expiry": _object("points.expiry", keys), "pending": _object("points.pending", keys)},
        ),
        "tiers": _object(
            "tiers",
            keys,
            {
                "review": _object("tiers.review", keys),
                "levels": json_list(_object("tier level", keys), 1),
            },
        ),
        "messaging": _object(
            "messaging",
            keys,
            {
                "caps": json_list(_object("messaging cap", keys)),
                "quiet_hours": _object("quiet_hours", keys),
            },
        ),
        "offers": json_list(_object("offer", keys)),
        "rewards": json_list(_object("reward", keys)),
        "referrals": _object("referrals", keys),
        "segments": _object(
            "segments",
            keys,
            {
                "rfm": _object("segments.rfm", keys),
                "named": json_list(_object("named segment", keys)),
            },
        ),
        "schedules": {
            "type": "object",
            "properties": {job: _object("schedule", keys) for job in JOB_NAMES},
            "additionalProperties": False,
        },
    }
    root = _object("programme", keys, sections)
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + PROGRAM_SCHEMA,
        "title": "Loyalty programme: rules/program.yaml",
        **root,
        "required": ["programme", "currency", "timezone"],
    }


def campaign_schema(keys: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    keys = keys or accepted_keys()
    effects = []
    for effect in EFFECTS:
        shorthand = {
            "award_points": POSITIVE_COUNT,
            "tag": {"anyOf": [TEXT, json_list(TEXT, 1)]},
            "issue_offer": TEXT,
            "send_message": TEXT,
            "upgrade_tier": TEXT,
        }.get(effect)
        body = _object(effect, keys)
        effects.append(
            {
                "type": "object",
                "properties": {effect: {"anyOf": [shorthand, body]} if shorthand else body},
                "required": [effect],
                "additionalProperties": False,
            }
        )
    rule = _object(
        "rule",
        keys,
        {
            "when": {"$ref": "#/$defs/condition"},
            "then": json_list({"oneOf": effects}, 1),
            "limit": {**_object("limit", keys), "required": ["per_customer"]},
        },
    )
    event_fields: dict[str, Any] = {}
    for schema in (*SCHEMAS.values(), *INTERNAL_SCHEMAS.values()):
        for name, field in schema.fields.items():
            event_fields.setdefault(name, _marshmallow_type(field))
    event_fields["type"] = {"enum": [*EVENT_TYPES, *INTERNAL_EVENT_TYPES]}
    customer = {
        name: _marshmallow_type(field)
        for name, field in HypotheticalCustomerSchema().fields.items()
    }
    case = _object(
        "case",
        keys,
        {
            "customer": {"type": "object", "properties": customer, "additionalProperties": False},
            "event": {
                "type": "object",
                "properties": event_fields,
                "required": ["type", "occurred_at"],
                "additionalProperties": False,
            },
            "expect": _object("expect", keys),
        },
    )
    root = _object(
        "campaign",
        keys,
        {
            "active": _object("active", keys),
            "budget": {**_object("budget", keys), "minProperties": 1},
            "rules": json_list({"$ref": "#/$defs/rule"}, 1),
            "tests": json_list({"$ref": "#/$defs/case"}, 1),
        },
    )
    return {
        "$schema": DRAFT,
        "$id": BASE_ID + CAMPAIGN_SCHEMA,
        "title": "Loyalty campaign: rules/campaigns/<id>.yaml",
        **root,
        "required": ["campaign", "rules", "tests"],
        "$defs": {
            "rule": {**rule, "required": ["name", "when", "then"]},
            "case": {**case, "required": ["name", "event", "expect"]},
            "condition": _condition(FIELD_TYPES, "#/$defs/condition", True, True),
            "item_condition": _condition(ITEM_FIELDS, "#/$defs/item_condition", False, False),
            **_field_defs(),
            "free_field": _free_field(),
        },
    }


def schema_files() -> dict[str, str]:
    """File name -> text, as `loyalty rules schema` writes them."""
    keys = accepted_keys()
    return {
        PROGRAM_SCHEMA: json.dumps(program_schema(keys), indent=2) + "\n",
        CAMPAIGN_SCHEMA: json.dumps(campaign_schema(keys), indent=2) + "\n",
    }


def write_schema_files(directory: str | Path) -> list[Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_files().items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written


def check_schema_files(directory: str | Path) -> list[Path]:
    """The files in ``directory`` that are missing or differ from a fresh generation."""
    out = Path(directory)
    return [
        out / name
        for name, text in schema_files().items()
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
    ]
