"""Small typed readers shared by the programme and campaign parsers."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from service.core.durations import parse_duration
from service.rules.problems import Problems, kind_of


def read_int(problems: Problems, value: Any, line: int, what: str, minimum: int = 0) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(line, f"{what} must be a whole number, got {kind_of(value)}")
        return None
    if value < minimum:
        problems.add(line, f"{what} must be at least {minimum}, got {value}")
        return None
    return value


def read_decimal(
    problems: Problems, value: Any, line: int, what: str, positive: bool = False
) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        problems.add(line, f"{what} must be a number, got {kind_of(value)}")
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        problems.add(line, f"{what} must be a number, got {value!r}")
        return None
    if not number.is_finite() or number < 0 or (positive and number == 0):
        problems.add(line, f"{what} must be a {'positive' if positive else 'non-negative'} number")
        return None
    return number


def read_text(problems: Problems, value: Any, line: int, what: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.add(line, f"{what} must be text, got {kind_of(value)}")
        return None
    return value


def read_duration(problems: Problems, value: Any, line: int, what: str) -> timedelta | None:
    try:
        return parse_duration(value)
    except ValueError as error:
        problems.add(line, f"{what}: {error}")
        return None


def read_timezone(problems: Problems, value: Any, line: int, what: str) -> str | None:
    text = read_text(problems, value, line, what)
    if text is None:
        return None
    try:
        ZoneInfo(text)
    except (ValueError, KeyError, OSError):
        problems.add(line, f"{what}: {text!r} is not an IANA time zone such as Asia/Shanghai")
        return None
    return text


def read_moment(
    problems: Problems, value: Any, line: int, what: str, timezone: str, end_of_day: bool
) -> datetime | None:
    """A date means the start of that day in the programme's zone (the next day's start for
    an ``until`` date, so the whole day counts); a datetime must carry an offset."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            problems.add(line, f"{what}: give a UTC offset, e.g. 2026-12-01T00:00:00+08:00")
            return None
        return value
    if isinstance(value, date):
        day = value + timedelta(days=1) if end_of_day else value
        return datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone))
    problems.add(
        line, f"{what} must be a date (2026-12-01) or a time with offset, got {kind_of(value)}"
    )
    return None


def read_clock(problems: Problems, value: Any, line: int, what: str) -> str | None:
    text = value if isinstance(value, str) else None
    try:
        if text is None:
            raise ValueError
        time.fromisoformat(text)
    except ValueError:
        problems.add(line, f'{what} must be a time of day in quotes, such as "21:00"')
        return None
    return text
