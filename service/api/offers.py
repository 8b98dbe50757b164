"""POST /v1/offers/{code}/redeem: use an issued offer once."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from service.api.auth import require
from service.api.events import services
from service.api.request_body import json_body
from service.api.schemas import OfferRedemptionRequest
from service.application.offers import redeem_offer

blueprint = Blueprint("offers", __name__)


@blueprint.post("/v1/offers/<code>/redeem")
@require("customers:write")
def post_offer_redemption(code: str) -> tuple[Response, int]:
    body = OfferRedemptionRequest().load(json_body())
    svc = services()
    _, answer = redeem_offer(svc.uow, code, body["customer_id"], body.get("reference"), svc.clock)
    return jsonify(answer), 200
