"""What any JSON value the service takes in may hold, whatever it came from (a request
body, a rule file's case, a replayed file): text without a NUL or a lone surrogate
(PostgreSQL's text and jsonb hold neither) and numbers of bounded digits and exponent.
`content_errors` names every place at fault, shaped like marshmallow's messages.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

# Numbers anywhere in a body: Python's decimal precision (so no arithmetic rounds them)
# and an exponent a person could mean; `1e999999` would be stored as a million digits.
MAX_DIGITS = 28
MAX_EXPONENT = 30
INTEGER_BOUND: int = 10**MAX_DIGITS
MAX_NESTING = 64  # as for request bodies (service.api.json_provider.MAX_DEPTH)
BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
NUL_MESSAGE = "must not contain the NUL character (U+0000)"
SURROGATE_MESSAGE = "must not contain a lone surrogate (U+D800 to U+DFFF): send valid Unicode"
NUMBER_MESSAGE = (
    f"must have at most {MAX_DIGITS} significant digits and an exponent between "
    f"-{MAX_EXPONENT} and {MAX_EXPONENT}"
)


def number_in_bounds(number: int | Decimal) -> bool:
    if isinstance(number, int):
        return abs(number) < INTEGER_BOUND
    _, digits, exponent = number.as_tuple()
    return (
        isinstance(exponent, int)
        and len(digits) <= MAX_DIGITS
        and -MAX_EXPONENT <= exponent <= MAX_EXPONENT
    )


def content_errors(value: Any) -> Any:
    """Marshmallow-shaped messages for every string or key holding a NUL or a lone
    surrogate and every number out of bounds, anywhere in a JSON value; None if clean."""
    return None if _surely_clean(value) else _walk(value, 0)


def _surely_clean(value: Any) -> bool:
    """The common case, about five times faster than the walk that names the fields:
    True only if nothing is wrong; False means "walk it", not "wrong"."""
    try:
        return _clean(value)
    except RecursionError:  # deep input from a file: the walk has its own bound
        return False


def _clean(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or BAD_TEXT.search(value) is None)
    if kind is dict:
        return all(
            (type(key) is not str or _clean(key)) and _clean(inner) for key, inner in value.items()
        )
    if kind is list:
        return all(map(_clean, value))
    if kind is int or kind is Decimal:
        return number_in_bounds(value)
    return value is None or kind is bool or kind is float


def _walk(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        found = BAD_TEXT.search(value)
        if found is None:
            return None
        return [NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE]
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return None if number_in_bounds(value) else [NUMBER_MESSAGE]
    if depth >= MAX_NESTING and isinstance(value, (dict, list)):
        return [f"nests more than {MAX_NESTING} levels deep"]  # the walk's own bound
    if isinstance(value, dict):
        errors = {}
        for key, inner in value.items():
            bad_key = _walk(key, depth) if isinstance(key, str) else None
            error = bad_key or _walk(inner, depth + 1)
            if error:
                errors[printable(key) if bad_key else key] = error
        return errors or None
    if isinstance(value, list):
        items = {i: e for i, item in enumerate(value) if (e := _walk(item, depth + 1))}
        return items or None
    return None


def printable(text: str) -> str:
    """A key as it can be shown: NUL and lone surrogates written as \\uXXXX escapes."""
    return BAD_TEXT.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
