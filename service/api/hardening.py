"""What a public HTTP edge needs beyond auth: per-key rate limits, failed
authentication throttled per client address, CORS only for listed origins, and request
lines and headers within bounds (answered here as
problem+json, below the larger limits gunicorn enforces itself in service/gunicorn_conf.py).
What a JSON body may hold is checked where it is read (service.api.request_body).

The rate limits are the limits library's moving window (the storages and strategies
under flask-limiter, without its per-request machinery, which cost about 1 M instructions,
~10 % of an event): LOYALTY_RATE_LIMIT requests per period for each API key, and
LOYALTY_AUTH_FAILURE_LIMIT for each client address (as the worker sees it: behind a
proxy, the proxy's) for requests without a valid key, so a flood of guesses is cut short;
requests with a valid key never draw on the address's limit. They count in
LOYALTY_RATE_LIMIT_STORAGE: `memory://` counts in each gunicorn worker, so the whole
service lets through up to (workers x nodes) times a limit; a shared store
(`redis://HOST:6379/0`) makes it one limit for every worker and instance. While that
store cannot be reached, each worker counts on its own rather than failing requests.
CORS is flask-cors's.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from flask import Flask, Response, current_app, request
from flask_cors import CORS
from limits import RateLimitItem, parse
from limits.errors import ConfigurationError, StorageError
from limits.storage import MemoryStorage, storage_from_string
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
    """The per-key and per-address limits of the settings, in their storage."""

    def __init__(
        self, per_key: RateLimitItem | None, per_address: RateLimitItem | None, storage_url: str
    ) -> None:
        self._per_key, self._per_address = per_key, per_address
        try:
            storage = storage_from_string(storage_url, wrap_exceptions=True)
        except ConfigurationError as error:  # an unknown scheme, or its client missing
            # Named by its scheme only: the URL may hold a password.
            scheme = storage_url.partition("://")[0]
            detail = str(error).replace(storage_url, f"{scheme}://...")
            raise SettingsError(f"LOYALTY_RATE_LIMIT_STORAGE: {detail}") from None
        self._shared = not isinstance(storage, MemoryStorage)
        self._store = MovingWindowRateLimiter(storage)
        self._local = MovingWindowRateLimiter(MemoryStorage()) if self._shared else self._store
        self._store_again_at = 0.0  # monotonic; after a failure the local count stands in

    @classmethod
    def of(cls, settings: Settings) -> RateLimits | None:
        """None when both limits are off."""
        per_key = parse_rate_limit(settings.rate_limit)
        per_address = parse_rate_limit(settings.auth_failure_limit, "LOYALTY_AUTH_FAILURE_LIMIT")
        if per_key is None and per_address is None:
            return None
        return cls(_item(per_key), _item(per_address), settings.rate_limit_storage)

    def refuse_over_limit(self) -> Response | None:
        view = current_app.view_functions.get(request.endpoint or "")
        if request.method == "OPTIONS" or getattr(view, "required_scope", None) is None:
            return None  # health, metrics and the document are not per-key
        keys = current_app.extensions["loyalty"].settings.api_keys
        key = authenticate(keys, request.headers.get("Authorization"))
        if key is None:  # the view would answer 401: the address pays, not a key
            limit, who = self._per_address, "requests without a valid key from this address"
            counted = ("loyalty", "failed-auth", request.remote_addr or "unknown")
        else:  # a digest: what a shared store holds for a key, never the secret
            limit, who = self._per_key, "this key's requests"
            counted = ("loyalty", "api-key", hashlib.sha256(key.secret.encode()).hexdigest())
        if limit is None:
            return None
        reset = self._refused_until(limit, counted)
        if reset is None:
            return None
        # limits counts on the system's wall clock, whatever clock the services were given
        retry_after = max(1, math.ceil(reset - system_clock().timestamp()))
        where = "" if self._shared else " to each worker"
        response = problem(
            429,
            "Too many requests",
            f"{who} may come {limit.amount} per {limit.get_expiry()} s{where}; "
            f"retry in {retry_after} s",
            "rate-limited",
        )
        response.headers["Retry-After"] = str(retry_after)
        return response

    def _refused_until(self, limit: RateLimitItem, counted: tuple[str, ...]) -> float | None:
        """None when the request may pass; else when a place frees up (epoch seconds)."""
        store = self._store if time.monotonic() >= self._store_again_at else self._local
        try:
            return _count(store, limit, counted)
        except StorageError as error:
            if store is self._local:
                raise
            log.warning("rate limit storage failed, each worker counts alone: %s", error)
            self._store_again_at = time.monotonic() + STORAGE_RETRY_S
            return _count(self._local, limit, counted)


def _count(
    store: MovingWindowRateLimiter, limit: RateLimitItem, counted: tuple[str, ...]
) -> float | None:
    if store.hit(limit, *counted):
        return None
    return store.get_window_stats(limit, *counted).reset_time


def _item(limit: tuple[int, float] | None) -> RateLimitItem | None:
    return parse(f"{limit[0]} per {limit[1]:g} second") if limit is not None else None


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
