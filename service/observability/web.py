"""The Flask side of observability: a request id on every request and answer, one JSON
access line per request, request metrics, and `GET /metrics`.

Events are counted by the handlers, where each outcome is decided (`count_event`), from
the outcome the use case returns. A single event refused on the way (a body that is no
event: 400, 413, 415, 422; one applied before with another body: 409; a failure: 5xx) is
counted here by its status, under the type its handler noted (`note_event_type`).
"""

from __future__ import annotations

import logging
import re
import uuid
from time import perf_counter
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request

from service.core.events import EVENT_TYPES
from service.observability import metrics
from service.observability.logging import request_id

REQUEST_ID_HEADER = "X-Request-ID"
# An id a caller sends is kept when it is short printable ASCII (a UUID, a trace id);
# anything else is replaced, so a log line never carries what a caller smuggled in.
GOOD_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
EVENT_ENDPOINT = "events.post_event"
REFUSALS = {400: "rejected", 409: "conflict", 413: "rejected", 415: "rejected", 422: "rejected"}

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
            if request.endpoint == EVENT_ENDPOINT and not g.get("event_counted"):
                _count_refusal(response.status_code)
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


def count_event(event_type: str, outcome: str) -> None:
    """For the event handlers: one event's outcome, counted where it is decided."""
    g.event_counted = True
    try:
        metrics.record_event(event_type, outcome)
    except Exception:  # a metric must never turn an answer into an error
        logging.getLogger("loyalty.metrics").exception("recording an event metric failed")


def note_event_type(body: Any) -> None:
    """For the handler of one event, once its body is read: the type a refusal of the
    event is counted under."""
    g.event_type = event_type_of(body)


def event_type_of(body: Any) -> str:
    kind = body.get("type") if isinstance(body, dict) else None
    return kind if kind in EVENT_TYPES else "invalid"


def _count_refusal(status: int) -> None:
    outcome = REFUSALS.get(status) or ("error" if status >= 500 else None)
    if outcome is not None:  # 401, 403, 429: not an event's outcome
        metrics.record_event(g.get("event_type", "invalid"), outcome)
