"""Answers about members, rules and the service, dumped by the views from what the use
cases return (records of domain values) and documented from the same schemas."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import Schema, fields, validate

from service.event_schema import StrictSchema
from service.settings import ENGINES

MESSAGE_STATUSES = ("queued", "deferred", "sent", "suppressed", "dead")


def _text(**kwargs: Any) -> fields.String:
    return fields.String(required=True, **kwargs)


def _kind(name: str) -> fields.String:
    return fields.String(required=True, validate=validate.Equal(name))


class DecimalText(fields.String):
    """A decimal as plain text ("1000", never "1E+3"); documented as the string it is."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else format(Decimal(value).normalize(), "f")


class Moment(fields.String):
    """A moment as RFC 3339 text, documented as a plain string (as it always was)."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else str(value.isoformat())


class Shaped(fields.Dict):
    """An object dumped with a schema of its own, documented as an object (as it was)."""

    def __init__(self, schema: type[Schema], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schema = schema()

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else self.schema.dump(value)


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
    lifetime_spend = DecimalText(
        required=True, metadata={"description": "a decimal number as text"}
    )
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
    from_time = fields.AwareDateTime(
        required=True, allow_none=True, data_key="from", attribute="active_from"
    )
    until = fields.AwareDateTime(required=True, allow_none=True, attribute="active_until")


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


class NameSchema(Schema):
    name = fields.String()
    id = fields.String()


class CampaignViewSchema(StrictSchema):
    """Dumps a service.application.queries.CampaignState."""

    id = _text(attribute="campaign.id")
    description = fields.String(required=True, allow_none=True, attribute="campaign.description")
    priority = fields.Integer(required=True, attribute="campaign.priority")
    active = fields.Nested(CampaignActiveSchema, required=True, attribute="campaign")
    budget = fields.Nested(
        CampaignBudgetSchema,
        required=True,
        allow_none=True,
        metadata={"description": "null for a campaign without a budget"},
    )
    rules = fields.Pluck(NameSchema, "name", many=True, required=True, attribute="campaign.rules")


class RulesViewSchema(StrictSchema):
    version = _text()
    engine = _text()
    programme = _text()
    currency = _text()
    timezone = _text()
    files = fields.List(fields.String(), required=True)
    campaigns = fields.List(fields.Nested(CampaignViewSchema), required=True)


class MessageSchema(StrictSchema):
    id = fields.Integer(required=True)
    template = fields.String(required=True)
    channel = fields.String(required=True, metadata={"description": "webhook, email or log"})
    category = fields.String(required=True)
    source = fields.String(required=True, validate=validate.OneOf(("rule", "system")))
    urgent = fields.Boolean(required=True)
    status = fields.String(required=True, validate=validate.OneOf(MESSAGE_STATUSES))
    reason = fields.String(
        allow_none=True,
        metadata={"description": "why it is deferred, suppressed or dead; how it was sent"},
    )
    attempts = fields.Integer(required=True)
    dedupe_key = fields.String(allow_none=True)
    campaign = fields.String(allow_none=True)
    rule = fields.String(allow_none=True)
    event_id = fields.String(allow_none=True)
    data = fields.Dict(required=True)
    created_at = fields.String(required=True)
    next_attempt_at = fields.String(allow_none=True)
    stale_at = fields.String(allow_none=True)
    sent_at = fields.String(allow_none=True)


class MessagePageSchema(StrictSchema):
    messages = fields.List(fields.Nested(MessageSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


# -- Rules versions and explanations


class LintFindingSchema(StrictSchema):
    lint = fields.String(required=True)
    severity = fields.String(required=True, validate=validate.OneOf(["error", "warning"]))
    file = fields.String(required=True)
    line = fields.Integer(allow_none=True)
    message = fields.String(required=True)


class ReloadAnswer(StrictSchema):
    version = fields.String(required=True)
    previous = fields.String(required=True)
    changed = fields.Boolean(required=True)
    warnings = fields.List(fields.Nested(LintFindingSchema), required=True)


class ActivationSchema(StrictSchema):
    version = fields.String(required=True)
    from_ = Moment(required=True, data_key="from", attribute="active_from")
    until = Moment(allow_none=True, attribute="active_until")
    source = fields.String(validate=validate.OneOf(["startup", "reload"]))


class VersionsAnswer(StrictSchema):
    active = fields.String(required=True)
    activations = fields.List(fields.Nested(ActivationSchema), required=True)


class VersionAnswer(StrictSchema):
    """Dumps a stored version's ActiveRules."""

    version = fields.String(required=True)
    files = fields.Dict(
        keys=fields.String(), values=fields.String(), required=True, attribute="ruleset.files"
    )
    campaigns = fields.Pluck(
        NameSchema, "id", many=True, required=True, attribute="ruleset.campaigns"
    )


class ActivePeriodSchema(Schema):
    from_ = Moment(data_key="from", attribute="active_from")
    until = Moment(allow_none=True, attribute="active_until")


class RulesVersionUseSchema(Schema):
    version = fields.String(allow_none=True)
    stored = fields.Boolean()
    active = fields.List(fields.Nested(ActivePeriodSchema))


class ExplainedCustomerSchema(Schema):
    """The member as evaluation saw them (a CustomerSnapshot)."""

    tier = fields.String(allow_none=True)
    points_available = fields.Integer()
    lifetime_spend = fields.String()
    order_count = fields.Integer()
    is_new = fields.Boolean()
    tags = fields.Function(lambda snapshot: sorted(snapshot.tags))


class LedgerEntryExplanation(StrictSchema):
    entry = Shaped(LedgerEntrySchema, required=True)
    event = fields.Dict(allow_none=True)
    rules_version = Shaped(RulesVersionUseSchema, required=True)
    campaign = fields.Dict(allow_none=True, metadata={"description": "id, file, line, text"})
    rule = fields.Dict(allow_none=True, metadata={"description": "name, file, line, text"})
    trace = fields.List(fields.Dict(), required=True)
    rule_trace = fields.List(fields.Dict())
    recorded_trace = fields.List(fields.Dict())
    effects = fields.List(fields.Dict())
    engine = fields.String()
    trace_source = fields.String(
        allow_none=True, validate=validate.OneOf(["recorded", "reconstructed"])
    )
    customer = Shaped(ExplainedCustomerSchema, allow_none=True)
