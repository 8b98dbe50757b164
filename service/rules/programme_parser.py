"""``rules/program.yaml``: the points policy, tiers, messaging and catalogues."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from service.core.events import EVENT_TYPES
from service.core.programme import PointsPolicy, Programme, TierLevel, TierPolicy
from service.rules.problems import Problems
from service.rules.programme_sections import (
    parse_messaging,
    parse_offers,
    parse_referrals,
    parse_rewards,
    parse_segments,
)
from service.rules.schedules_parser import parse_schedules
from service.rules.values import (
    read_decimal,
    read_duration,
    read_int,
    read_text,
    read_timezone,
)
from service.rules.yaml_source import LocatedDict, LocatedList

PROGRAMME_KEYS = (
    "programme",
    "currency",
    "timezone",
    "points",
    "tiers",
    "messaging",
    "offers",
    "rewards",
    "referrals",
    "segments",
    "schedules",
)
TIER_METRICS = ("spend", "points", "orders")


def parse_programme(document: Any, problems: Problems) -> Programme | None:
    root = problems.mapping(document, 1, "program.yaml")
    if root is None:
        return None
    problems.unknown_keys(root, PROGRAMME_KEYS, "the programme")
    if not problems.required(root, ("programme", "currency", "timezone"), "the programme"):
        return None
    name = read_text(problems, root["programme"], root.line_of("programme"), "programme")
    currency = read_text(problems, root["currency"], root.line_of("currency"), "currency")
    if currency is not None and (len(currency) != 3 or not currency.isalpha()):
        problems.add(
            root.line_of("currency"), f"currency {currency!r} is not an ISO 4217 code such as CNY"
        )
    timezone = read_timezone(problems, root["timezone"], root.line_of("timezone"), "timezone")
    points = _points(root, problems)
    tiers = _tiers(root, problems)
    extras: dict[str, object] = {"schedules": parse_schedules(root, problems, timezone)}
    messaging = parse_messaging(root, problems)
    offers = parse_offers(root, problems)
    rewards = parse_rewards(root, problems)
    referrals = parse_referrals(root, problems)
    rfm = parse_segments(root, problems)
    if name is None or currency is None or timezone is None:
        return None
    return Programme(
        id=name,
        currency=currency.upper(),
        timezone=timezone,
        points=points,
        tiers=tiers,
        offers=offers,
        rewards=rewards,
        referrals=referrals,
        rfm=rfm,
        messaging=messaging,
        extras=MappingProxyType(extras),
    )


def _points(root: LocatedDict, problems: Problems) -> PointsPolicy:
    if "points" not in root:
        return PointsPolicy()
    section = problems.mapping(root["points"], root.line_of("points"), "points")
    if section is None:
        return PointsPolicy()
    problems.unknown_keys(section, ("expiry", "pending", "value", "expected_breakage"), "points")
    expire_after = PointsPolicy().expire_after
    warn_before: tuple[timedelta, ...] = ()
    fixed_expiry: tuple[int, int] | None = None
    expiry = section.get("expiry")
    if expiry is not None:
        expiry_map = problems.mapping(expiry, section.line_of("expiry"), "points.expiry")
        if expiry_map is not None:
            problems.unknown_keys(expiry_map, ("after", "warn_before", "fixed"), "points.expiry")
            if "fixed" in expiry_map:
                line = expiry_map.line_of("fixed")
                fixed_expiry = _month_day(expiry_map["fixed"], line, problems)
                expire_after = None  # unless `after` says too: then the first fixed day after it
            if "after" in expiry_map:
                expire_after = read_duration(
                    problems,
                    expiry_map["after"],
                    expiry_map.line_of("after"),
                    "points.expiry.after",
                )
            warnings = expiry_map.get("warn_before", LocatedList())
            seq = problems.sequence(warnings, expiry_map.line_of("warn_before"), "warn_before")
            read = [
                read_duration(problems, w, expiry_map.line_of("warn_before"), "warn_before")
                for w in seq or []
            ]
            warn_before = tuple(sorted((w for w in read if w is not None), reverse=True))
    pending_for: tuple[str, ...] = ()
    pending_days = 0
    pending = section.get("pending")
    if pending is not None:
        pending_map = problems.mapping(pending, section.line_of("pending"), "points.pending")
        if pending_map is not None:
            problems.unknown_keys(pending_map, ("for", "days"), "points.pending")
            kinds = problems.sequence(
                pending_map.get("for", []), pending_map.line_of("for"), "pending.for"
            )
            for kind in kinds or []:
                if kind not in EVENT_TYPES:
                    problems.add(
                        pending_map.line_of("for"), f"pending.for: {kind!r} is not an event type"
                    )
            pending_for = tuple(k for k in kinds or [] if k in EVENT_TYPES)
            days = read_int(
                problems, pending_map.get("days", 0), pending_map.line_of("days"), "pending.days"
            )
            pending_days = days or 0
    return PointsPolicy(
        expire_after=expire_after,
        warn_before=warn_before,
        pending_for=pending_for,
        pending_days=pending_days,
        fixed_expiry=fixed_expiry,
        expiry_timezone=_zone_or_utc(root.get("timezone")),
        value=_decimal_key(section, "value", problems),
        expected_breakage=_decimal_key(section, "expected_breakage", problems, most=1)
        or Decimal(0),
    )


def _decimal_key(
    section: LocatedDict, key: str, problems: Problems, most: int | None = None
) -> Decimal | None:
    """``points.value`` (a point's worth in the currency), ``points.expected_breakage``."""
    if key not in section:
        return None
    number = read_decimal(problems, section[key], section.line_of(key), f"points.{key}")
    if number is not None and most is not None and number > most:
        problems.add(section.line_of(key), f"points.{key} must be at most {most}")
        return None
    return number


def _month_day(value: Any, line: int, problems: Problems) -> tuple[int, int] | None:
    """``fixed: "12-31"``: the yearly day (month-day) on whose end points expire."""
    try:
        month, day = (int(part) for part in str(value).split("-"))
        date(2000, month, day)  # a leap year, so 02-29 is a day
    except ValueError:
        problems.add(line, 'points.expiry.fixed takes a day of the year in quotes, e.g. "12-31"')
        return None
    return month, day


def _zone_or_utc(value: Any) -> str:
    try:
        return str(ZoneInfo(value)) if isinstance(value, str) else "UTC"
    except (ValueError, KeyError, OSError):
        return "UTC"  # the timezone check reports it


def _tiers(root: LocatedDict, problems: Problems) -> TierPolicy:
    if "tiers" not in root:
        return TierPolicy()
    section = problems.mapping(root["tiers"], root.line_of("tiers"), "tiers")
    if section is None:
        return TierPolicy()
    problems.unknown_keys(section, ("metric", "window", "review", "levels"), "tiers")
    default = TierPolicy()
    metric = section.get("metric", "spend")
    if metric not in TIER_METRICS:
        problems.add(
            section.line_of("metric"), f"tiers.metric must be one of {', '.join(TIER_METRICS)}"
        )
    window = default.window
    if "window" in section:
        window = (
            read_duration(problems, section["window"], section.line_of("window"), "tiers.window")
            or window
        )
    review_every, grace = default.review_every, default.grace
    if "review" in section:
        review = problems.mapping(section["review"], section.line_of("review"), "tiers.review")
        if review is not None:
            problems.unknown_keys(review, ("every", "grace"), "tiers.review")
            if "every" in review:
                review_every = (
                    read_duration(
                        problems, review["every"], review.line_of("every"), "review.every"
                    )
                    or review_every
                )
            if "grace" in review:
                grace = (
                    read_duration(
                        problems, review["grace"], review.line_of("grace"), "review.grace"
                    )
                    or grace
                )
    levels = _levels(section, problems)
    return TierPolicy(
        metric=metric, window=window, review_every=review_every, grace=grace, levels=levels
    )


def _levels(section: LocatedDict, problems: Problems) -> tuple[TierLevel, ...]:
    raw = problems.sequence(section.get("levels", []), section.line_of("levels"), "tiers.levels")
    levels: list[TierLevel] = []
    for index, entry in enumerate(raw or []):
        line = raw.line_of(index) if raw is not None else section.line
        level = problems.mapping(entry, line, "a tier level")
        if level is None:
            continue
        problems.unknown_keys(level, ("name", "min", "multiplier"), "a tier level")
        if not problems.required(level, ("name", "min"), "a tier level"):
            continue
        name = read_text(problems, level["name"], level.line_of("name"), "tier name")
        minimum = read_decimal(problems, level["min"], level.line_of("min"), "tier min")
        multiplier = Decimal(1)
        if "multiplier" in level:
            multiplier = (
                read_decimal(
                    problems,
                    level["multiplier"],
                    level.line_of("multiplier"),
                    "tier multiplier",
                    positive=True,
                )
                or multiplier
            )
        if name is None or minimum is None:
            continue
        if levels and minimum <= levels[-1].min:
            problems.add(level.line, f"tier {name!r}: levels go from the lowest min to the highest")
        if any(existing.name == name for existing in levels):
            problems.add(level.line, f"tier {name!r} is listed twice")
        levels.append(TierLevel(name, minimum, multiplier))
    if levels and levels[0].min != 0:
        problems.add(
            section.line_of("levels"), "the lowest tier must have min: 0, so every member has one"
        )
    return tuple(levels)
