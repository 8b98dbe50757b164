"""JSON in and out: numbers become Decimal on the way in, never float.

Bodies are read strictly, so that no request can crash a worker or smuggle text a
database cannot hold: UTF-8 only (no byte-order mark, no UTF-16 or UTF-32), nesting
bounded by a cheap scan *before* the recursive parser runs, and a key given twice in one
object refused instead of silently keeping the last value.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask.json.provider import DefaultJSONProvider

from service.strict_json import MAX_DEPTH, BodyRefused, strict_loads

__all__ = ["MAX_DEPTH", "BodyRefused", "DecimalJSONProvider", "strict_loads"]


class DecimalJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_loads(s, **kwargs)

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return format(o, "f")
        return DefaultJSONProvider.default(o)
