"""Time-based campaigns: birthdays, enrolment anniversaries and lapses (win-back).

The job finds the members each trigger concerns, in each member's time zone, and applies
one internal ``schedule`` event per member per occurrence through apply_event, the same
path as any event: the same evaluation, one transaction, idempotent on a deterministic
event id (``schedule:birthday:<member>:<year>``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from service.application.apply_event import apply_event
from service.application.jobs.context import JobContext
from service.application.ports import MemberRecord
from service.core.errors import EventConflict
from service.core.events import Event
from service.core.schedules import (
    ANNIVERSARY,
    BIRTHDAY,
    INACTIVE,
    Occurrence,
    lapse_occurrences,
    scheduled_kinds,
    yearly_occurrence,
)

CATCH_UP = timedelta(days=1)  # a birthday the job missed yesterday still counts today
MAX_EVENT_ID = 128


def run_schedules(ctx: JobContext, now: datetime) -> dict[str, int]:
    rules = ctx.rules()
    programme = rules.ruleset.programme
    kinds = scheduled_kinds(rules.ruleset.campaigns, now)
    found: list[tuple[str, Occurrence]] = []
    with ctx.uow() as uow:
        store = uow.store
        months = sorted({(now + timedelta(days=d)).month for d in range(-3, 2)})
        if BIRTHDAY in kinds:
            for member in store.members_born_in(months):
                assert member.birthday is not None
                occurrence = yearly_occurrence(
                    BIRTHDAY,
                    member.birthday,
                    _zone(member, programme.timezone),
                    now,
                    CATCH_UP,
                    since=member.first_seen_at,
                )
                if occurrence is not None:
                    found.append((member.customer_id, occurrence))
        if ANNIVERSARY in kinds:
            for member in store.members_enrolled_in(months, now - timedelta(days=364)):
                assert member.enrolled_at is not None
                zone = _zone(member, programme.timezone)
                origin = member.enrolled_at.astimezone(ZoneInfo(zone)).date()
                occurrence = yearly_occurrence(ANNIVERSARY, origin, zone, now, CATCH_UP)
                if occurrence is not None:
                    found.append((member.customer_id, occurrence))
        thresholds = kinds.get(INACTIVE)
        if thresholds:
            for member in store.members_lapsed_since(now - timedelta(days=min(thresholds))):
                assert member.last_purchase_at is not None
                zone = _zone(member, programme.timezone)
                for occurrence in lapse_occurrences(member.last_purchase_at, thresholds, zone, now):
                    found.append((member.customer_id, occurrence))
        ids = {event_id(customer_id, o): (customer_id, o) for customer_id, o in found}
        recorded = store.recorded_events(ids)
    counts: Counter[str] = Counter()
    for schedule_id, (customer_id, occurrence) in sorted(ids.items()):
        if schedule_id in recorded:
            counts["already"] += 1
            continue
        event = Event(schedule_id, "schedule", customer_id, occurrence.at, kind=occurrence.kind)
        try:
            outcome = apply_event(ctx.uow, rules, event, ctx.clock)
        except EventConflict:  # the same occurrence, built a day apart by another scheduler
            counts["already"] += 1
            continue
        counts[occurrence.kind if outcome.status == "applied" else "already"] += 1
        counts["effects"] += len(outcome.evaluation.effects) if outcome.evaluation else 0
    return dict(counts)


def event_id(customer_id: str, occurrence: Occurrence) -> str:
    """``schedule:<kind>:<member>:<key>``, hashed when a long member id would not fit."""
    plain = f"schedule:{occurrence.kind}:{customer_id}:{occurrence.key}"
    if len(plain) <= MAX_EVENT_ID:
        return plain
    return f"schedule:{occurrence.kind}:{hashlib.sha256(plain.encode()).hexdigest()}"


def _zone(member: MemberRecord, default: str) -> str:
    return member.timezone or default
