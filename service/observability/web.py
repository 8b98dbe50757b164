"""The Flask side of observability: a request id on every request and answer, one JSON
access line per request, request and event metrics, and `GET /metrics`."""

from __future__ import annotations

import logging
import re
import uuid
from time import perf_counter
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from marshmallow import fields

from service.core.events import EVENT_TYPES
from service.observability import metrics
from service.observability.logging import request_id

REQUEST_ID_HEADER = "X-Request-ID"
# An id a caller sends is kept when it is short printable ASCII (a UUID, a trace id);
# anything else is replaced, so a log line never carries what a caller smuggled in.
GOOD_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
EVENT_ENDPOINTS = frozenset({"events.post_event", "events.post_batch"})
BATCH_OUTCOMES = {"applied": "applied", "duplicate": "duplicate"}

access_log = logging.getLogger("loyalty.access")
blueprint = Blueprint("observability", __name__)


@blueprint.get("/metrics")
def get_metrics() -> Response:
    services = current_app.extensions["loyalty"]
    body = metrics.exposition([metrics.OutboxDepth(services.db)])
    return Response(body, mimetype=None, content_type=metrics.CONTENT_TYPE)


def init_app(app: Flask, *, log_requests: bool = True) -> None:
    app.register_blueprint(blueprint)

    @app.before_request
    def _start() -> None:
        g.started = perf_counter()
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = sent if GOOD_REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
        g.request_id_token = request_id.set(g.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        rid = g.get("request_id") or uuid.uuid4().hex
        response.headers[REQUEST_ID_HEADER] = rid
        started = g.get("started")
        seconds = perf_counter() - started if started is not None else 0.0
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        try:
            metrics.observe_request(request.method, route, response.status_code, seconds)
            if request.endpoint in EVENT_ENDPOINTS:
                _count_events(request.endpoint, response)
        except Exception:  # a metric must never turn an answer into an error
            logging.getLogger("loyalty.metrics").exception("recording request metrics failed")
        if log_requests:
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 3),
                    "bytes_in": request.content_length or 0,
                    "remote_addr": request.remote_addr,
                },
            )
        return response

    @app.teardown_request
    def _forget(_error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id.reset(token)


def _count_events(endpoint: str, response: Response) -> None:
    # A body too large was never read, and is not read now.
    readable = request.is_json and response.status_code != 413
    body = request.get_json(silent=True) if readable else None
    if endpoint == "events.post_event":
        outcome = _outcome(response.status_code)
        if outcome is not None:
            metrics.record_event(_type_of(body), outcome)
        return
    if response.status_code != 200 or not isinstance(body, dict):
        return
    # The batch's handler noted each item's outcome where it was decided
    # (batch_outcomes); the answer is not read back.
    for raw, outcome in zip(body.get("events") or (), g.get("batch_outcomes", ()), strict=False):
        metrics.record_event(_type_of(raw), outcome)


def batch_outcomes(results: list[dict[str, Any]]) -> None:
    """For the metrics: what became of each item of the batch being answered."""
    noted = []
    for result in results:
        status = result.get("status")
        if status == "rejected":
            noted.append("conflict" if result.get("http_status") == 409 else "rejected")
        else:
            noted.append(BATCH_OUTCOMES.get(str(status), "error"))
    g.batch_outcomes = noted


def _outcome(status: int) -> str | None:
    if status == 201:
        return "applied"
    if status == 200:
        flag = request.args.get("dry_run")
        return "dry_run" if flag in fields.Boolean.truthy else "duplicate"
    if status == 409:
        return "conflict"
    if status in (400, 413, 415, 422):
        return "rejected"
    if status >= 500:
        return "error"
    return None  # 401, 403, 429: not an event's outcome


def _type_of(body: Any) -> str:
    kind = body.get("type") if isinstance(body, dict) else None
    return kind if kind in EVENT_TYPES else "invalid"
