"""What a public HTTP edge needs beyond auth: per-key rate limits, failed
authentication throttled per client address, CORS only for listed origins, and request
lines and headers within bounds (answered here as
problem+json, below the larger limits gunicorn enforces itself in service/gunicorn_conf.py).
What a JSON body may hold is checked where it is read (service.api.request_body).

The rate limit is a token bucket per API key *in each gunicorn worker*: a key may send
LOYALTY_RATE_LIMIT requests per period to every worker, so the whole service lets through
up to (workers x nodes) times that. It holds back a runaway client cheaply, with no
shared store; a strict global quota belongs in the load balancer or API gateway. The same
limiter gives each client address (as the worker sees it: behind a proxy, the proxy's) a
bucket of LOYALTY_AUTH_FAILURE_LIMIT for requests without a valid key, so a flood of
guesses is cut short; requests with a valid key never draw on it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from itertools import islice

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from service.api.auth import authenticate
from service.api.problems import ApiProblem, problem
from service.settings import Settings, parse_rate_limit

CORS_HEADERS = "Authorization, Content-Type, X-Request-ID"
CORS_EXPOSED = "X-Request-ID, Retry-After"
CORS_MAX_AGE_S = 600
MAX_BUCKETS = 10_000  # past this, buckets back to full are forgotten (they are as new)
# gunicorn's default limits, enforced here so that the answer is problem+json; gunicorn
# itself is set to twice these (service/gunicorn_conf.py) and answers text/html beyond.
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD = 8190


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

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.capacity


class RateLimiter:
    """`count` requests per `period` seconds for each key, with bursts up to `count`;
    a key may carry a limit of its own (`limit`, fixed at its first request)."""

    def __init__(
        self,
        count: int,
        period: float,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.count, self.period, self._clock = count, period, clock
        self._max_buckets = max_buckets
        self._buckets: dict[Hashable, TokenBucket] = {}
        self._lock = threading.Lock()

    def wait(self, key: Hashable, limit: tuple[int, float] | None = None) -> float:
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_buckets:
                    self._forget(now)
                count, period = limit or (self.count, self.period)
                bucket = self._buckets[key] = TokenBucket(count, count / period, now)
            return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget(self, now: float) -> None:
        """Drop every bucket that has refilled (a new one would be the same); if too
        many are still busy (many addresses at once), drop the oldest half of them."""
        for key in [k for k, bucket in self._buckets.items() if bucket.full(now)]:
            del self._buckets[key]
        if len(self._buckets) >= self._max_buckets // 2:
            for key in list(islice(self._buckets, len(self._buckets) // 2)):
                del self._buckets[key]


def init_app(app: Flask, settings: Settings) -> None:
    per_key = parse_rate_limit(settings.rate_limit)
    per_address = parse_rate_limit(settings.auth_failure_limit, "LOYALTY_AUTH_FAILURE_LIMIT")
    limits = per_key or per_address
    limiter = RateLimiter(*limits) if limits is not None else None

    @app.before_request
    def _harden() -> Response | None:
        _refuse_oversized_head()
        if limiter is not None:
            refused = _rate_limited(limiter, per_key, per_address)
            if refused is not None:
                return refused
        if request.is_json and request.content_length != 0:
            raw = request.get_data(cache=True)
            _refuse_truncated(raw, current_app.config.get("MAX_CONTENT_LENGTH"))
        return None

    if settings.cors_origins:
        origins = frozenset(settings.cors_origins)

        @app.after_request
        def _cors(response: Response) -> Response:
            return _allow_origin(response, origins)


def _rate_limited(
    limiter: RateLimiter,
    per_key: tuple[int, float] | None,
    per_address: tuple[int, float] | None,
) -> Response | None:
    view = current_app.view_functions.get(request.endpoint or "")
    if request.method == "OPTIONS" or getattr(view, "required_scope", None) is None:
        return None  # health, metrics and the document are not per-key
    keys = current_app.extensions["loyalty"].settings.api_keys
    key = authenticate(keys, request.headers.get("Authorization"))
    if key is None:  # the view would answer 401: the address pays, not a key
        bucket: Hashable = ("failed-auth", request.remote_addr)
        limit, who = per_address, "requests without a valid key from this address"
    else:
        bucket, limit, who = key, per_key, "this key's requests"
    if limit is None:
        return None
    wait = limiter.wait(bucket, limit)
    if wait == 0:
        return None
    count, period = limit
    retry_after = max(1, math.ceil(wait))
    response = problem(
        429,
        "Too many requests",
        f"{who} may come {count} per {period:g} s to each worker; retry in {retry_after} s",
        "rate-limited",
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


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
