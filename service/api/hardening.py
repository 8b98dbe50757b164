"""What a public HTTP edge needs beyond auth: per-key rate limits, CORS only for listed
origins, ids in paths checked before any lookup, and text without NUL characters.

The rate limit is a token bucket per API key *in each gunicorn worker*: a key may send
LOYALTY_RATE_LIMIT requests per period to every worker, so the whole service lets through
up to (workers x nodes) times that. It holds back a runaway client cheaply, with no
shared store; a strict global quota belongs in the load balancer or API gateway.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from service.api.auth import authenticate
from service.api.problems import ApiProblem, problem
from service.event_schema import nul_fields
from service.settings import Settings, parse_rate_limit

# Mirrors service.event_schema.ID; fullmatch, so a trailing newline is no id either.
GOOD_ID = re.compile(r"[\x21-\x7e]{1,128}")
CORS_HEADERS = "Authorization, Content-Type, X-Request-ID"
CORS_EXPOSED = "X-Request-ID, Retry-After"
CORS_MAX_AGE_S = 600
MAX_ROW_ID = 2**63 - 1  # numeric ids in paths are BIGINT keys
NUL_ESCAPE = b"\\u0000"  # the only way JSON text can carry U+0000


class TokenBucket:
    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, capacity: int, rate: float, now: float) -> None:
        self.capacity, self.rate, self.tokens, self.updated = capacity, rate, float(capacity), now

    def take(self, now: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there is."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """`count` requests per `period` seconds for each key, with bursts up to `count`."""

    def __init__(
        self, count: int, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.count, self.period, self._clock = count, period, clock
        self._buckets: dict[Any, TokenBucket] = {}
        self._lock = threading.Lock()

    def wait(self, key: Any) -> float:
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.count, self.count / self.period, now)
            return bucket.take(now)


def init_app(app: Flask, settings: Settings) -> None:
    rate = parse_rate_limit(settings.rate_limit)
    limiter = RateLimiter(*rate) if rate is not None else None
    app.extensions["loyalty_rate_limiter"] = limiter

    @app.before_request
    def _harden() -> Response | None:
        for name, value in (request.view_args or {}).items():
            if isinstance(value, str) and not GOOD_ID.fullmatch(value):
                raise ApiProblem(
                    404,
                    "Not found",
                    f"nothing has this {name}: ids are 1 to 128 printable ASCII characters "
                    "without spaces",
                    "not-found",
                )
            if isinstance(value, int) and not 0 <= value <= MAX_ROW_ID:
                raise ApiProblem(
                    404, "Not found", f"nothing has this {name}: row ids are BIGINT", "not-found"
                )
        if limiter is not None:
            refused = _rate_limited(limiter)
            if refused is not None:
                return refused
        if request.is_json and request.content_length != 0:
            raw = request.get_data(cache=True)
            _refuse_truncated(raw, current_app.config.get("MAX_CONTENT_LENGTH"))
            _refuse_nul(raw)
        return None

    if settings.cors_origins:
        origins = frozenset(settings.cors_origins)

        @app.after_request
        def _cors(response: Response) -> Response:
            return _allow_origin(response, origins)


def _rate_limited(limiter: RateLimiter) -> Response | None:
    view = current_app.view_functions.get(request.endpoint or "")
    if request.method == "OPTIONS" or getattr(view, "required_scope", None) is None:
        return None  # health, metrics and the document are not per-key
    keys = current_app.extensions["loyalty"].settings.api_keys
    key = authenticate(keys, request.headers.get("Authorization"))
    if key is None:
        return None  # the view answers 401
    wait = limiter.wait(key)
    if wait == 0:
        return None
    retry_after = max(1, math.ceil(wait))
    response = problem(
        429,
        "Too many requests",
        f"this key may send {limiter.count} requests per {limiter.period:g} s to each "
        f"worker; retry in {retry_after} s",
        "rate-limited",
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


def _refuse_truncated(raw: bytes, limit: int | None) -> None:
    """A body sent without Content-Length (chunked) is read up to the limit and cut there
    without a word (Werkzeug); if the client had more to send, it is a 413, not JSON that
    breaks off halfway."""
    at_limit = request.content_length is None and limit is not None and len(raw) >= limit
    if at_limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def _refuse_nul(raw: bytes) -> None:
    """PostgreSQL text cannot hold U+0000, so no database may get it: refuse it here, the
    same on every store, naming each field that carries one."""
    if NUL_ESCAPE not in raw:
        return
    errors = nul_fields(request.get_json(silent=True))
    if errors:
        raise ApiProblem(
            422,
            "Invalid request",
            "text must not contain the NUL character (U+0000)",
            "invalid-request",
            errors=errors,
        )


def _allow_origin(response: Response, origins: frozenset[str]) -> Response:
    origin = request.headers.get("Origin")
    if origin is None or ("*" not in origins and origin not in origins):
        return response  # no CORS headers: the browser refuses the answer
    response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
    response.vary.add("Origin")
    response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        allowed = response.headers.get("Allow", "")
        response.headers["Access-Control-Allow-Methods"] = allowed
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)
    return response
