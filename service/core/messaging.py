"""Messaging without spamming: frequency caps, quiet hours and staleness, decided purely.

Given a message, what the member was already sent and ``now``, say whether to send it
now, defer it (and until when), or drop it (suppress), always with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from service.core.durations import format_duration
from service.core.programme import MessageCap, MessagingPolicy

TRANSACTIONAL = "transactional"
SEND, DEFER, SUPPRESS = "send", "defer", "suppress"


@dataclass(frozen=True, slots=True)
class Pending:
    """The message being decided."""

    category: str
    channel: str
    urgent: bool = False
    stale_at: datetime | None = None  # deferred past this, it is dropped


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the member was already sent (or that is on its way)."""

    category: str
    channel: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # send | defer | suppress
    reason: str = ""
    at: datetime | None = None  # when to try again, for a deferral

    @classmethod
    def send(cls) -> Decision:
        return cls(SEND)


def applies(cap: MessageCap, category: str, channel: str) -> bool:
    """A cap naming no category counts every category but transactional; transactional
    messages answer only to caps that name them."""
    if cap.category is None:
        if category == TRANSACTIONAL:
            return False
    elif cap.category != category:
        return False
    return cap.channel is None or cap.channel == channel


def history_span(policy: MessagingPolicy) -> timedelta:
    """How far back decisions look: the longest cap, a day more for calendar caps."""
    return max((cap.per + timedelta(days=1) for cap in policy.caps), default=timedelta(0))


def decide(
    policy: MessagingPolicy,
    message: Pending,
    history: Sequence[Sent],
    now: datetime,
    zone: str,
) -> Decision:
    if message.stale_at is not None and now >= message.stale_at:
        return Decision(SUPPRESS, f"stale since {message.stale_at.isoformat()}")
    target, reasons = now, []
    for cap in policy.caps:
        if not applies(cap, message.category, message.channel):
            continue
        counted = [s.at for s in history if applies(cap, s.category, s.channel) and s.at <= now]
        allowed = cap_allows_at(cap, counted, now, zone)
        if allowed is not None and allowed > now:
            reasons.append(f"cap of {describe(cap)} reached")
            target = max(target, allowed)  # overlapping caps: the strictest wins
    urgent = message.urgent and message.category == TRANSACTIONAL
    if not urgent:
        quiet_end = quiet_hours_end(policy, target, zone)
        if quiet_end is not None:
            reasons.append(f"quiet hours {policy.quiet_from}-{policy.quiet_to} in {zone}")
            target = quiet_end
    if target <= now:
        return Decision.send()
    reason = "; ".join(reasons)
    if message.stale_at is not None and target > message.stale_at:
        return Decision(
            SUPPRESS,
            f"{reason}; dropped: it would be stale by {target.isoformat()} "
            f"(stale at {message.stale_at.isoformat()})",
        )
    return Decision(DEFER, f"{reason}; deferred to {target.isoformat()}", target)


def describe(cap: MessageCap) -> str:
    what = cap.category or "non-transactional"
    where = f" by {cap.channel}" if cap.channel else ""
    if cap.calendar:
        span = f"{cap.per.days} calendar day(s)"
    elif cap.per % timedelta(days=1) == timedelta(0):
        span = f"{cap.per.days}d"
    else:
        span = format_duration(cap.per)
    return f"{cap.max} {what} message(s){where} per {span}"


def cap_allows_at(
    cap: MessageCap, sent_at: Sequence[datetime], now: datetime, zone: str
) -> datetime | None:
    """When the cap next allows one more message; None if it allows one now."""
    if cap.calendar:
        return _calendar_allows_at(cap, sent_at, now, zone)
    recent = sorted(at for at in sent_at if at > now - cap.per)
    if len(recent) < cap.max:
        return None
    # The count falls below max once the oldest of the newest `max` leaves the window.
    return recent[len(recent) - cap.max] + cap.per


def _calendar_allows_at(
    cap: MessageCap, sent_at: Sequence[datetime], now: datetime, zone: str
) -> datetime | None:
    """Calendar caps count whole days in the member's zone: ``per: 1d`` is 'today'."""
    tz = ZoneInfo(zone)
    days = max(1, cap.per.days)
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=days - 1)
    recent = sorted(d for d in (at.astimezone(tz).date() for at in sent_at) if d >= first_day)
    if len(recent) < cap.max:
        return None
    reopens: date = recent[len(recent) - cap.max] + timedelta(days=days)
    return datetime.combine(reopens, time(0), tzinfo=tz)


def quiet_hours_end(policy: MessagingPolicy, at: datetime, zone: str) -> datetime | None:
    """If ``at`` falls in the member's quiet hours, when they end; else None."""
    if policy.quiet_from is None or policy.quiet_to is None:
        return None
    start, end = time.fromisoformat(policy.quiet_from), time.fromisoformat(policy.quiet_to)
    if start == end:
        return None
    tz = ZoneInfo(zone)
    local = at.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        quiet = start <= clock < end
        ends_on = local.date()
    else:  # across midnight, e.g. 21:00-09:00
        quiet = clock >= start or clock < end
        ends_on = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not quiet:
        return None
    return datetime.combine(ends_on, end, tzinfo=tz)
