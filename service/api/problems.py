"""One error shape for every "no": RFC 9457 problem+json, with per-field messages."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, json
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from service.api.paths import UnknownPathId
from service.application.manual_points import TransfersOff
from service.application.ports import ConnectionLost
from service.core.errors import (
    EventConflict,
    InsufficientPoints,
    NotFound,
    OfferUnavailable,
    RewardUnavailable,
    RuleFileError,
    StorageUnavailable,
)

log = logging.getLogger("loyalty.api")
PROBLEM_TYPE = "https://loyalty.example/problems/"


class ApiProblem(Exception):
    def __init__(self, status: int, title: str, detail: str, slug: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.slug, self.extra = (
            status,
            title,
            detail,
            slug,
            extra,
        )


def problem(status: int, title: str, detail: str, slug: str, **extra: Any) -> Response:
    body = {
        "type": PROBLEM_TYPE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    return response


# The core's expected "no"s: status, title and slug; the detail is the error's own text.
DOMAIN_NOES: dict[type[Exception], tuple[int, str, str]] = {
    EventConflict: (409, "Event already applied", "event-conflict"),
    OfferUnavailable: (409, "Offer unavailable", "offer-unavailable"),
    RewardUnavailable: (409, "Reward unavailable", "reward-unavailable"),
    TransfersOff: (403, "Transfers not allowed", "transfers-off"),
    InsufficientPoints: (409, "Not enough points", "insufficient-points"),
    NotFound: (404, "Not found", "not-found"),
}


def _domain_problem(status: int, title: str, slug: str) -> Callable[[Exception], Response]:
    return lambda error: problem(status, title, str(error), slug)


def register_problem_handlers(app: Flask) -> None:
    @app.errorhandler(ApiProblem)
    def _api_problem(error: ApiProblem) -> Response:
        response = problem(error.status, error.title, error.detail, error.slug, **error.extra)
        if error.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="loyalty"'
        return response

    @app.errorhandler(ValidationError)
    def _invalid(error: ValidationError) -> Response:
        return problem(
            422,
            "Invalid request",
            _summary(error.messages),
            "invalid-request",
            errors=error.messages,
        )

    for error_class, (status, title, slug) in DOMAIN_NOES.items():
        app.register_error_handler(error_class, _domain_problem(status, title, slug))

    @app.errorhandler(RuleFileError)
    def _bad_rules(error: RuleFileError) -> Response:
        problems = [p.as_dict() for p in error.problems]
        return problem(422, "Invalid rule files", str(error), "invalid-rules", problems=problems)

    @app.errorhandler(StorageUnavailable)
    @app.errorhandler(ConnectionLost)  # other operations: not retried, but never a 500
    def _unavailable(error: Exception) -> Response:
        log.warning("answered 503: %s", error)
        response = problem(
            503,
            "Service unavailable",
            "the database could not be reached; nothing was applied: send the same request again",
            "storage-unavailable",
        )
        response.headers["Retry-After"] = "1"
        return response

    app.register_error_handler(HTTPException, http_problem)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return problem(500, "Internal error", "the service failed; it is logged", "internal-error")


def http_problem(error: HTTPException) -> Response:
    """Werkzeug's HTTP errors (404, 405, 413, ...) as problems. Also flask-smorest's
    handler (service.api.contract.Api), so that neither answers in another shape."""
    status = error.code or 500
    if isinstance(error, UnknownPathId):  # an id no record can have, named by the route
        return problem(404, "Not found", str(error.description), "not-found")
    slug = (error.name or "error").lower().replace(" ", "-")
    detail = error.description or ""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if status == 413 and limit is not None:
        detail = f"the body is larger than {limit} bytes (LOYALTY_MAX_BODY_BYTES)"
    response = problem(status, error.name or "Error", detail, slug)
    if status == 405 and error.get_response().headers.get("Allow"):
        response.headers["Allow"] = error.get_response().headers["Allow"]
    return response


def _summary(messages: Any, prefix: str = "") -> str:
    """Name every field at fault in one readable line."""
    if isinstance(messages, dict):
        parts = []
        for field, inner in messages.items():
            path = f"{prefix}.{field}" if prefix else str(field)
            parts.append(_summary(inner, path))
        return "; ".join(parts)
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return f"{prefix or 'body'}: {' '.join(messages)}"
    if isinstance(messages, list):
        return "; ".join(_summary(m, prefix) for m in messages)
    return f"{prefix}: {messages}"
