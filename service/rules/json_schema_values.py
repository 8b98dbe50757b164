"""The types of the values in rule files, for the JSON Schema (service.rules.json_schema).

The one hand-written part of the schema: which keys each section has comes from the
parsers (service.rules.json_schema_keys); what each key holds is said here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.core.events import EVENT_TYPES
from service.core.facts import FIELD_TYPES, NUMBER
from service.core.programme import ROUNDING
from service.rules.effect_parser import CHANNELS, RECIPIENTS
from service.rules.programme_parser import TIER_METRICS

TEXT: dict[str, Any] = {"type": "string", "minLength": 1}
FLAG: dict[str, Any] = {"type": "boolean"}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
POSITIVE_COUNT: dict[str, Any] = {"type": "integer", "minimum": 1}
DECIMAL_TEXT = r"^-?[0-9]+(\.[0-9]+)?$"
NUMBER_VALUE: dict[str, Any] = {
    "anyOf": [{"type": "number"}, {"type": "string", "pattern": DECIMAL_TEXT}]
}
DURATION: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[0-9]+[smhdw]$",
    "description": "a whole number and a unit: s, m, h, d or w (30d, 12h, 2w)",
}
CLOCK: dict[str, Any] = {"type": "string", "pattern": r"^[0-2][0-9]:[0-5][0-9](:[0-5][0-9])?$"}
MOMENT: dict[str, Any] = {
    "type": "string",
    "description": "a date (whole days in the programme's time zone) or a time with offset",
    "anyOf": [{"format": "date"}, {"format": "date-time"}],
}
CUTS: dict[str, Any] = {"type": "array", "items": NUMBER_VALUE, "minItems": 4, "maxItems": 4}
SCORE: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 5}


def json_list(items: dict[str, Any], minimum: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "array", "items": items}
    if minimum:
        body["minItems"] = minimum
    return body


VALUES: Mapping[str, Mapping[str, dict[str, Any]]] = {
    "programme": {
        "programme": TEXT,
        "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
        "timezone": {**TEXT, "description": "an IANA time zone such as Asia/Shanghai"},
    },
    "points": {
        "value": {**NUMBER_VALUE, "description": "what one point is worth in the currency"},
        "expected_breakage": {**NUMBER_VALUE, "description": "a share from 0 to 1: 0.15"},
    },
    "points.expiry": {
        "after": DURATION,
        "warn_before": json_list(DURATION),
        "fixed": {
            "type": "string",
            "pattern": "^[01][0-9]-[0-3][0-9]$",
            "description": "the yearly day points expire at the end of, e.g. 12-31",
        },
    },
    "points.pending": {"for": json_list({"enum": list(EVENT_TYPES)}), "days": COUNT},
    "tiers": {"metric": {"enum": list(TIER_METRICS)}, "window": DURATION},
    "tiers.review": {"every": DURATION, "grace": DURATION},
    "tier level": {"name": TEXT, "min": NUMBER_VALUE, "multiplier": NUMBER_VALUE},
    "messaging cap": {
        "category": TEXT,
        "channel": {"enum": list(CHANNELS)},
        "max": POSITIVE_COUNT,
        "per": DURATION,
        "calendar": FLAG,
    },
    "quiet_hours": {"from": CLOCK, "to": CLOCK},
    "offer": {
        "id": TEXT,
        "title": TEXT,
        "discount_percent": NUMBER_VALUE,
        "valid_for": DURATION,
        "description": {"type": "string"},
    },
    "reward": {
        "id": TEXT,
        "title": TEXT,
        "cost": POSITIVE_COUNT,
        "description": {"type": "string"},
    },
    "referrals": {"max_per_referrer": POSITIVE_COUNT, "per": DURATION, "require_new_referee": FLAG},
    "segments.rfm": {
        "recency_days": CUTS,
        "frequency": CUTS,
        "monetary": CUTS,
        "window": DURATION,
    },
    "named segment": {"name": TEXT, "recency": SCORE, "frequency": SCORE, "monetary": SCORE},
    "schedule": {"every": DURATION, "cron": {"type": "string"}, "enabled": FLAG},
    "campaign": {
        "campaign": {**TEXT, "pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "description": {"type": "string"},
        "priority": {"type": "integer"},
    },
    "active": {"from": MOMENT, "until": MOMENT},
    "budget": {
        "points": POSITIVE_COUNT,
        "offers": POSITIVE_COUNT,
        "share_of_revenue": {**NUMBER_VALUE, "description": "a fraction: 0.02 for 2%"},
    },
    "rule": {"name": TEXT},
    "limit": {
        "per_customer": POSITIVE_COUNT,
        "per": {"anyOf": [DURATION, {"const": "lifetime"}]},
    },
    "case": {"name": TEXT},
    "expect": {
        "points": {"type": "integer"},
        "referrer_points": {"type": "integer"},
        "rules": json_list(TEXT),
        "tags": json_list(TEXT),
        "offers": json_list(TEXT),
        "messages": json_list(TEXT),
        "tier": {"type": ["string", "null"]},
    },
    "award_points": {
        "points": NUMBER_VALUE,
        "per": NUMBER_VALUE,
        "of": {"enum": ["items", *(p for p, t in FIELD_TYPES.items() if t == NUMBER)]},
        "multiplier": NUMBER_VALUE,
        "round": {"enum": list(ROUNDING)},
        "max": POSITIVE_COUNT,
        "tier_multiplier": FLAG,
        "rates": {
            "type": "object",
            "additionalProperties": NUMBER_VALUE,
            "description": "points per whole unit, by item category; * for the rest",
        },
        "exclude": {"$ref": "#/$defs/item_condition"},
        "to": {"enum": list(RECIPIENTS)},
    },
    "tag": {"add": json_list(TEXT), "remove": json_list(TEXT)},
    "issue_offer": {"offer": TEXT},
    "send_message": {
        "template": TEXT,
        "channel": {"enum": list(CHANNELS)},
        "category": TEXT,
        "urgent": FLAG,
        "dedupe": {"type": "string"},
        "stale_after": DURATION,
    },
    "upgrade_tier": {"to": TEXT, "for": DURATION},
}
