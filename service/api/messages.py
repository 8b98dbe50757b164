"""GET /v1/customers/{id}/messages: what the programme told a member, or tried to."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from marshmallow import fields, validate

from service.api.auth import require
from service.api.events import services
from service.application.messages import messages_view
from service.event_schema import StrictSchema

blueprint = Blueprint("messages", __name__)
STATUSES = ("queued", "deferred", "sent", "suppressed", "dead")


class MessagesQuery(StrictSchema):
    cursor = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class MessageSchema(StrictSchema):
    id = fields.Integer(required=True)
    template = fields.String(required=True)
    channel = fields.String(required=True, metadata={"description": "webhook, email or log"})
    category = fields.String(required=True)
    source = fields.String(required=True, validate=validate.OneOf(("rule", "system")))
    urgent = fields.Boolean(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
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


@blueprint.get("/v1/customers/<customer_id>/messages")
@require("customers:read")
def get_messages(customer_id: str) -> Response:
    query = MessagesQuery().load(request.args)
    return jsonify(
        messages_view(services().read_uow, customer_id, query.get("cursor"), query["limit"])
    )
