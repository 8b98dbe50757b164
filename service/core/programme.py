"""The programme and its campaigns in the validated intermediate form.

Rule files are parsed into these (service.rules.loader); both engines and every use
case read them. Nothing here knows YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from service.core.conditions import Condition

ROUNDING = ("floor", "ceil", "nearest")


@dataclass(frozen=True, slots=True)
class PointsFormula:
    """Points for a rule: ``points`` fixed, or ``points`` for every whole ``per`` of ``of``.

    The result is multiplied by ``multiplier`` and (unless opted out) the member's tier
    multiplier, then rounded as ``round`` says and capped at ``max``.
    """

    points: Decimal = Decimal(1)
    of: str | None = None  # a numeric fact path, e.g. amount; None means a fixed award
    per: Decimal = Decimal(1)
    multiplier: Decimal = Decimal(1)
    round: str = "floor"
    max: int | None = None
    tier_multiplier: bool = True


@dataclass(frozen=True, slots=True)
class TagChange:
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


EffectSpec = PointsFormula | TagChange


@dataclass(frozen=True, slots=True)
class Limit:
    per_customer: int
    window: timedelta | None  # None: for the member's whole life


@dataclass(frozen=True, slots=True)
class Rule:
    campaign: str
    name: str
    condition: Condition
    effects: tuple[EffectSpec, ...]
    limit: Limit | None = None
    event_type: str | None = None  # the type the condition requires, when it names one
    file: str = ""
    line: int = 0

    @property
    def key(self) -> str:
        return f"{self.campaign}/{self.name}"


@dataclass(frozen=True, slots=True)
class PointsBudget:
    points: int


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    rules: tuple[Rule, ...]
    description: str = ""
    active_from: datetime | None = None
    active_until: datetime | None = None  # exclusive
    priority: int = 0
    budget: PointsBudget | None = None
    file: str = ""
    line: int = 0

    def is_active(self, at: datetime) -> bool:
        if self.active_from is not None and at < self.active_from:
            return False
        return not (self.active_until is not None and at >= self.active_until)


@dataclass(frozen=True, slots=True)
class TierLevel:
    name: str
    min: Decimal
    multiplier: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class TierPolicy:
    metric: str = "spend"  # spend | points | orders
    window: timedelta = timedelta(days=365)
    review_every: timedelta = timedelta(days=30)
    grace: timedelta = timedelta(days=30)
    levels: tuple[TierLevel, ...] = ()

    def level(self, name: str | None) -> TierLevel | None:
        if name is None:
            return self.levels[0] if self.levels else None
        return next((lvl for lvl in self.levels if lvl.name == name), None)

    def multiplier(self, name: str | None) -> Decimal:
        level = self.level(name)
        return level.multiplier if level else Decimal(1)


@dataclass(frozen=True, slots=True)
class PointsPolicy:
    expire_after: timedelta | None = timedelta(days=365)
    warn_before: tuple[timedelta, ...] = ()
    pending_for: tuple[str, ...] = ()
    pending_days: int = 0


@dataclass(frozen=True, slots=True)
class Programme:
    id: str
    currency: str
    timezone: str
    points: PointsPolicy = PointsPolicy()
    tiers: TierPolicy = TierPolicy()
    # The parts later features read (messaging, offers, rewards) kept as validated data.
    extras: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One loaded rules version: the programme, its campaigns, and where they came from."""

    programme: Programme
    campaigns: tuple[Campaign, ...]
    version: str  # content hash of the files
    files: Mapping[str, str]  # relative path -> text
    dynamic_fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(rule for campaign in self.campaigns for rule in campaign.rules)

    def campaign(self, campaign_id: str) -> Campaign | None:
        return next((c for c in self.campaigns if c.id == campaign_id), None)
