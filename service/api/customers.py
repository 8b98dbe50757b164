"""GET /v1/customers/{id}, its ledger, and reward redemptions."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from service.api.auth import require
from service.api.events import services
from service.api.request_body import json_body
from service.api.schemas import LedgerQuery, RedemptionRequest
from service.application.queries import customer_view, ledger_view
from service.application.rewards import redeem_reward, reverse_redemption

blueprint = Blueprint("customers", __name__)


@blueprint.get("/v1/customers/<customer_id>")
@require("customers:read")
def get_customer(customer_id: str) -> Response:
    svc = services()
    return jsonify(customer_view(svc.read_uow, svc.rules.active, customer_id, svc.clock))


@blueprint.get("/v1/customers/<customer_id>/ledger")
@require("customers:read")
def get_ledger(customer_id: str) -> Response:
    query = LedgerQuery().load(request.args)
    return jsonify(
        ledger_view(services().read_uow, customer_id, query.get("cursor"), query["limit"])
    )


@blueprint.post("/v1/customers/<customer_id>/redemptions")
@require("customers:write")
def post_redemption(customer_id: str) -> tuple[Response, int]:
    body = RedemptionRequest().load(json_body())
    svc = services()
    status, answer = redeem_reward(
        svc.uow, svc.rules.active, customer_id, body["reward_id"], body["redemption_id"], svc.clock
    )
    return jsonify(answer), 201 if status == "created" else 200


@blueprint.delete("/v1/customers/<customer_id>/redemptions/<redemption_id>")
@require("customers:write")
def delete_redemption(customer_id: str, redemption_id: str) -> Response:
    svc = services()
    return jsonify(reverse_redemption(svc.uow, customer_id, redemption_id, svc.clock))
