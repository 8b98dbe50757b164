"""The clocks the composition roots hand to the use cases: the system's, or one moment.

Logic and storage never read the time themselves; they take it from the clock they are
given, so a job run ``--now T`` writes every time as T, as a test's fixed clock does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def system_clock() -> datetime:
    return datetime.now(UTC)


def fixed_clock(moment: datetime) -> Callable[[], datetime]:
    """A clock that always says ``moment`` (aware)."""
    if moment.tzinfo is None:
        raise ValueError("a clock's time must carry a UTC offset")
    return lambda: moment
