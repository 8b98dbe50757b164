"""Time-driven work: the jobs and when they run, and the dates time-based campaigns fire on.

Pure: job names, schedules, and the occurrences of birthdays, anniversaries and lapses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from service.core.conditions import AllOf, AnyOf, Compare, Condition
from service.core.programme import Campaign

JOB_NAMES = (
    "expire-points",
    "warn-expiry",
    "release-pending",
    "review-tiers",
    "expire-offers",
    "run-schedules",
    "dispatch-outbox",
)
# Every job is idempotent, so frequent runs cost little and catch up after an outage.
DEFAULT_EVERY = {
    "expire-points": timedelta(hours=1),
    "warn-expiry": timedelta(hours=1),
    "release-pending": timedelta(minutes=15),
    "review-tiers": timedelta(days=1),  # the programme's tiers.review.every, when it says
    "expire-offers": timedelta(hours=1),
    "run-schedules": timedelta(hours=1),
    "dispatch-outbox": timedelta(minutes=1),
}


@dataclass(frozen=True, slots=True)
class JobSchedule:
    """When a job runs: every ``every``, or on a five-field ``cron`` in the programme's zone."""

    job: str
    every: timedelta | None = None
    cron: str | None = None
    enabled: bool = True


def job_schedules(
    written: Iterable[JobSchedule], review_every: timedelta | None = None
) -> dict[str, JobSchedule]:
    """Every job's schedule: what program.yaml says, else the default."""
    defaults = dict(DEFAULT_EVERY)
    if review_every is not None:
        defaults["review-tiers"] = review_every
    found = {name: JobSchedule(name, every=every) for name, every in defaults.items()}
    found.update({schedule.job: schedule for schedule in written})
    return found


# -- time-based campaigns

BIRTHDAY, ANNIVERSARY, INACTIVE = "birthday", "anniversary", "inactive"
LAPSE_FIELD = "customer.days_since_last_purchase"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One firing of a time-based trigger for one member: the event's id part and time."""

    kind: str
    key: str  # unique per member and kind: the year, or the lapse and its threshold
    at: datetime


def scheduled_kinds(campaigns: Iterable[Campaign], now: datetime) -> dict[str, set[int]]:
    """Which schedule kinds the campaigns active at ``now`` listen for; for ``inactive``,
    the thresholds in days (``inactive_for: 60d`` -> 60)."""
    kinds: dict[str, set[int]] = {}
    for campaign in campaigns:
        if not campaign.is_active(now):
            continue
        for rule in campaign.rules:
            leaves = list(_leaves(rule.condition))
            if not any(leaf.path == "type" and leaf.value == "schedule" for leaf in leaves):
                continue
            for leaf in leaves:
                if leaf.path == "kind" and leaf.op == "eq":
                    kinds.setdefault(str(leaf.value), set())
            if INACTIVE in kinds:
                for leaf in leaves:
                    if leaf.path == LAPSE_FIELD and leaf.op in ("gte", "gt"):
                        kinds[INACTIVE].add(int(leaf.value) + (1 if leaf.op == "gt" else 0))
    return kinds


def _leaves(condition: Condition) -> Iterator[Compare]:
    if isinstance(condition, Compare):
        yield condition
    elif isinstance(condition, (AllOf, AnyOf)):
        for item in condition.items:
            yield from _leaves(item)


def yearly_day(month_day: date, year: int) -> date:
    """This year's date of a birthday or anniversary; 29 February is the 28th in common
    years (as ``local.is_birthday`` has it)."""
    if (month_day.month, month_day.day) == (2, 29) and not _leap(year):
        return date(year, 2, 28)
    return date(year, month_day.month, month_day.day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def yearly_occurrence(
    kind: str,
    origin: date,
    zone: str,
    now: datetime,
    catch_up: timedelta,
    since: datetime | None = None,
) -> Occurrence | None:
    """The birthday or anniversary whose local day has begun within ``catch_up`` of ``now``.

    The event happens at the start of that day in the member's zone. ``since``: nothing
    that happened before (a member is not greeted for a day before they joined).
    Anniversaries start a year after ``origin``.
    """
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    for year in (today.year, today.year - 1):
        if kind == ANNIVERSARY and year <= origin.year:
            continue
        day = yearly_day(origin, year)
        at = datetime.combine(day, time(0), tzinfo=tz)
        if at <= now and now - at < catch_up + timedelta(days=1):
            if since is not None and day < since.astimezone(tz).date():
                return None
            return Occurrence(kind, str(year), at)
    return None


def lapse_occurrences(
    last_purchase_at: datetime,
    thresholds: Iterable[int],
    zone: str,
    now: datetime,
) -> list[Occurrence]:
    """One occurrence per threshold the member's current lapse has reached.

    It happens when the threshold was crossed, or at the start of the member's day if that
    is later (a lapse found late still earns an offer with time to run). Stable through
    a day; the job skips occurrences whose event is already recorded.
    """
    tz = ZoneInfo(zone)
    day_start = datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)
    found = []
    for days in sorted(set(thresholds)):
        crossed = last_purchase_at + timedelta(days=days)
        if crossed > now:
            continue
        at = max(crossed, day_start)
        key = f"{last_purchase_at.astimezone(ZoneInfo('UTC')):%Y%m%dT%H%M%S}:{days}d"
        found.append(Occurrence(INACTIVE, key, min(at, now)))
    return found
