"""What a public HTTP edge needs beyond auth: per-key rate limits, failed
authentication throttled per client address, CORS only for listed origins, and request
lines and headers within bounds (answered here as
problem+json, below the larger limits gunicorn enforces itself in service/gunicorn_conf.py).
What a JSON body may hold is checked where it is read (service.api.request_body).

The rate limits: LOYALTY_RATE_LIMIT requests per period for each API key, and
LOYALTY_AUTH_FAILURE_LIMIT for each client address (as the worker sees it: behind a proxy,
the proxy's) for requests without a valid key, so a flood of guesses is cut short;
requests with a valid key never draw on the address's limit. They count where
LOYALTY_RATE_LIMIT_STORAGE says. `memory://` (the default): a token bucket per key in
each gunicorn worker, so the whole service lets through up to (workers x nodes) times a
limit; it holds back a runaway client cheaply, with no shared store. A shared store
(`redis://HOST:6379/0`): the limits library's moving window there, one limit for every
worker and instance; while that store fails, each worker's own buckets stand in.

Why not limits' (or flask-limiter's) in-memory storage for the default: it starts a
timer thread every 10 ms under load to expire entries, which made POST /v1/events
0.3-0.6 ms of CPU and more of wall time slower per event (bench.profile, interleaved
runs); flask-limiter's per-request work cost ~1.1 M instructions more per event
(callgrind, +12 %). CORS is flask-cors's.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from itertools import islice

from flask import Flask, Response, current_app, request
from flask_cors import CORS
from limits import RateLimitItem, parse
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import RequestEntityTooLarge

from service.api.auth import authenticate
from service.api.problems import ApiProblem, problem
from service.clock import system_clock
from service.settings import Settings, SettingsError, parse_rate_limit

CORS_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]
CORS_EXPOSED = ["X-Request-ID", "Retry-After"]
CORS_METHODS = ["GET", "POST", "DELETE"]  # every method a route of the API answers
CORS_MAX_AGE_S = 600
# gunicorn's default limits, enforced here so that the answer is problem+json; gunicorn
# itself is set to twice these (service/gunicorn_conf.py) and answers text/html beyond.
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD = 8190
STORAGE_RETRY_S = 5.0  # after a shared store failed, count in memory this long
MAX_BUCKETS = 10_000  # past this, buckets back to full are forgotten (they are as new)

log = logging.getLogger("loyalty.api")


def init_app(app: Flask, settings: Settings) -> None:
    app.before_request(_refuse_oversized_head)
    limits = RateLimits.of(settings)
    if limits is not None:
        app.before_request(limits.refuse_over_limit)  # after the head, before the body
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


class RateLimits:
    """The per-key and per-address limits of the settings: a token bucket per key in this
    worker (memory://), or the limits library's moving window in a shared store, with
    this worker's buckets standing in while that store fails."""

    def __init__(
        self,
        per_key: tuple[int, float] | None,
        per_address: tuple[int, float] | None,
        storage_url: str,
    ) -> None:
        self._per_key, self._per_address = per_key, per_address
        self._local = RateLimiter(*(per_key or per_address or (1, 1.0)))
        self._shared: MovingWindowRateLimiter | None = None
        self._items = {limit: _item(limit) for limit in (per_key, per_address) if limit}
        self._shared_again_at = 0.0  # monotonic; after a failure the local buckets stand in
        if storage_url.startswith("memory://"):
            return
        try:
            storage = storage_from_string(storage_url, wrap_exceptions=True)
        except ConfigurationError as error:  # an unknown scheme, or its client missing
            # Named by its scheme only: the URL may hold a password.
            scheme = storage_url.partition("://")[0]
            detail = str(error).replace(storage_url, f"{scheme}://...")
            raise SettingsError(f"LOYALTY_RATE_LIMIT_STORAGE: {detail}") from None
        self._shared = MovingWindowRateLimiter(storage)

    @classmethod
    def of(cls, settings: Settings) -> RateLimits | None:
        """None when both limits are off."""
        per_key = parse_rate_limit(settings.rate_limit)
        per_address = parse_rate_limit(settings.auth_failure_limit, "LOYALTY_AUTH_FAILURE_LIMIT")
        if per_key is None and per_address is None:
            return None
        return cls(per_key, per_address, settings.rate_limit_storage)

    def refuse_over_limit(self) -> Response | None:
        view = current_app.view_functions.get(request.endpoint or "")
        if request.method == "OPTIONS" or getattr(view, "required_scope", None) is None:
            return None  # health, metrics and the document are not per-key
        keys = current_app.extensions["loyalty"].settings.api_keys
        key = authenticate(keys, request.headers.get("Authorization"))
        if key is None:  # the view would answer 401: the address pays, not a key
            limit, who = self._per_address, "requests without a valid key from this address"
            counted = ("failed-auth", request.remote_addr or "unknown")
        else:
            limit, who = self._per_key, "this key's requests"
            counted = ("api-key", key.secret)
        if limit is None:
            return None
        wait = self._wait(limit, counted)
        if wait == 0:
            return None
        count, period = limit
        retry_after = max(1, math.ceil(wait))
        where = "" if self._shared is not None else " to each worker"
        response = problem(
            429,
            "Too many requests",
            f"{who} may come {count} per {period:g} s{where}; retry in {retry_after} s",
            "rate-limited",
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    def _wait(self, limit: tuple[int, float], counted: tuple[str, str]) -> float:
        """0.0 when the request may pass; else the seconds until it may."""
        if self._shared is not None and time.monotonic() >= self._shared_again_at:
            item, (kind, who) = self._items[limit], counted
            # A digest: what a shared store holds for a key, never the secret itself.
            stored = ("loyalty", kind, hashlib.sha256(who.encode()).hexdigest())
            try:
                if self._shared.hit(item, *stored):
                    return 0.0
                reset = self._shared.get_window_stats(item, *stored).reset_time
                # limits counts on the system's wall clock, whatever the services' clock
                return max(reset - system_clock().timestamp(), 0.001)
            except StorageError as error:
                log.warning("rate limit storage failed, each worker counts alone: %s", error)
                self._shared_again_at = time.monotonic() + STORAGE_RETRY_S
        return self._local.wait(counted, limit)


def _item(limit: tuple[int, float]) -> RateLimitItem:
    count, period = limit
    return parse(f"{count} per {period:g} second")


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
