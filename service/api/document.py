"""`GET /openapi.json`: the OpenAPI document, built from the declarations of the views.

It is a function of the code alone (no settings, database or rules), so it is built once
per process, when first asked for, on an app of its own: the service's apps register the
same blueprints for routing only and start as fast as they did.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Flask, Response, jsonify

from service.api import customers, events, member_service, operations, reports, rules_admin
from service.api.contract import Blueprint, document_route, init_api, published
from service.observability import web as observability

blueprint = Blueprint("openapi", __name__)
METRICS = {  # a plain Flask route of service.observability, documented here
    "summary": "Prometheus metrics of every worker",
    "tags": ["operations"],
    "responses": {
        200: {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
}


@blueprint.get("/openapi.json", tags=["operations"])
@blueprint.response(200, {"type": "object"})
def get_document() -> Response:
    """This document"""
    return jsonify(api_document())


BLUEPRINTS = (
    events.blueprint,
    customers.blueprint,
    customers.offers,
    operations.blueprint,
    blueprint,
    customers.messages,
    rules_admin.blueprint,
    member_service.blueprint,
    member_service.catalogue,
    reports.blueprint,
)


@cache
def api_document() -> dict[str, Any]:
    app = Flask("loyalty-document")
    app.register_blueprint(observability.blueprint)
    api = init_api(app)
    for each in BLUEPRINTS:
        api.register_blueprint(each)
    document_route(app, api, "observability.get_metrics", METRICS)
    return published(api)
