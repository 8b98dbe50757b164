"""Ids in paths, checked by the URL converters of the routes before any lookup.

`<id:customer_id>` takes what a stored id can be (service.event_schema.ID; member ids
stored before URL_SAFE_ID held to this wider rule only), `<row_id:entry_id>` a BIGINT key.
Anything else is a 404 problem naming the path parameter, found by routing, so no view,
query or table sees it.
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter, IntegerConverter, Map, Rule

GOOD_ID = re.compile(r"[\x21-\x7e]{1,128}")  # fullmatch, so "id\n" is no id either
MAX_ROW_ID = 2**63 - 1
# In the document: what an id may hold, less "/", which no path segment can carry.
ID_SCHEMA = {"type": "string", "pattern": "^[\\x21-\\x2e\\x30-\\x7e]{1,128}$"}
ROW_ID_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID}


class UnknownPathId(NotFound):
    """An id no record can have: answered as problem+json by service.api.problems."""


class IdConverter(BaseConverter):
    def __init__(self, map: Map, *args: Any, name: str = "id", **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.name = name

    def to_python(self, value: str) -> str:
        if not GOOD_ID.fullmatch(value):
            raise UnknownPathId(
                f"nothing has this {self.name}: ids are 1 to 128 printable ASCII characters "
                "without spaces"
            )
        return value


class RowIdConverter(IntegerConverter):
    def __init__(self, map: Map, *args: Any, name: str = "id", **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.name = name

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ROW_ID:
            raise UnknownPathId(f"nothing has this {self.name}: row ids are BIGINT")
        return number


CONVERTERS = {"id": IdConverter, "row_id": RowIdConverter}


class NamedIdRule(Rule):
    """Hands each id converter the name of its path parameter, for the problem's text."""

    def get_converter(
        self, variable_name: str, converter_name: str, args: tuple[Any, ...], kwargs: Any
    ) -> BaseConverter:
        if converter_name in CONVERTERS:
            kwargs = {**kwargs, "name": variable_name}
        return super().get_converter(variable_name, converter_name, args, kwargs)
