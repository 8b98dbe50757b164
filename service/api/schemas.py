"""Request and answer schemas of the HTTP API (events have theirs in service.event_schema)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from service.event_schema import ID, URL_SAFE_ID, StrictSchema
from service.settings import ENGINES

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


class BatchRequest(StrictSchema):
    # Items are checked one by one (a null among them is refused on its own), so any
    # JSON value is let through here.
    events = fields.List(
        fields.Raw(allow_none=True), required=True, validate=validate.Length(min=1, max=MAX_BATCH)
    )


class LedgerQuery(StrictSchema):
    cursor = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


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


# -- Answers. The handlers build their answers as plain dicts; these schemas describe
# them for the OpenAPI document (service.api.openapi), and schemathesis checks every live
# answer against that document, so a field added here or there without the other fails.


class OneOfSchemas(fields.Field):  # type: ignore[type-arg]
    """A value shaped like exactly one of several schemas (documentation only)."""

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
    reason = _text(validate=validate.OneOf(["qualified", "fast_track", "review"]))
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


class CustomerSummarySchema(StrictSchema):
    customer_id = _text()
    tier = fields.String(required=True, allow_none=True)
    points = fields.Nested(BalanceSchema, required=True)


class EventResultSchema(StrictSchema):
    event_id = _text()
    status = _text(validate=validate.OneOf(["applied", "duplicate"]))
    effects = fields.List(OneOfSchemas(EFFECTS, "type"), required=True)
    customer = fields.Nested(CustomerSummarySchema, required=True)
    rules_version = _text()


class TraceEntrySchema(StrictSchema):
    campaign = _text()
    rule = _text()
    outcome = _text(
        validate=validate.OneOf(
            ["matched", "not_matched", "inactive", "limit_reached", "budget_spent", "refused"]
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


class TierProgressSchema(StrictSchema):
    metric = _text(validate=validate.OneOf(["spend", "points", "orders"]))
    window_days = fields.Integer(required=True)
    value = _text(metadata={"description": "a decimal number as text"})
    next_tier = fields.String(required=True, allow_none=True)
    needed = fields.String(required=True, allow_none=True)


class ExpiringSchema(StrictSchema):
    points = fields.Integer(required=True)
    on = fields.Date(required=True)


class CustomerPointsSchema(StrictSchema):
    available = fields.Integer(required=True)
    pending = fields.Integer(required=True)
    debt = fields.Integer(required=True)
    expiring = fields.List(fields.Nested(ExpiringSchema), required=True)


class OfferViewSchema(StrictSchema):
    code = _text()
    offer_id = _text()
    campaign = fields.String(required=True, allow_none=True)
    issued_at = fields.AwareDateTime(required=True)
    valid_until = fields.AwareDateTime(required=True)
    status = _text(validate=validate.OneOf(["active", "redeemed", "expired"]))


class CustomerViewSchema(StrictSchema):
    customer_id = _text()
    tier = fields.String(required=True, allow_none=True)
    tier_progress = fields.Nested(TierProgressSchema, required=True)
    points = fields.Nested(CustomerPointsSchema, required=True)
    lifetime_spend = _text(metadata={"description": "a decimal number as text"})
    order_count = fields.Integer(required=True)
    tags = fields.List(fields.String(), required=True)
    segment = fields.String(required=True, allow_none=True)
    referral_code = fields.String(required=True, allow_none=True)
    offers = fields.List(fields.Nested(OfferViewSchema), required=True)


class LedgerEntrySchema(StrictSchema):
    id = fields.Integer(required=True)
    kind = _text()
    points = fields.Integer(required=True)
    debt = fields.Integer(required=True)
    event_id = fields.String(required=True, allow_none=True)
    campaign = fields.String(required=True, allow_none=True)
    rule = fields.String(required=True, allow_none=True)
    rules_version = fields.String(required=True, allow_none=True)
    order_id = fields.String(required=True, allow_none=True)
    occurred_at = fields.AwareDateTime(required=True)
    recorded_at = fields.AwareDateTime(required=True)
    note = fields.String(required=True, allow_none=True)


class LedgerPageSchema(StrictSchema):
    entries = fields.List(fields.Nested(LedgerEntrySchema), required=True)
    next_cursor = fields.String(
        required=True, allow_none=True, metadata={"description": "pass as ?cursor= for more"}
    )


class RedemptionSchema(StrictSchema):
    redemption_id = _text()
    customer_id = _text()
    reward_id = _text()
    points = fields.Integer(required=True)
    status = _text(validate=validate.OneOf(["completed", "reversed"]))
    points_available = fields.Integer(required=True)


class OfferRedemptionSchema(StrictSchema):
    code = _text()
    offer_id = _text()
    customer_id = _text()
    status = _kind("redeemed")


class HealthSchema(StrictSchema):
    status = _kind("ok")


class ReadinessChecksSchema(StrictSchema):
    rules = fields.Boolean(required=True)
    database = fields.Boolean(required=True)
    database_error = fields.String(metadata={"description": "the error's class name"})


class ReadinessSchema(StrictSchema):
    status = _text(validate=validate.OneOf(["ready", "not ready"]))
    checks = fields.Nested(ReadinessChecksSchema, required=True)
    engine = _text(
        validate=validate.OneOf(ENGINES),
        metadata={"description": "the rule engine this worker serves with"},
    )
    engine_note = fields.String(
        metadata={"description": "why the engine is not the configured one, when it is not"}
    )


class CampaignActiveSchema(StrictSchema):
    from_time = fields.AwareDateTime(required=True, allow_none=True, data_key="from")
    until = fields.AwareDateTime(required=True, allow_none=True)


class BudgetCountSchema(StrictSchema):
    limit = fields.Integer(required=True, metadata={"description": "as the campaign file says"})
    used = fields.Integer(required=True, metadata={"description": "0 for a budget never spent"})
    left = fields.Integer(required=True, metadata={"description": "limit - used, never below 0"})


class RevenueShareBudgetSchema(StrictSchema):
    limit = _text(metadata={"description": "the share of revenue, a decimal number as text"})
    revenue = _text(
        metadata={"description": "revenue of the purchases the campaign rewarded, as text"}
    )
    used = fields.Integer(required=True, metadata={"description": "points given"})
    left = fields.Integer(
        required=True,
        metadata={"description": "points the revenue so far still pays for (each purchase adds)"},
    )


class CampaignBudgetSchema(StrictSchema):
    """A campaign's budget: one entry for each kind its file declares."""

    points = fields.Nested(BudgetCountSchema, metadata={"description": "points given"})
    offers = fields.Nested(BudgetCountSchema, metadata={"description": "offers issued"})
    share_of_revenue = fields.Nested(RevenueShareBudgetSchema)


class CampaignViewSchema(StrictSchema):
    id = _text()
    description = fields.String(required=True, allow_none=True)
    priority = fields.Integer(required=True)
    active = fields.Nested(CampaignActiveSchema, required=True)
    budget = fields.Nested(
        CampaignBudgetSchema,
        required=True,
        allow_none=True,
        metadata={"description": "null for a campaign without a budget"},
    )
    rules = fields.List(fields.String(), required=True)


class RulesViewSchema(StrictSchema):
    version = _text()
    engine = _text()
    programme = _text()
    currency = _text()
    timezone = _text()
    files = fields.List(fields.String(), required=True)
    campaigns = fields.List(fields.Nested(CampaignViewSchema), required=True)


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
