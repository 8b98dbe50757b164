"""The event contract: JSON (or a rule file's test case) -> a validated core Event.

Shared by the HTTP edge, rule-file tests and replays, so all of them accept and refuse
exactly the same events. Unknown fields are refused, money is Decimal, times carry an
offset; no text holds a NUL or a lone surrogate (PostgreSQL's text and jsonb cannot), no
number is beyond the bounds of service.json_values, and -0 is read as 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates

from service.core.events import EVENT_TYPES, Event, LineItem, Profile
from service.json_values import NUMBER_MESSAGE, content_errors, number_in_bounds

MAX_AMOUNT = Decimal("100000000")  # beyond any single order a shop takes; typos land here
MAX_ITEMS = 500
MAX_ATTRIBUTES = 50


class WholeRegexp(validate.Regexp):
    """A Regexp the whole value must match (with `$` alone, "id\\n" would pass); the
    pattern itself, written for both Python and the OpenAPI document, stays as it is."""

    def __init__(self, pattern: str, *, error: str) -> None:
        super().__init__(pattern, error=error)
        self.whole = re.compile(pattern)

    def __call__(self, value: str) -> str:  # type: ignore[override]
        if self.whole.fullmatch(value) is None:
            raise ValidationError(self.error.format(input=value, regex=self.whole.pattern))
        return value


# Ids that only ever travel in bodies (events, orders, stores): printable ASCII.
ID = validate.And(
    validate.Length(min=1, max=128),
    WholeRegexp(r"^[\x21-\x7e]+$", error="use printable ASCII without spaces"),
)
# Ids that are, or become, a segment of a URL path (members, referrers, redemptions):
# the characters RFC 3986 lets a path segment hold as they are (unreserved, sub-delims,
# ":" and "@"), so no "/", "%", "?" or "#"; and no leading "." (never "." or "..", which
# URL normalisation removes).
URL_SAFE_ID = validate.And(
    validate.Length(min=1, max=128),
    WholeRegexp(
        r"^[A-Za-z0-9_~!$&'()*+,;=:@-][A-Za-z0-9._~!$&'()*+,;=:@-]*$",
        error="use letters, digits and . _ ~ ! $ & ' ( ) * + , ; = : @ - (not a leading .), "
        "so the id can stand in a URL path",
    ),
)


class StrictSchema(Schema):
    """Every schema refuses fields it does not know (and says so in OpenAPI)."""

    class Meta:
        unknown = RAISE


def _amount(minimum: Decimal) -> fields.Decimal:
    return fields.Decimal(
        required=True,
        places=None,
        allow_nan=False,
        validate=[
            validate.Range(min=minimum, max=MAX_AMOUNT, error="must be between {min} and {max}"),
            _at_most_places(4),
        ],
        metadata={"description": "a decimal number or string in the programme's currency"},
    )


def _at_most_places(places: int) -> Any:
    def check(value: Decimal) -> None:
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -places:
            raise ValidationError(f"has more than {places} decimal places")

    return check


class ItemSchema(StrictSchema):
    sku = fields.String(required=True, validate=validate.Length(min=1, max=128))
    category = fields.String(validate=validate.Length(min=1, max=128))
    quantity = fields.Decimal(
        load_default=Decimal(1),
        allow_nan=False,
        validate=[
            validate.Range(min=Decimal(0), min_inclusive=False, max=Decimal(100000)),
            _at_most_places(4),
        ],
    )
    discounted = fields.Boolean(load_default=False)
    paid_with_points = fields.Boolean(load_default=False)
    price = fields.Decimal(
        load_default=Decimal(0),
        allow_nan=False,
        validate=[validate.Range(min=Decimal(0), max=MAX_AMOUNT), _at_most_places(4)],
    )

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> LineItem:
        return LineItem(**data)


class ProfileSchema(StrictSchema):
    birthday = fields.Date()
    timezone = fields.String()
    email = fields.Email(validate=validate.Length(max=254))
    phone = fields.String(
        validate=validate.Regexp(r"^\+?[0-9 ()-]{3,32}$", error="is not a phone number")
    )
    tags = fields.List(
        fields.String(
            validate=validate.Regexp(r"^[a-z0-9_:-]{1,64}$", error="use a-z, 0-9, _ : -")
        ),
        validate=validate.Length(max=50),
    )

    @validates("timezone")
    def known_zone(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        except (ValueError, KeyError, OSError) as error:
            raise ValidationError("is not an IANA time zone such as Asia/Shanghai") from error

    @post_load
    def build(self, data: dict[str, Any], **_: Any) -> Profile:
        if "tags" in data:
            data["tags"] = tuple(data["tags"])
        return Profile(**data)


class AttributeValue(fields.Field):  # type: ignore[type-arg]
    """A scalar an activity carries: text, a number or a boolean."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, str) and len(value) <= 256):
            return value
        if isinstance(value, (int, float, Decimal)):
            number = Decimal(str(value))
            if number.is_finite():
                if not number_in_bounds(number):
                    raise ValidationError(NUMBER_MESSAGE)
                return abs(number) if number.is_zero() else number  # -0 is 0
        raise ValidationError("must be text (at most 256 characters), a number or a boolean")


