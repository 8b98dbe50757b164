"""Points expiry: when a lot expires, which lots have expired at ``now``, and which
warnings are due before an expiry. Pure: lots and times in, decisions out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from service.core.durations import format_duration
from service.core.ledger import Lot, fifo_order
from service.core.programme import PointsPolicy


def lot_expiry(policy: PointsPolicy, earned_at: datetime) -> datetime | None:
    """When points earned at ``earned_at`` expire; None: never.

    Rolling: ``expire_after`` past the earn. Fixed (``fixed_expiry``): when the first
    fixed day on or after the earn (plus ``expire_after``, when given) ends, in the
    programme's zone.
    """
    if policy.fixed_expiry is None:
        return earned_at + policy.expire_after if policy.expire_after else None
    start = earned_at + (policy.expire_after or timedelta(0))
    return next_day_end(policy.fixed_expiry, policy.expiry_timezone, start)


def next_day_end(month_day: tuple[int, int], zone: str, start: datetime) -> datetime:
    """The first end of the yearly day ``month_day`` (local to ``zone``) after ``start``."""
    local_year = start.astimezone(ZoneInfo(zone)).year
    for year in (local_year, local_year + 1):
        end = day_end(year, month_day, zone)
        if end > start:
            return end
    raise AssertionError("a yearly day always ends within two years")  # pragma: no cover


def day_end(year: int, month_day: tuple[int, int], zone: str) -> datetime:
    """Midnight after the day; 29 February is the 28th in common years."""
    month, day = month_day
    if (month, day) == (2, 29) and not _leap(year):
        day = 28
    following = date(year, month, day) + timedelta(days=1)
    return datetime.combine(following, time(0), tzinfo=ZoneInfo(zone))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def expired_lots(lots: Sequence[Lot], now: datetime) -> list[Lot]:
    """Lots with points left whose expiry has come, in FIFO order (soonest expiry first)."""
    due = [
        lot
        for lot in lots
        if lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= now
    ]
    return fifo_order(due)


@dataclass(frozen=True, slots=True)
class ExpiryWarning:
    """Points of one member that expire on one day, announced ``horizon`` ahead."""

    expires_on: date  # local to the programme's zone
    expires_at: datetime  # the earliest lot expiry on that day
    points: int
    horizon: timedelta

    @property
    def dedupe_key(self) -> str:
        """Once per expiry day per warning horizon."""
        whole_days = self.horizon % timedelta(days=1) == timedelta(0)
        span = f"{self.horizon.days}d" if whole_days else format_duration(self.horizon)
        return f"points-expiring:{self.expires_on.isoformat()}:{span}"


def warnings_due(
    lots: Sequence[Lot], horizons: Sequence[timedelta], now: datetime, zone: str
) -> list[ExpiryWarning]:
    """One warning per expiry day within the widest horizon, at the narrowest horizon that
    already covers it: a job that first looks 5 days ahead of an expiry sends the 7-day
    warning, never the 30-day one as well."""
    if not horizons:
        return []
    widest = max(horizons)
    by_day: dict[date, list[Lot]] = defaultdict(list)
    for lot in lots:
        at = lot.expires_at
        if lot.remaining > 0 and at is not None and now < at <= now + widest:
            by_day[at.astimezone(ZoneInfo(zone)).date()].append(lot)
    warnings = []
    for day, day_lots in sorted(by_day.items()):
        earliest = min(lot.expires_at for lot in day_lots if lot.expires_at is not None)
        horizon = min(h for h in horizons if earliest - now <= h)
        points = sum(lot.remaining for lot in day_lots)
        warnings.append(ExpiryWarning(day, earliest, points, horizon))
    return warnings
