"""Reading a JSON body, with a clear problem for each way it can be wrong."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest

from service.api.problems import ApiProblem


def json_body() -> Any:
    if not request.is_json:
        raise ApiProblem(
            415,
            "Unsupported media type",
            "send the body as JSON with Content-Type: application/json",
            "unsupported-media-type",
        )
    try:
        return request.get_json()
    except BadRequest as error:
        cause = error.__cause__ or error.__context__
        reason = str(cause) if cause is not None else str(error.description)
        reason = reason.split("Failed to decode JSON object: ")[-1]
        raise ApiProblem(
            400, "Malformed JSON", f"the body is not valid JSON: {reason}", "malformed-json"
        ) from error