class EventSchema(StrictSchema):
    event_id = fields.String(required=True, validate=ID)
    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    customer_id = fields.String(required=True, validate=URL_SAFE_ID)
    occurred_at = fields.AwareDateTime(
        required=True,
        format="iso",
        error_messages={
            "invalid_awareness": "needs a UTC offset, e.g. 2026-12-05T10:00:00+08:00",
            "invalid": "is not an RFC 3339 time such as 2026-12-05T10:00:00+08:00",
        },
        # Far outside any programme's life, and beyond what date arithmetic can hold.
        validate=validate.Range(
            min=datetime(1970, 1, 1, tzinfo=UTC),
            max=datetime(9000, 1, 1, tzinfo=UTC),
            error="must be between 1970 and 9000",
        ),
    )


class PurchaseSchema(EventSchema):
    order_id = fields.String(required=True, validate=ID)
    amount = _amount(Decimal(0))
    channel = fields.String(validate=validate.Length(min=1, max=64))
    store_id = fields.String(validate=ID)
    items = fields.List(fields.Nested(ItemSchema), validate=validate.Length(max=MAX_ITEMS))


class RefundSchema(EventSchema):
    order_id = fields.String(required=True, validate=ID)
    amount = _amount(Decimal("0.0001"))
    channel = fields.String(validate=validate.Length(min=1, max=64))
    store_id = fields.String(validate=ID)


class ReferralSchema(EventSchema):
    referrer_id = fields.String(required=True, validate=URL_SAFE_ID)
    code = fields.String(validate=validate.Length(min=1, max=64))
    profile = fields.Nested(ProfileSchema)  # a referee signing up gives theirs


class ActivitySchema(EventSchema):
    kind = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9_]{0,63}$", error="use lower-case words joined by _"
        ),
    )
    attributes = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)), values=AttributeValue()
    )

    @validates("attributes")
    def not_too_many(self, value: dict[str, Any], **_: Any) -> None:
        if len(value) > MAX_ATTRIBUTES:
            raise ValidationError(f"at most {MAX_ATTRIBUTES} attributes")


class ProfileEventSchema(EventSchema):
    profile = fields.Nested(ProfileSchema, required=True)


class EnrolmentSchema(EventSchema):
    profile = fields.Nested(ProfileSchema)


class ScheduleSchema(EventSchema):
    """Events the scheduler makes for time-based campaigns; never accepted over HTTP."""

    type = fields.String(required=True, validate=validate.Equal("schedule"))
    kind = fields.String(
        required=True, validate=validate.OneOf(("birthday", "anniversary", "inactive"))
    )


SCHEMAS: dict[str, Schema] = {
    "purchase": PurchaseSchema(),
    "refund": RefundSchema(),
    "referral": ReferralSchema(),
    "activity": ActivitySchema(),
    "enrolment": EnrolmentSchema(),
    "profile": ProfileEventSchema(),
}


INTERNAL_SCHEMAS: dict[str, Schema] = {"schedule": ScheduleSchema()}


def parse_event(payload: Any, *, internal: bool = False) -> Event:
    """Validate one event; raise marshmallow's ValidationError with a message per field.

    ``internal`` also admits the scheduler's own event types (rule-file cases, jobs).
    """
    if not isinstance(payload, dict):
        raise ValidationError({"_schema": ["an event is a JSON object"]})
    unsafe = content_errors(payload)
    if unsafe:
        raise ValidationError(unsafe)
    kind = payload.get("type")
    known = {**SCHEMAS, **INTERNAL_SCHEMAS} if internal else SCHEMAS
    schema = known.get(kind) if isinstance(kind, str) else None
    if schema is None:
        errors = EventSchema(partial=True).validate({"type": kind}) if kind is not None else {}
        raise ValidationError(errors or {"type": [f"must be one of: {', '.join(EVENT_TYPES)}"]})
    data = schema.load(payload)
    if "items" in data:
        data["items"] = tuple(data["items"])
    return Event(**data)


