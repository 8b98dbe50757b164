"""A member: their standing, ledger and messages, reward redemptions, and offers used."""

from __future__ import annotations

from typing import Any

from service.api.answers import (
    CustomerViewSchema,
    LedgerPageSchema,
    MessagePageSchema,
    OfferRedemptionSchema,
    RedemptionSchema,
)
from service.api.auth import require
from service.api.context import services
from service.api.contract import BODY_PROBLEMS, Blueprint, problems
from service.api.schemas import (
    LedgerQuery,
    MessagesQuery,
    OfferRedemptionRequest,
    RedemptionRequest,
)
from service.application.messages import messages_view
from service.application.offers import redeem_offer
from service.application.queries import customer_view, ledger_view
from service.application.rewards import redeem_reward, reverse_redemption

blueprint = Blueprint("customers", __name__)
messages = Blueprint("messages", __name__)
offers = Blueprint("offers", __name__)


@blueprint.get("/v1/customers/<id:customer_id>")
@require("customers:read")
@blueprint.response(200, CustomerViewSchema())
def get_customer(customer_id: str) -> Any:
    """A member's tier, progress, points and active offers"""
    svc = services()
    return customer_view(svc.read_uow, svc.rules.active, customer_id, svc.clock)


@blueprint.get("/v1/customers/<id:customer_id>/ledger")
@require("customers:read")
@blueprint.arguments(LedgerQuery(), location="query")
@blueprint.response(200, LedgerPageSchema())
def get_ledger(query: dict[str, Any], customer_id: str) -> Any:
    """A member's ledger, newest first, a page at a time"""
    return ledger_view(services().read_uow, customer_id, query.get("cursor"), query["limit"])


@messages.get("/v1/customers/<id:customer_id>/messages", tags=["customers"])
@require("customers:read")
@messages.arguments(MessagesQuery(), location="query")
@messages.response(200, MessagePageSchema())
def get_messages(query: dict[str, Any], customer_id: str) -> Any:
    """A member's messages, newest first: queued, deferred, sent, suppressed or dead, and why"""
    return messages_view(services().read_uow, customer_id, query.get("cursor"), query["limit"])


@blueprint.post("/v1/customers/<id:customer_id>/redemptions")
@require("customers:write")
@blueprint.arguments(RedemptionRequest())
@blueprint.response(201, RedemptionSchema())
@blueprint.alt_response(200, schema=RedemptionSchema(), success=True)
@blueprint.doc(responses=problems(*BODY_PROBLEMS, 404, 409))
def post_redemption(body: dict[str, Any], customer_id: str) -> Any:
    """Spend points on a catalogue reward (idempotent on redemption_id)

    201 when spent; 200 for a redemption_id seen before; 409 when the balance is short.
    """
    svc = services()
    status, answer = redeem_reward(
        svc.uow, svc.rules.active, customer_id, body["reward_id"], body["redemption_id"], svc.clock
    )
    return answer, 201 if status == "created" else 200


@blueprint.delete("/v1/customers/<id:customer_id>/redemptions/<id:redemption_id>")
@require("customers:write")
@blueprint.response(200, RedemptionSchema())
def delete_redemption(customer_id: str, redemption_id: str) -> Any:
    """Reverse a redemption: its points go back to the lots they came from"""
    svc = services()
    return reverse_redemption(svc.uow, customer_id, redemption_id, svc.clock)


@offers.post("/v1/offers/<id:code>/redeem")
@require("customers:write")
@offers.arguments(OfferRedemptionRequest())
@offers.response(200, OfferRedemptionSchema())
@offers.doc(responses=problems(*BODY_PROBLEMS, 404, 409))
def post_offer_redemption(body: dict[str, Any], code: str) -> Any:
    """Use an issued offer, once"""
    svc = services()
    _, answer = redeem_offer(svc.uow, code, body["customer_id"], body.get("reference"), svc.clock)
    return answer
