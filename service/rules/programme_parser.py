"""``rules/program.yaml``, declared once: the points policy, tiers, messaging, catalogues,
segments and the scheduler's jobs.

The Sections below are what `loyalty rules check` holds the file to and what the editors'
JSON Schema (service.rules.json_schema) says; each value's check and message is its
field's (service.rules.file_fields).

    schedules:
      dispatch-outbox: {every: 1m}
      warn-expiry: {cron: "0 10 * * *"}     # five fields, in the programme's time zone
      run-schedules: {every: 1h, enabled: false}

Jobs not named keep their defaults (service.core.schedules.DEFAULT_EVERY).
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any

from marshmallow import ValidationError, post_load, validates_schema

from service.core.events import EVENT_TYPES
from service.core.programme import (
    MessageCap,
    MessagingPolicy,
    Offer,
    PointsPolicy,
    Programme,
    ReferralPolicy,
    Reward,
    RfmPolicy,
    TierLevel,
    TierPolicy,
)
from service.core.schedules import JOB_NAMES, JobSchedule
from service.rules.effect_parser import CHANNELS
from service.rules.file_fields import (
    Clock,
    Cron,
    Currency,
    Cuts,
    Description,
    Duration,
    Entries,
    Flag,
    Nested,
    Number,
    OneOf,
    Section,
    Text,
    TimeZone,
    WholeNumber,
    YearlyDay,
)
from service.rules.problems import Located, Problems, report, suggest

TIER_METRICS = ("spend", "points", "orders")


class Expiry(Section):
    what = "points.expiry"
    after = Duration("points.expiry.after")
    warn_before = Entries(Duration("warn_before"), "warn_before", flat=True)
    fixed = YearlyDay(
        "points.expiry.fixed", description="the yearly day points expire at the end of, e.g. 12-31"
    )


class Pending(Section):
    what = "points.pending"
    pending_for = Entries(
        OneOf(EVENT_TYPES, "pending.for: {value!r} is not an event type"),
        "pending.for",
        flat=True,
        data_key="for",
    )
    days = WholeNumber("pending.days")


def _points(expiry: Any = None, pending: Any = None, **options: Any) -> PointsPolicy:
    expiry, pending = expiry or {}, pending or {}
    never = expiry.get("never", False)
    return PointsPolicy(
        **options,
        expire_after=None
        if never
        else expiry.get("after", None if "fixed" in expiry else PointsPolicy().expire_after),
        warn_before=tuple(sorted(expiry.get("warn_before", ()), reverse=True)),
        pending_for=tuple(pending.get("pending_for", ())),
        pending_days=pending.get("days", 0),
        fixed_expiry=expiry.get("fixed"),
    )


class Points(Section):
    what = "points"
    make = staticmethod(_points)
    expiry = Nested(Expiry, allow_none=True, word="never")
    pending = Nested(Pending, allow_none=True)
    shortfall = OneOf(
        ("debt", "forgive"),
        "points.shortfall must be one of {choices}",
        description="a clawback beyond the balance: debt (repaid by later earnings) or forgive",
    )
    transfers = Flag("points.transfers", description="members may give points to each other")
    value = Number("points.value", description="what one point is worth in the currency")
    expected_breakage = Number(
        "points.expected_breakage",
        most=1,
        over="points.expected_breakage must be at most 1",
        description="the share of outstanding points expected never to be redeemed: 0.15",
    )


class Review(Section):
    what = "tiers.review"
    review_every = Duration("review.every", data_key="every")
    grace = Duration("review.grace", zero=True)


class Level(Section):
    what = "a tier level"
    make = TierLevel
    name = Text("tier name", required=True)
    min = Number("tier min", required=True)
    multiplier = Number("tier multiplier", positive=True)


def _tiers(review: Any = None, levels: Any = (), **policy: Any) -> TierPolicy:
    return TierPolicy(**policy, **(review or {}), levels=tuple(levels))


class Tiers(Section):
    what = "tiers"
    make = staticmethod(_tiers)
    metric = OneOf(TIER_METRICS, "tiers.metric must be one of {choices}")
    window = Duration("tiers.window")
    review = Nested(Review)
    levels = Entries(Nested(Level), "tiers.levels")

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def levels_rise(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        errors: dict[Any, Any] = {}
        kept: list[TierLevel] = []
        for index, item in enumerate(data.get("levels") or ()):
            level = next(iter(_kept([item], TierLevel)), None)
            if level is None:
                continue
            if kept and level.min <= kept[-1].min:
                errors[index] = [
                    f"tier {level.name!r}: levels go from the lowest min to the highest"
                ]
            if any(other.name == level.name for other in kept):
                errors.setdefault(index, []).append(f"tier {level.name!r} is listed twice")
            kept.append(level)
        if kept and kept[0].min != 0:
            lowest = "the lowest tier must have min: 0, so every member has one"
            errors["lowest"] = [Located(original.line_of("levels"), lowest)]
        if errors:
            raise ValidationError({"levels": errors})


class Cap(Section):
    what = "a messaging cap"
    make = MessageCap
    category = Text("category", allow_none=True)  # none: every category but transactional
    channel = OneOf(CHANNELS, "channel is one of {choices}{hint}", allow_none=True)
    max = WholeNumber("cap max", minimum=1, required=True)
    per = Duration("cap per", required=True)
    calendar = Flag("calendar")


class QuietHours(Section):
    what = "quiet_hours"
    quiet_from = Clock("quiet_hours.from", required=True, data_key="from")
    quiet_to = Clock("quiet_hours.to", required=True, data_key="to")


class Messaging(Section):
    what = "messaging"
    make = staticmethod(
        lambda caps=(), quiet_hours=None: MessagingPolicy(tuple(caps), **(quiet_hours or {}))
    )
    caps = Entries(Nested(Cap, "an entry of caps"), "caps")
    quiet_hours = Nested(QuietHours)


class OfferEntry(Section):
    what = "an entry of offers"
    make = Offer
    id = Text("offers id", required=True)
    title = Text("offers title", required=True)
    discount_percent = Number("discount_percent", True, 100, "discount_percent is at most 100")
    valid_for = Duration(required=True, error_messages={"required": "an offer needs 'valid_for'"})
    description = Description()


class RewardEntry(Section):
    what = "an entry of rewards"
    make = Reward
    id = Text("rewards id", required=True)
    title = Text("rewards title", required=True)
    cost = WholeNumber(
        "reward cost", 1, required=True, error_messages={"required": "a reward needs 'cost'"}
    )
    description = Description()
    stock = WholeNumber("reward stock", description="how many there are to give, in all")
    per_member = WholeNumber("reward per_member", 1, description="how many one member may have")


class Referrals(Section):
    what = "referrals"
    make = ReferralPolicy
    max_per_referrer = WholeNumber("max_per_referrer", minimum=1)
    per = Duration("referrals.per")
    require_new_referee = Flag("require_new_referee")


class Rfm(Section):
    what = "segments.rfm"
    recency_days = Cuts(descending=True)
    frequency = Cuts()
    monetary = Cuts()
    window = Duration("rfm.window")


def _score(name: str) -> WholeNumber:
    return WholeNumber(name, 1, 5, "RFM scores run from 1 to 5", load_default=1)


def _segment(name: str, recency: int, frequency: int, monetary: int) -> tuple[str, int, int, int]:
    return name, recency, frequency, monetary


class NamedSegment(Section):
    what = "a named segment"
    make = staticmethod(_segment)
    name = Text(
        "segment name",
        required=True,
        error_messages={"required": "segment name must be text, got nothing"},
    )
    recency = _score("recency")
    frequency = _score("frequency")
    monetary = _score("monetary")


class Segments(Section):
    what = "segments"
    make = staticmethod(lambda rfm=None, named=(): RfmPolicy(**(rfm or {}), segments=tuple(named)))
    rfm = Nested(Rfm)
    named = Entries(Nested(NamedSegment, "an entry of named"), "named")


class Schedule(Section):
    """One job's schedule; a class per job, so that messages name the job."""

    job = ""

    @validates_schema(pass_original=True)
    def one_kind(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if ("every" in original) == ("cron" in original) and (
            data.get("enabled", True) or "every" in original
        ):
            raise ValidationError(f"schedules.{self.job} takes one of `every` (e.g. 1h) or `cron`")

    @post_load
    def build(self, data: dict[str, Any], **kwargs: Any) -> JobSchedule:
        return JobSchedule(self.job, **data)


def _schedule(job: str) -> Nested:
    checks = {
        "every": Duration(f"{job}.every"),
        "cron": Cron(f"{job}.cron"),
        "enabled": Flag(f"schedules.{job}.enabled"),
    }
    return Nested(
        type(f"Schedule_{job}", (Schedule,), {"what": f"schedules.{job}", "job": job, **checks})
    )


class JobTable(Section):
    what = "schedules"

    def unknown_key(self, key: str) -> str:
        jobs = ", ".join(JOB_NAMES)
        return f"schedules: no job {key!r}{suggest(key, JOB_NAMES)}; jobs are {jobs}"

    @post_load(pass_original=True)
    def build(self, data: dict[str, Any], original: Any, **kwargs: Any) -> tuple[JobSchedule, ...]:
        by_job = {schedule.job: schedule for schedule in data.values()}
        return tuple(by_job[job] for job in original if job in by_job)


Schedules = type("Schedules", (JobTable,), {job: _schedule(job) for job in JOB_NAMES})


def _programme(
    points: PointsPolicy | None = None, schedules: Any = (), **sections: Any
) -> Programme:
    if points is not None:  # the zone that fixed expiry days end in
        points = replace(points, expiry_timezone=sections["timezone"])
    extras = MappingProxyType({"schedules": schedules})
    return Programme(**sections, points=points or PointsPolicy(), extras=extras)


def _kept(items: Any, kind: Any) -> tuple[Any, ...]:
    """The entries that were valid, or valid enough to make one (a tier level with a bad
    multiplier still names a tier)."""
    kept = []
    for item in items or ():
        try:
            kept.append(kind(**item) if isinstance(item, dict) else item)
        except TypeError:
            continue
    return tuple(item for item in kept if isinstance(item, kind))


class ProgrammeFile(Section):
    what = "the programme"
    make = staticmethod(_programme)
    id = Text("programme", required=True, data_key="programme")
    currency = Currency("currency", required=True)
    timezone = TimeZone(
        "timezone", required=True, description="an IANA time zone such as Asia/Shanghai"
    )
    points = Nested(Points)
    tiers = Nested(Tiers)
    messaging = Nested(Messaging)
    offers = Entries(Nested(OfferEntry), "offers", post_load=tuple)
    rewards = Entries(Nested(RewardEntry), "rewards", post_load=tuple)
    referrals = Nested(Referrals)
    rfm = Nested(Segments, data_key="segments")
    schedules = Nested(Schedules)

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def ids_once(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        errors = {}
        for key in ("offers", "rewards"):
            seen, twice = set(), {}
            entries = original.get(key)
            for index, entry in enumerate(entries if isinstance(entries, list) else ()):
                entry_id = entry.get("id") if isinstance(entry, dict) else None
                if isinstance(entry_id, str) and entry_id in seen:
                    twice[index] = [f"{key}: id {entry_id!r} is listed twice"]
                seen.add(entry_id if isinstance(entry_id, str) else "")
            if twice:
                errors[key] = twice
        if errors:
            raise ValidationError(errors)


PROGRAMME = Nested(ProgrammeFile, "program.yaml")
PROGRAMME_KEYS = tuple(ProgrammeFile().keys)


def parse_programme(document: Any, problems: Problems) -> Programme | None:
    """The programme, or None when its name, currency or time zone is not valid; every
    problem is added to ``problems``."""
    try:
        programme: Programme = PROGRAMME.deserialize(document)
        return programme
    except ValidationError as error:
        report(error, document, problems)
        found = error.valid_data if isinstance(error.valid_data, dict) else {}
    if not {"id", "currency", "timezone"} <= set(found):
        return None
    # What campaigns are checked against: the tiers and offers that were valid enough.
    tiers = found.get("tiers")
    levels = tiers.levels if isinstance(tiers, TierPolicy) else (tiers or {}).get("levels")
    # An offer with an id and a valid_for is one campaigns may name, whatever its title.
    offers = [o for o in found.get("offers") or () if isinstance(o, Offer)] + [
        Offer(o["id"], "", o["valid_for"])
        for o in found.get("offers") or ()
        if isinstance(o, dict) and {"id", "valid_for"} <= set(o)
    ]
    tiers = TierPolicy(levels=_kept(levels, TierLevel))
    return Programme(
        found["id"], found["currency"], found["timezone"], tiers=tiers, offers=tuple(offers)
    )
