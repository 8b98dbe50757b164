"""Request and answer schemas of the HTTP API (events have theirs in service.event_schema)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from service.event_schema import ID, URL_SAFE_ID, StrictSchema

MAX_BATCH = 1000
MAX_ID = 2**63 - 1  # ledger ids are BIGINT: a larger cursor is no id at all


class DryRunRequest(StrictSchema):
    event = fields.Dict(
        required=True, metadata={"description": "an event, as POST /v1/events takes"}
    )
    customer = fields.Dict(
        metadata={
            "description": "a hypothetical member: tier, balance, lifetime_spend, "
            "order_count, days_since_last_purchase, days_since_enrolment, segment, tags, "
            "birthday, timezone, is_new"
        }
    )
    rules = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=200)),
        values=fields.String(validate=validate.Length(max=1_000_000)),
        metadata={"description": "rule files to use instead of the live ones: {path: text}"},
    )


class StoredDryRunRequest(StrictSchema):
    """POST /v1/dry-run with a stored event, or against a stored rules version."""

    event_id = fields.String(validate=ID, metadata={"description": "a stored event to replay"})
    event = fields.Dict(metadata={"description": "an event, as POST /v1/events takes"})
    version = fields.String(
        validate=validate.Length(min=1, max=32),
        metadata={"description": "a stored rules version (default: the live one)"},
    )
    customer = fields.Dict(metadata={"description": "a hypothetical member, as in dry runs"})

    @validates_schema
    def one_event(self, data: dict[str, Any], **_: Any) -> None:
        if ("event_id" in data) == ("event" in data):
            raise ValidationError("send `event_id` (a stored event) or `event`, not both")

    @staticmethod
    def asked(body: Any) -> bool:
        """Does a dry-run body ask for a stored event or a stored version?"""
        return isinstance(body, dict) and ("event_id" in body or "version" in body)


class BatchRequest(StrictSchema):
    # Items are checked one by one (a null among them is refused on its own), so any
    # JSON value is let through here.
    events = fields.List(
        fields.Raw(allow_none=True), required=True, validate=validate.Length(min=1, max=MAX_BATCH)
    )


class LedgerQuery(StrictSchema):
    cursor = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class MessagesQuery(LedgerQuery):
    pass


class RedemptionRequest(StrictSchema):
    reward_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    redemption_id = fields.String(required=True, validate=URL_SAFE_ID)


class OfferRedemptionRequest(StrictSchema):
    customer_id = fields.String(required=True, validate=URL_SAFE_ID)
    reference = fields.String(
        validate=ID, metadata={"description": "e.g. the order it was used on"}
    )


class DryRunFlag(StrictSchema):
    dry_run = fields.Boolean(load_default=False)


# -- Answers to events. The views dump what the use cases return with these schemas, and
# the OpenAPI document is built from the same ones (service.api.contract); schemathesis
# checks every live answer against that document.


class OneOfSchemas(fields.Field):  # type: ignore[type-arg]
    """A value shaped like exactly one of several schemas: passed through as it is (the
    core's effect records), documented as the union."""

    def __init__(
        self, schemas: tuple[type[Schema], ...], discriminator: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.schemas = schemas
        self.discriminator = discriminator


def _kind(name: str) -> fields.String:
    return fields.String(required=True, validate=validate.Equal(name))


def _text(**kwargs: Any) -> fields.String:
    return fields.String(required=True, **kwargs)


class AwardPointsEffect(StrictSchema):
    type = _kind("award_points")
    points = fields.Integer(required=True)
    campaign = _text()
    rule = _text()
    customer_id = fields.String(metadata={"description": "another member it goes to (referrer)"})


class TagEffect(StrictSchema):
    type = _kind("tag")
    add = fields.List(fields.String(), required=True)
    remove = fields.List(fields.String(), required=True)
    campaign = _text()
    rule = _text()


class ClawBackEffect(StrictSchema):
    type = _kind("claw_back_points")
    points = fields.Integer(required=True)
    order_id = _text()
    shortfall = fields.Integer(
        required=True, metadata={"description": "points already spent, now owed as debt"}
    )
    customer_id = fields.String(
        metadata={"description": "another member it is taken from (the order's referrer)"}
    )


class IssueOfferEffect(StrictSchema):
    type = _kind("issue_offer")
    offer = _text()
    valid_until = fields.AwareDateTime(required=True)
    campaign = _text()
    rule = _text()
    code = fields.String(metadata={"description": "the code the member redeems it with"})


class SendMessageEffect(StrictSchema):
    type = _kind("send_message")
    template = _text()
    channel = _text()
    category = _text()
    campaign = _text()
    rule = _text()


class ChangeTierEffect(StrictSchema):
    type = _kind("change_tier")
    from_tier = fields.String(required=True, allow_none=True, data_key="from")
    to = _text()
    reason = _text(validate=validate.OneOf(["qualified", "fast_track", "review", "refund"]))
    until = fields.AwareDateTime()
    campaign = fields.String()
    rule = fields.String(allow_none=True)


EFFECTS = (
    AwardPointsEffect,
    TagEffect,
    ClawBackEffect,
    IssueOfferEffect,
    SendMessageEffect,
    ChangeTierEffect,
)


class BalanceSchema(StrictSchema):
    available = fields.Integer(required=True)
    pending = fields.Integer(required=True)


class Stored(fields.Nested):
    """What the use case already holds in this schema's shape (an event's answer is stored
    with the event, so that a repeat answers the same): passed through as it is, on the
    hot path, and documented as the schema."""

    def _serialize(self, nested_obj: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return nested_obj


class CustomerSummarySchema(StrictSchema):
    customer_id = _text()
    tier = fields.String(required=True, allow_none=True)
    points = fields.Nested(BalanceSchema, required=True)


class EventResultSchema(StrictSchema):
    event_id = _text()
    status = _text(validate=validate.OneOf(["applied", "duplicate"]))
    held = fields.Boolean(
        validate=validate.Equal(True),
        metadata={
            "description": "a refund of an order not known yet: kept, and applied when a "
            "purchase of that order by the same member arrives (absent otherwise)"
        },
    )
    effects = fields.List(OneOfSchemas(EFFECTS, "type"), required=True)
    customer = Stored(CustomerSummarySchema, required=True)
    rules_version = _text()


class TraceEntrySchema(StrictSchema):
    campaign = _text()
    rule = _text()
    outcome = _text(
        validate=validate.OneOf(
            [
                "matched",
                "not_matched",
                "inactive",
                "limit_reached",
                "budget_spent",
                "refused",
                "outranked",
            ]
        )
    )
    reason = _text()


class DryRunResultSchema(StrictSchema):
    event_id = _text()
    dry_run = fields.Boolean(required=True, validate=validate.Equal(True))
    customer_state = _text(validate=validate.OneOf(["stored", "new", "hypothetical"]))
    effects = fields.List(OneOfSchemas(EFFECTS, "type"), required=True)
    points = fields.Integer(required=True)
    trace = fields.List(fields.Nested(TraceEntrySchema), required=True)
    rules_version = _text()
    engine = _text()


class RecordedSchema(StrictSchema):
    rules_version = _text()
    effects = fields.List(OneOfSchemas(EFFECTS, "type"), required=True)


class ReplayResultSchema(DryRunResultSchema):
    """A stored event evaluated again (POST /v1/dry-run with `event_id`)."""

    replayed = fields.Boolean(required=True, validate=validate.Equal(True))
    customer_state = _text(validate=validate.OneOf(["recorded", "reconstructed", "hypothetical"]))
    recorded = fields.Nested(
        RecordedSchema,
        required=True,
        metadata={"description": "what the event did when it was applied"},
    )


class BatchAppliedSchema(EventResultSchema):
    http_status = fields.Integer(required=True, validate=validate.OneOf([200, 201]))


class BatchRejectedSchema(StrictSchema):
    status = _kind("rejected")
    http_status = fields.Integer(required=True, validate=validate.OneOf([409, 422]))
    event_id = fields.Raw(
        required=True,
        allow_none=True,
        metadata={"description": "the event_id as sent (whatever it was), null if none"},
    )
    errors = fields.Dict(metadata={"description": "per-field messages (422)"})
    detail = fields.String(metadata={"description": "why the event conflicts (409)"})


class BatchResultSchema(StrictSchema):
    results = fields.List(
        OneOfSchemas((BatchAppliedSchema, BatchRejectedSchema)),
        required=True,
        metadata={"description": "one result per event, in the order sent"},
    )


class RuleProblemSchema(StrictSchema):
    file = _text()
    line = fields.Integer(required=True, allow_none=True)
    message = _text()


class ProblemSchema(StrictSchema):
    """RFC 9457 problem details, the one error shape of the API."""

    type = _text(metadata={"description": "a URI naming the kind of problem"})
    title = _text()
    status = fields.Integer(required=True)
    detail = _text()
    errors = fields.Dict(
        metadata={"description": "per-field messages, shaped like the request (422)"}
    )
    problems = fields.List(
        fields.Nested(RuleProblemSchema),
        metadata={"description": "file, line and reason of each rule-file problem"},
    )
