"""What a public HTTP edge needs beyond auth: per-key rate limits, failed
authentication throttled per client address, CORS only for listed origins, and request
lines and headers within bounds (answered here as
problem+json, below the larger limits gunicorn enforces itself in service/gunicorn_conf.py).
What a JSON body may hold is checked where it is read (service.api.request_body).

The rate limits are flask-limiter's, on a moving window: LOYALTY_RATE_LIMIT requests per
period for each API key, and LOYALTY_AUTH_FAILURE_LIMIT for each client address (as the
worker sees it: behind a proxy, the proxy's) for requests without a valid key, so a flood
of guesses is cut short; requests with a valid key never draw on the address's limit.
They count in LOYALTY_RATE_LIMIT_STORAGE: `memory://` counts in each gunicorn worker, so
the whole service lets through up to (workers x nodes) times a limit; a shared store
(`redis://HOST:6379/0`) makes it one limit for every worker and instance. While that
store cannot be reached, each worker counts on its own (flask-limiter's in-memory
fallback) rather than failing requests. CORS is flask-cors's.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable

from flask import Flask, Response, current_app, g, request
from flask_cors import CORS
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded, RequestLimit
from limits.errors import ConfigurationError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as WerkzeugResponse

from service.api.auth import authenticate
from service.api.problems import ApiProblem, problem
from service.clock import system_clock
from service.settings import ApiKey, Settings, SettingsError, parse_rate_limit

CORS_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]
CORS_EXPOSED = ["X-Request-ID", "Retry-After"]
CORS_METHODS = ["GET", "POST", "DELETE"]  # every method a route of the API answers
CORS_MAX_AGE_S = 600
# gunicorn's default limits, enforced here so that the answer is problem+json; gunicorn
# itself is set to twice these (service/gunicorn_conf.py) and answers text/html beyond.
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD = 8190


def init_app(app: Flask, settings: Settings) -> None:
    app.before_request(_refuse_oversized_head)
    limiter = rate_limiter(settings)
    if limiter is not None:
        try:
            limiter.init_app(app)  # its check runs here: after the head, before the body
        except ConfigurationError as error:  # an unknown scheme, or its client missing
            raise SettingsError(f"LOYALTY_RATE_LIMIT_STORAGE: {error}") from error
        app.register_error_handler(RateLimitExceeded, _too_many_requests)
    app.before_request(_refuse_truncated_body)
    if settings.cors_origins:
        CORS(
            app,
            origins=list(settings.cors_origins),
            send_wildcard="*" in settings.cors_origins,
            always_send=False,  # no Origin, no CORS headers
            methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=CORS_MAX_AGE_S,
            intercept_exceptions=False,  # error answers pass through after_request anyway
        )


def rate_limiter(settings: Settings) -> Limiter | None:
    """The per-key and per-address limits of `settings`, or None when both are off."""
    per_key = parse_rate_limit(settings.rate_limit)
    per_address = parse_rate_limit(settings.auth_failure_limit, "LOYALTY_AUTH_FAILURE_LIMIT")
    if per_key is None and per_address is None:
        return None
    shared = not settings.rate_limit_storage.startswith("memory://")
    where = "" if shared else " to each worker"
    limits: list[str | Callable[[], str] | ApplicationLimit] = []
    if per_key is not None:
        limits.append(
            ApplicationLimit(
                _limit_text(per_key),
                key_function=_key_fingerprint,
                scope="api-key",
                exempt_when=lambda: _valid_key() is None,
                on_breach=_refusal("this key's requests", per_key, where),
            )
        )
    if per_address is not None:
        limits.append(
            ApplicationLimit(
                _limit_text(per_address),
                key_function=lambda: request.remote_addr or "unknown",
                scope="failed-auth",
                exempt_when=lambda: _valid_key() is not None,
                on_breach=_refusal(
                    "requests without a valid key from this address", per_address, where
                ),
            )
        )
    limiter = Limiter(
        lambda: request.remote_addr or "unknown",
        application_limits=limits,
        strategy="moving-window",
        storage_uri=settings.rate_limit_storage,
        in_memory_fallback_enabled=shared,
        key_prefix="loyalty",
    )
    # Health, metrics, the document and CORS preflights are not per-key.
    limiter.request_filter(_not_limited)
    # flask-limiter logs every refusal at info; the access log already has each 429.
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)
    return limiter


def _limit_text(limit: tuple[int, float]) -> str:
    count, period = limit
    return f"{count} per {period:g} second"


def _key_fingerprint() -> str:
    key = _valid_key()  # never None here: the limit is exempt without a valid key
    # What a shared store holds for a key: a digest, never the secret itself.
    return hashlib.sha256(key.secret.encode()).hexdigest() if key is not None else ""


def _not_limited() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return request.method == "OPTIONS" or getattr(view, "required_scope", None) is None


def _valid_key() -> ApiKey | None:
    """The request's valid API key, if any; looked up once per request."""
    if "rate_limit_key" not in g:
        keys = current_app.extensions["loyalty"].settings.api_keys
        g.rate_limit_key = authenticate(keys, request.headers.get("Authorization"))
    key: ApiKey | None = g.rate_limit_key
    return key


def _refusal(who: str, limit: tuple[int, float], where: str) -> Callable[[RequestLimit], Response]:
    count, period = limit

    def refuse(breached: RequestLimit) -> Response:
        # flask-limiter counts on the system's wall clock, whatever clock the services have
        retry_after = max(1, math.ceil(breached.window.reset_time - system_clock().timestamp()))
        response = problem(
            429,
            "Too many requests",
            f"{who} may come {count} per {period:g} s{where}; retry in {retry_after} s",
            "rate-limited",
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    return refuse


def _too_many_requests(error: RateLimitExceeded) -> WerkzeugResponse:
    return error.get_response()  # the problem made by _refusal


def _refuse_truncated_body() -> None:
    if request.is_json and request.content_length != 0:
        raw = request.get_data(cache=True)
        _refuse_truncated(raw, current_app.config.get("MAX_CONTENT_LENGTH"))


def _refuse_oversized_head() -> None:
    """Request lines and headers past gunicorn's default limits, refused as problem+json
    (gunicorn, set to larger limits, would answer text/html)."""
    uri = request.environ.get("RAW_URI") or request.full_path.removesuffix("?")
    line = len(request.method) + len(uri) + len(request.environ.get("SERVER_PROTOCOL", "")) + 2
    if line > MAX_REQUEST_LINE:
        raise ApiProblem(
            414,
            "URI too long",
            f"the request line is {line} bytes; at most {MAX_REQUEST_LINE} are allowed",
            "uri-too-long",
        )
    if len(request.headers) > MAX_HEADER_FIELDS:
        raise ApiProblem(
            431,
            "Request header fields too large",
            f"the request has {len(request.headers)} header fields; at most "
            f"{MAX_HEADER_FIELDS} are allowed",
            "request-header-fields-too-large",
        )
    for name, value in request.headers.items():
        if len(name) + len(value) + 2 > MAX_HEADER_FIELD:
            raise ApiProblem(
                431,
                "Request header fields too large",
                f"the header {name[:64]!r} is {len(name) + len(value) + 2} bytes; at most "
                f"{MAX_HEADER_FIELD} are allowed",
                "request-header-fields-too-large",
            )


def _refuse_truncated(raw: bytes, limit: int | None) -> None:
    """A body sent without Content-Length (chunked) is read up to the limit and cut there
    without a word (Werkzeug); if the client had more to send, it is a 413, not JSON that
    breaks off halfway."""
    at_limit = request.content_length is None and limit is not None and len(raw) >= limit
    if at_limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
