"""JSON Schema (draft 2020-12) for program.yaml and campaign files, for editors.

Generated from the declaration `loyalty rules check` loads the files with: every Section
of service.rules.programme_parser and service.rules.campaign_parser becomes an object
whose properties are its fields' JSON (service.rules.file_fields), so the schema cannot
drift from the check. The condition grammar, written by hand in
service.rules.condition_parser, is described here from its own tables; the fields of an
event and of a described member come from the event contract (service.event_schema).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from marshmallow import fields as mm

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
from service.rules.campaign_parser import CampaignFile, Contract
from service.rules.condition_parser import (
    COMBINATORS,
    ENUMERATIONS,
    MAX_IN_VALUES,
    OPERATORS,
    ORDERED_TYPES,
    SCHEDULE_KINDS,
    SCHEDULES,
)
from service.rules.effect_parser import EFFECT_KINDS, Effect
from service.rules.file_fields import (
    DURATION,
    FLAG,
    NUMBER_VALUE,
    Entries,
    Json,
    Nested,
    Section,
    Value,
)
from service.rules.programme_parser import ProgrammeFile

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://loyalty.example/schemas/"
PROGRAM_SCHEMA = "program.schema.json"
CAMPAIGN_SCHEMA = "campaign.schema.json"


def _json(field: mm.Field, defs: dict[str, Json]) -> Json:  # type: ignore[type-arg]
    if isinstance(field, Nested):
        mapping = _object(field.section, defs)
        if field.word is None:
            return mapping
        # if/then/else, not oneOf: an editor then underlines the wrong key inside the
        # mapping itself, not the whole section.
        return {"if": {"type": "string"}, "then": {"const": field.word}, "else": mapping}
    if isinstance(field, Entries):
        return _list(_json(field.item, defs), field.minimum)
    if isinstance(field, Effect):
        return {"oneOf": [_effect(kind, defs) for kind in EFFECT_KINDS]}
    if isinstance(field, Contract):
        return _contract(field)
    return dict(field.json) if isinstance(field, Value) else {}


def _object(section: Section, defs: dict[str, Json]) -> Json:
    """A Section as an object of its declared keys; under $defs when it has a name there."""
    body: Json = {
        "type": "object",
        "properties": {key: _json(field, defs) for key, field in _keyed(section)},
        "additionalProperties": False,
    }
    required = [key for key, field in _keyed(section) if field.required]
    if required:
        body["required"] = required
    if section.needs_one:
        body["minProperties"] = 1
    if not section.json_name:
        return body
    defs[section.json_name] = body
    return {"$ref": f"#/$defs/{section.json_name}"}


def _keyed(section: Section) -> Iterator[tuple[str, mm.Field]]:  # type: ignore[type-arg]
    for name, field in section.fields.items():
        yield field.data_key or name, field


def _list(items: Json, minimum: int = 0) -> Json:
    return {"type": "array", "items": items, **({"minItems": minimum} if minimum else {})}


def _effect(kind: str, defs: dict[str, Json]) -> Json:
    effect = EFFECT_KINDS[kind]
    return {
        "type": "object",
        "properties": {kind: {"anyOf": [effect.shorthand, _json(effect.body, defs)]}},
        "required": [kind],
        "additionalProperties": False,
    }


def _contract(field: Contract) -> Json:
    properties: Json = {}
    for schema in field.contract.values():
        for name, value in schema.fields.items():
            properties.setdefault(name, _marshmallow_type(value))
    if "type" in properties:  # an event's: its type names the schema that checks it
        properties["type"] = {"enum": list(field.contract)}
    body: Json = {"type": "object", "properties": properties}
    if field.needs:
        body["required"] = list(field.needs)
    return {**body, "additionalProperties": False}


def _marshmallow_type(field: mm.Field) -> Json:  # type: ignore[type-arg]
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


# -- the condition grammar


def _literal(kind: str, path: str = "") -> Json:
    if kind == BOOLEAN:
        return {"type": "boolean"}
    if kind == NUMBER:
        return NUMBER_VALUE
    if path in ENUMERATIONS:
        return {"enum": list(ENUMERATIONS[path])}
    return {"type": ["string", "integer"]}


def _operators(kind: str, literal: Json) -> Json:
    properties: Json = {}
    for op in OPERATORS:
        if op in ("any", "all") or (op == "matches" and kind != STRING):
            continue
        if op in ("gt", "gte", "lt", "lte") and kind not in ORDERED_TYPES:
            continue
        if op in ("in", "not_in"):
            properties[op] = {**_list(literal, 1), "maxItems": MAX_IN_VALUES}
        elif op == "exists":
            properties[op] = FLAG
        elif op == "matches":
            properties[op] = {"type": "string", "description": "a full-match pattern"}
        else:
            properties[op] = literal
    return _mapping(properties)


def _mapping(properties: Json) -> Json:
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "minProperties": 1,
    }


def _field(kind: str, path: str) -> Json:
    if kind in (ITEMS, STRINGS):
        element = "#/$defs/item_condition" if kind == ITEMS else f"#/$defs/{STRING}_field"
        return _mapping({"any": {"$ref": element}, "all": {"$ref": element}})
    if path in ENUMERATIONS:
        literal = _literal(kind, path)
        return {"anyOf": [literal, _operators(kind, literal)]}
    return {"$ref": f"#/$defs/{kind}_field"}


def _condition(fields: Mapping[str, str], self_ref: str, top: bool) -> Json:
    properties: Json = {path: _field(kind, path) for path, kind in fields.items()}
    for combinator in COMBINATORS:
        many = {"type": "array", "items": {"$ref": self_ref}, "minItems": 1}
        properties[combinator] = {"$ref": self_ref} if combinator == "not" else many
    if top:
        schedule, inactive = SCHEDULES
        properties[schedule] = {"enum": list(SCHEDULE_KINDS[:2])}
        properties[inactive] = DURATION
    body = _mapping(properties)
    if top:
        pattern = "^(" + "|".join(re.escape(p) for p in DYNAMIC_PREFIXES) + ").+$"
        body["patternProperties"] = {pattern: {"$ref": "#/$defs/free_field"}}
    return body


def _condition_defs() -> Json:
    defs = {
        "condition": _condition(FIELD_TYPES, "#/$defs/condition", True),
        "item_condition": _condition(ITEM_FIELDS, "#/$defs/item_condition", False),
    }
    for kind in (STRING, NUMBER, BOOLEAN):
        defs[f"{kind}_field"] = {"anyOf": [_literal(kind), _operators(kind, _literal(kind))]}
    free = {"type": ["string", "number", "boolean"]}
    return {**defs, "free_field": {"anyOf": [free, _operators(STRING, free)]}}


# -- the two schemas


def _document(section: Section, name: str, title: str) -> Json:
    defs: dict[str, Json] = {}
    root = _object(section, defs)
    document = {"$schema": DRAFT, "$id": BASE_ID + name, "title": title, **root}
    return {**document, "$defs": {**defs, **_condition_defs()}} if defs else document


def program_schema() -> Json:
    return _document(ProgrammeFile(), PROGRAM_SCHEMA, "Loyalty programme: rules/program.yaml")


def campaign_schema() -> Json:
    title = "Loyalty campaign: rules/campaigns/<id>.yaml"
    return _document(CampaignFile(), CAMPAIGN_SCHEMA, title)


def _sections(section: Section) -> Iterator[Section]:
    yield section
    for _, field in _keyed(section):
        while isinstance(field, Entries):
            field = field.item
        if isinstance(field, Nested):
            yield from _sections(field.section)
        elif isinstance(field, Effect):
            for effect in EFFECT_KINDS.values():
                yield from _sections(effect.body.section)


def accepted_keys() -> dict[str, tuple[str, ...]]:
    """Section -> the keys it accepts, as `loyalty rules check` names the section."""
    roots = (ProgrammeFile(), CampaignFile())
    return {s.what: tuple(key for key, _ in _keyed(s)) for root in roots for s in _sections(root)}


# Section -> key -> the JSON Schema of its value.
VALUES: Mapping[str, Mapping[str, Json]] = {
    s.what: {key: _json(field, {}) for key, field in _keyed(s)}
    for root in (ProgrammeFile(), CampaignFile())
    for s in _sections(root)
}


def schema_files() -> dict[str, str]:
    """File name -> text, as `loyalty rules schema` writes them."""
    return {
        PROGRAM_SCHEMA: json.dumps(program_schema(), indent=2) + "\n",
        CAMPAIGN_SCHEMA: json.dumps(campaign_schema(), indent=2) + "\n",
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
