"""Durations as rule files write them: ``30d``, ``12h``, ``90m``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, *, zero: bool = False) -> timedelta:
    """Parse ``<count><unit>``; raise ValueError naming the accepted form otherwise.
    ``zero`` admits a span of nothing (``0d``: no grace)."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; write a whole number and s, m, h, d or w, e.g. 30d"
        )
    count, unit = int(match.group(1)), match.group(2)
    if count <= 0 and not (zero and count == 0):
        raise ValueError(f"{text!r} must be longer than zero")
    return timedelta(seconds=count * _UNIT_SECONDS[unit])


def format_duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"
