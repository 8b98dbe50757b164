"""JSON in and out: numbers become Decimal on the way in, never float."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask.json.provider import DefaultJSONProvider

from service.event_schema import load_json


class DecimalJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return load_json(s, **kwargs)

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return format(o, "f")
        return DefaultJSONProvider.default(o)
