"""Request and answer schemas of the HTTP API (events have theirs in service.event_schema)."""

from __future__ import annotations

from marshmallow import fields, validate

from service.event_schema import ID, StrictSchema

MAX_BATCH = 1000


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


class BatchRequest(StrictSchema):
    events = fields.List(
        fields.Raw(), required=True, validate=validate.Length(min=1, max=MAX_BATCH)
    )


class LedgerQuery(StrictSchema):
    cursor = fields.Integer(validate=validate.Range(min=1))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class RedemptionRequest(StrictSchema):
    reward_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    redemption_id = fields.String(required=True, validate=ID)


class OfferRedemptionRequest(StrictSchema):
    customer_id = fields.String(required=True, validate=ID)
    reference = fields.String(
        validate=ID, metadata={"description": "e.g. the order it was used on"}
    )


class DryRunFlag(StrictSchema):
    dry_run = fields.Boolean(load_default=False)


class PointsSchema(StrictSchema):
    available = fields.Integer()
    pending = fields.Integer()


class CustomerSummarySchema(StrictSchema):
    customer_id = fields.String()
    tier = fields.String(allow_none=True)
    points = fields.Nested(PointsSchema)


class EffectSchema(StrictSchema):
    type = fields.String(required=True)
    points = fields.Integer()
    campaign = fields.String()
    rule = fields.String()
    add = fields.List(fields.String())
    remove = fields.List(fields.String())
    order_id = fields.String()
    shortfall = fields.Integer()


class EventResultSchema(StrictSchema):
    event_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["applied", "duplicate"]))
    effects = fields.List(fields.Nested(EffectSchema), required=True)
    customer = fields.Nested(CustomerSummarySchema, required=True)
    rules_version = fields.String()