def error_text(messages: Any) -> str:
    """A ValidationError's messages on one line: ``field: message; other: message``."""
    if isinstance(messages, Mapping):
        return "; ".join(f"{field}: {error_text(inner)}" for field, inner in messages.items())
    if isinstance(messages, list):
        return " ".join(error_text(m) for m in messages)
    return str(messages)


def nul_fields(value: Any) -> Any:
    """Marshmallow-shaped messages for every string (or key) holding U+0000, else None.

    PostgreSQL text cannot hold U+0000, so no edge lets it through to any store."""
    message = ["must not contain the NUL character (U+0000)"]
    if isinstance(value, str):
        return message if "\x00" in value else None
    if isinstance(value, dict):
        found = {}
        for key, inner in value.items():
            error = message if "\x00" in key else nul_fields(inner)
            if error:
                found[key.replace("\x00", "\\u0000")] = error
        return found or None
    if isinstance(value, list):
        found_items = {i: e for i, item in enumerate(value) if (e := nul_fields(item))}
        return found_items or None
    return None


def event_to_json(event: Event) -> dict[str, Any]:
    """The canonical JSON of a validated event: stored for replays and hashed for
    idempotency, so the same event written two ways (120 and "120.00") is the same."""
    body: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type,
        "customer_id": event.customer_id,
        "occurred_at": event.occurred_at.isoformat(),
    }
    for name in ("order_id", "channel", "store_id", "referrer_id", "code", "kind"):
        value = getattr(event, name)
        if value is not None:
            body[name] = value
    if event.amount is not None:
        body["amount"] = _number(event.amount)
    if event.items:
        body["items"] = [
            {
                "sku": item.sku,
                **({"category": item.category} if item.category is not None else {}),
                "quantity": _number(item.quantity),
                "price": _number(item.price),
                **({"discounted": True} if item.discounted else {}),
                **({"paid_with_points": True} if item.paid_with_points else {}),
            }
            for item in event.items
        ]
    if event.attributes:
        body["attributes"] = {
            k: _number(v) if isinstance(v, Decimal) else v
            for k, v in sorted(event.attributes.items())
        }
    if event.profile is not None:
        profile = event.profile
        body["profile"] = {
            k: v
            for k, v in (
                ("birthday", profile.birthday.isoformat() if profile.birthday else None),
                ("timezone", profile.timezone),
                ("email", profile.email),
                ("phone", profile.phone),
                ("tags", list(profile.tags) if profile.tags is not None else None),
            )
            if v is not None
        }
    return body


def _number(value: Decimal) -> str:
    """Decimal as canonical text: no exponent, no trailing zeros, no minus zero."""
    if value.is_zero():
        return "0"
    return format(value.normalize(), "f")


class HypotheticalCustomerSchema(StrictSchema):
    """A member described rather than stored: dry runs and the cases in rule files."""

    tier = fields.String(validate=validate.Length(min=1, max=64))
    balance = fields.Integer(validate=validate.Range(min=0))
    points_pending = fields.Integer(validate=validate.Range(min=0))
    lifetime_spend = fields.Decimal(
        allow_nan=False, validate=validate.Range(min=Decimal(0), max=MAX_AMOUNT)
    )
    order_count = fields.Integer(validate=validate.Range(min=0))
    days_since_last_purchase = fields.Integer(validate=validate.Range(min=0, max=36500))
    days_since_enrolment = fields.Integer(validate=validate.Range(min=0, max=36500))
    segment = fields.String(validate=validate.Length(min=1, max=64))
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)), validate=validate.Length(max=50)
    )
    birthday = fields.Date()
    timezone = fields.String()
    is_new = fields.Boolean()
    referred_by = fields.String(validate=URL_SAFE_ID)

    @validates("timezone")
    def known_zone(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        except (ValueError, KeyError, OSError) as error:
            raise ValidationError("is not an IANA time zone such as Asia/Shanghai") from error
