"""JSON in and out: numbers become Decimal on the way in, never float."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from flask.json.provider import DefaultJSONProvider


class DecimalJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return json.loads(s, parse_float=Decimal, parse_constant=_refuse_constant, **kwargs)

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return format(o, "f")
        return DefaultJSONProvider.default(o)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")
