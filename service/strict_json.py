"""Reading JSON as the service's contract reads it, at the HTTP edge and in bulk imports:
UTF-8 only, nesting bounded before parsing, each key once, numbers as Decimal, no NaN.
Framework-free, so every entry point reads bodies and lines the same way."""

from __future__ import annotations

import codecs
import json
import re
from decimal import Decimal
from itertools import accumulate
from typing import Any

# Far beyond any legitimate body (a batch is 4 levels deep: body, events, event, items),
# far below the parser's recursion limit (about 1,000 levels), where it would crash.
MAX_DEPTH = 64
# Integers longer than this are read as Decimal, so the limits on numbers can name the
# field instead of int() failing on a 4,300-digit string with a bare ValueError.
LONG_INTEGER = 40
BOMS = {  # UTF-32 LE first: its mark starts with UTF-16 LE's
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF8: "UTF-8",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}
# What is left of a JSON text once strings and everything but brackets are removed. A
# string is matched possessively and its closing quote is optional, so an unterminated
# string runs to the end in one step: the scan is linear in the size of the body.
NOT_A_BRACKET = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[^"\[\]{}]++', re.DOTALL)
NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}


class BodyRefused(ValueError):
    """A body refused before or while parsing, with the answer it deserves."""

    def __init__(self, status: int, slug: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail


def strict_loads(data: str | bytes | bytearray, **kwargs: Any) -> Any:
    text = utf8_text(data) if isinstance(data, (bytes, bytearray)) else data
    refuse_deep(text)
    return json.loads(
        text,
        parse_float=Decimal,
        parse_int=_integer,
        parse_constant=_refuse_constant,
        object_pairs_hook=_object_without_duplicates,
        **kwargs,
    )


def utf8_text(raw: bytes | bytearray) -> str:
    """The body as text, if it is UTF-8 without a byte-order mark; Python's own JSON
    reader would also take UTF-16 and UTF-32, and skip a BOM."""
    for bom, encoding in BOMS.items():
        if raw.startswith(bom):
            raise BodyRefused(
                415,
                "unsupported-encoding",
                "Unsupported encoding",
                f"the body starts with a {encoding} byte-order mark: send UTF-8 without one",
            )
    if b"\x00" in raw[:4]:  # how RFC 4627 tells UTF-16 and UTF-32 from UTF-8
        raise BodyRefused(
            415,
            "unsupported-encoding",
            "Unsupported encoding",
            "the body looks like UTF-16 or UTF-32: send UTF-8",
        )
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise BodyRefused(
            400,
            "malformed-json",
            "Malformed JSON",
            f"the body is not valid UTF-8: byte {raw[error.start]:#04x} at {error.start}",
        ) from None


def refuse_deep(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH without recursing: strip strings, count
    brackets (the running sum of +1 and -1 is the depth)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # cannot be deeper than the number of its openings
    brackets = NOT_A_BRACKET.sub("", text)
    deepest = max(accumulate(map(NESTING.__getitem__, brackets)), default=0)
    if deepest > MAX_DEPTH:
        raise BodyRefused(
            400,
            "too-deep",
            "JSON nested too deeply",
            f"the body nests arrays and objects {deepest} levels deep; at most "
            f"{MAX_DEPTH} are allowed",
        )


def _integer(text: str) -> int | Decimal:
    return int(text) if len(text) <= LONG_INTEGER else Decimal(text)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key if len(key) <= 64 else key[:64] + "..."
                raise BodyRefused(
                    400,
                    "duplicate-key",
                    "Duplicate key",
                    f"the key {shown!r} appears twice in one object",
                )
            seen.add(key)
    return found


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")
