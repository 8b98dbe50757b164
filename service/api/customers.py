"""GET /v1/customers/{id} and its ledger."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from service.api.auth import require
from service.api.events import services
from service.api.schemas import LedgerQuery
from service.application.queries import customer_view, ledger_view

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
