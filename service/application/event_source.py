"""Recorded events for replays: JSON Lines files (as POST /v1/events takes them) or the
payloads the service stored, turned into core Events one at a time.

Replays read a million events, so a payload in the canonical shape (every stored payload,
and any file exported from them) is converted directly, checked against the same field
lists as the event contract; anything else goes through the contract itself
(service.event_schema.parse_event), which accepts it exactly as the API would or says why
not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError

from service.core.events import Event, LineItem, Profile
from service.event_schema import (
    INTERNAL_SCHEMAS,
    SCHEMAS,
    ItemSchema,
    ProfileSchema,
    error_text,
    parse_event,
)

_ALL_SCHEMAS = {**SCHEMAS, **INTERNAL_SCHEMAS}
_ALLOWED = {kind: frozenset(schema.fields) for kind, schema in _ALL_SCHEMAS.items()}
_REQUIRED = {
    kind: frozenset(name for name, f in schema.fields.items() if f.required)
    for kind, schema in _ALL_SCHEMAS.items()
}
_ITEM_KEYS = frozenset(ItemSchema().fields)
_PROFILE_KEYS = frozenset(ProfileSchema().fields)
_TEXT_FIELDS = ("order_id", "channel", "store_id", "referrer_id", "code", "kind")


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry that is not a valid event: where it was and why."""

    where: str
    reason: str


class _Irregular(Exception):
    """Not in the canonical shape: the full contract decides."""


def event_from_json(payload: Any) -> Event:
    """An event from its JSON payload; raises ValidationError as parse_event does."""
    try:
        return _canonical(payload)
    except (_Irregular, KeyError, TypeError, ValueError, ArithmeticError):
        return parse_event(payload, internal=True)


def events_from_payloads(
    payloads: Iterable[tuple[str, Any]],
) -> Iterator[Event | Skipped]:
    """(where, payload) pairs -> events, or Skipped for the ones the contract refuses."""
    for where, payload in payloads:
        yield event_or_skipped(where, payload)


def event_or_skipped(where: str, payload: Any) -> Event | Skipped:
    try:
        return event_from_json(payload)
    except ValidationError as error:
        return Skipped(where, error_text(error.messages))


def read_event_lines(path: str | Path) -> Iterator[tuple[str, Any]]:
    """A JSON Lines file, streamed: (file:line, parsed JSON) for every non-blank line."""
    name = str(path)
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                payload = json.loads(line)
            except ValueError as error:
                payload = _Unreadable(str(error))
            yield f"{name}:{number}", payload


_CUSTOMER_KEY = b'"customer_id"'
_CUSTOMER = re.compile(rb'"customer_id"\s*:\s*"([^"\\]*)"')


def customer_of_line(line: bytes) -> str | None:
    """A JSON Lines entry's customer_id, read without parsing the line, when that is
    certain (the key appears once, unescaped, with a plain string value); None when only
    parsing can tell."""
    if line.count(_CUSTOMER_KEY) != 1:
        return None
    found = _CUSTOMER.search(line)
    if found is None or line[found.start() - 1 : found.start()] == b"\\":
        return None
    try:
        return found.group(1).decode()
    except UnicodeDecodeError:
        return None


def read_lines_of(
    path: str | Path, wanted: Callable[[str | None], bool]
) -> Iterator[tuple[int, str, Any]]:
    """(line number, file:line, parsed JSON) of the lines whose customer_id is ``wanted``
    (None: a line that names no customer). Other lines cost a look, not a parse."""
    name = str(path)
    with open(path, "rb") as lines:
        for number, raw in enumerate(lines, start=1):
            customer = customer_of_line(raw)
            if customer is not None and not wanted(customer):
                continue
            if not raw.strip():
                continue
            try:
                payload = json.loads(raw.decode())
            except ValueError as error:  # UnicodeDecodeError is one
                payload = _Unreadable(str(error))
            if customer is None:
                named = payload.get("customer_id") if type(payload) is dict else None
                if not wanted(named if type(named) is str else None):
                    continue
            yield number, f"{name}:{number}", payload


def count_lines(path: str | Path) -> int:
    """Lines in a file, fast (for progress): counts newlines in 1 MiB blocks."""
    total, last = 0, b"\n"
    with open(path, "rb") as data:
        while block := data.read(1 << 20):
            total += block.count(b"\n")
            last = block[-1:]
    return total + (0 if last == b"\n" else 1)


class _Unreadable(dict[str, Any]):
    """A line that is not JSON; parse_event refuses it with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def _canonical(payload: Any) -> Event:
    if isinstance(payload, _Unreadable):
        raise ValidationError({"_schema": [f"not JSON: {payload.reason}"]})
    if type(payload) is not dict:
        raise _Irregular
    kind = payload["type"]
    allowed = _ALLOWED[kind]
    if not allowed.issuperset(payload) or not _REQUIRED[kind].issubset(payload):
        raise _Irregular
    occurred_at = datetime.fromisoformat(_text(payload["occurred_at"]))
    if occurred_at.tzinfo is None:
        raise _Irregular
    values: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        if name in payload:
            values[name] = _text(payload[name])
    if "amount" in payload:
        values["amount"] = _number(payload["amount"])
    if "items" in payload:
        values["items"] = tuple(_item(item) for item in payload["items"])
    if "attributes" in payload:
        values["attributes"] = {str(k): _attribute(v) for k, v in payload["attributes"].items()}
    if "profile" in payload:
        values["profile"] = _profile(payload["profile"])
    return Event(
        event_id=_text(payload["event_id"]),
        type=kind,
        customer_id=_text(payload["customer_id"]),
        occurred_at=occurred_at,
        **values,
    )


def _text(value: Any) -> str:
    if type(value) is not str or not value:
        raise _Irregular
    return value


def _number(value: Any) -> Decimal:
    if type(value) not in (str, int, float):
        raise _Irregular
    number = Decimal(str(value))
    if not number.is_finite() or number < 0:
        raise _Irregular
    return number


def _flag(value: Any) -> bool:
    if type(value) is not bool:
        raise _Irregular
    return value


def _item(raw: Any) -> LineItem:
    if type(raw) is not dict or not _ITEM_KEYS.issuperset(raw) or "sku" not in raw:
        raise _Irregular
    return LineItem(
        sku=_text(raw["sku"]),
        category=_text(raw["category"]) if "category" in raw else None,
        quantity=_number(raw.get("quantity", 1)),
        price=_number(raw.get("price", 0)),
        discounted=_flag(raw.get("discounted", False)),
        paid_with_points=_flag(raw.get("paid_with_points", False)),
    )


def _attribute(value: Any) -> str | Decimal | bool:
    if type(value) in (str, bool):
        return value  # type: ignore[no-any-return]
    if type(value) in (int, float):
        return Decimal(str(value))
    raise _Irregular


def _profile(raw: Any) -> Profile:
    if type(raw) is not dict or not _PROFILE_KEYS.issuperset(raw):
        raise _Irregular
    timezone = raw.get("timezone")
    if timezone is not None:
        _zone(_text(timezone))
    tags = raw.get("tags")
    return Profile(
        birthday=date.fromisoformat(_text(raw["birthday"])) if "birthday" in raw else None,
        timezone=timezone,
        email=_text(raw["email"]) if "email" in raw else None,
        phone=_text(raw["phone"]) if "phone" in raw else None,
        tags=tuple(_text(t) for t in tags) if tags is not None else None,
    )


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
