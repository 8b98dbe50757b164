"""Bearer API keys with scopes."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request

from service.api.problems import ApiProblem
from service.settings import ApiKey

F = TypeVar("F", bound=Callable[..., Any])


def authenticate(keys: tuple[ApiKey, ...], header: str | None) -> ApiKey | None:
    if not header or not header.startswith("Bearer "):
        return None
    presented = header.removeprefix("Bearer ").strip().encode()
    found = None
    for key in keys:
        # Compare with every key, in constant time, so timing reveals nothing.
        if hmac.compare_digest(presented, key.secret.encode()):
            found = key
    return found


def require(scope: str) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            keys = current_app.extensions["loyalty"].settings.api_keys
            key = authenticate(keys, request.headers.get("Authorization"))
            if key is None:
                raise ApiProblem(
                    401,
                    "Unauthorized",
                    "send `Authorization: Bearer <key>`",
                    "unauthorized",
                )
            if not key.allows(scope):
                raise ApiProblem(
                    403, "Forbidden", f"this key lacks the {scope!r} scope", "forbidden"
                )
            g.api_key_name = key.name
            return view(*args, **kwargs)

        guarded.required_scope = scope  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def key_name() -> str:
    """The name of the key that made this request (in a view guarded by `require`): what
    the ledger and the erasure records say did it."""
    return str(g.api_key_name)


def require_also(scope: str) -> None:
    """In a view already guarded by `require`, for a request that asks for more than the
    route's own scope (a dry run with rule files in its body needs `admin`)."""
    keys = current_app.extensions["loyalty"].settings.api_keys
    key = authenticate(keys, request.headers.get("Authorization"))
    if key is None or not key.allows(scope):
        raise ApiProblem(403, "Forbidden", f"this key lacks the {scope!r} scope", "forbidden")
