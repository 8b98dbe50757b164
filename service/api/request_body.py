"""Reading a JSON body, with a clear problem for each way it can be wrong.

In order: the media type (415), the charset (415: UTF-8 only), the bytes (415 for a
byte-order mark or UTF-16/32, 400 for bytes that are not UTF-8), the nesting (400 past
MAX_DEPTH, found without parsing), the JSON itself (400, duplicate keys included), then
the values (422 naming each field: text with a NUL or a lone surrogate, numbers beyond
the bounds of service.event_schema). The parsing rules live in the app's JSON provider
(service.api.json_provider), so every reader of the body, metrics included, gets them.
"""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest

from service.api.json_provider import BodyRefused
from service.api.problems import ApiProblem
from service.json_values import content_errors

UTF8_NAMES = frozenset({"utf-8", "utf8"})


def json_body() -> Any:
    if not request.is_json:
        raise ApiProblem(
            415,
            "Unsupported media type",
            "send the body as JSON with Content-Type: application/json",
            "unsupported-media-type",
        )
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.strip().lower() not in UTF8_NAMES:
        raise ApiProblem(
            415,
            "Unsupported encoding",
            f"the body is declared as charset={charset[:32]}: send UTF-8",
            "unsupported-encoding",
        )
    try:
        body = request.get_json()
    except BadRequest as error:
        raise _problem(error) from error
    errors = content_errors(body)
    if errors:
        raise ValidationError(errors)
    return body


def _problem(error: BadRequest) -> ApiProblem:
    """Flask wraps the parser's ValueError in BadRequest (twice); find it again."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ValueError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, BodyRefused):
        return ApiProblem(cause.status, cause.title, cause.detail, cause.slug)
    reason = str(cause) if cause is not None else str(error.description)
    return ApiProblem(
        400, "Malformed JSON", f"the body is not valid JSON: {reason}", "malformed-json"
    )
