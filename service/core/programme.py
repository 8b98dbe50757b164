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
    # A numeric fact path (amount), "items" to earn line by line, or None for a fixed award.
    of: str | None = None
    per: Decimal = Decimal(1)
    multiplier: Decimal = Decimal(1)
    round: str = "floor"
    max: int | None = None
    tier_multiplier: bool = True
    # Line by line: a rate per item category ("*" for the rest), and lines that never earn.
    rates: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType({}))
    exclude: Condition | None = None  # over one item's fields
    to: str = "customer"  # or "referrer": the member who referred this one


@dataclass(frozen=True, slots=True)
class TagChange:
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OfferGrant:
    offer: str  # an id in the programme's offer catalogue


@dataclass(frozen=True, slots=True)
class MessageSpec:
    template: str
    channel: str = "log"  # webhook | email | log
    category: str = "marketing"  # marketing | transactional | any category caps name
    urgent: bool = False  # transactional and urgent: sent even in quiet hours
    dedupe: str | None = None  # messages with the same key are sent once per member
    stale_after: timedelta | None = None  # deferred past this, the message is dropped


@dataclass(frozen=True, slots=True)
class TierGrant:
    tier: str
    duration: timedelta | None = None  # None: until a review finds the member below it


EffectSpec = PointsFormula | TagChange | OfferGrant | MessageSpec | TierGrant


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
    # "campaign/name", asked for many times per event: made once.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.campaign}/{self.name}")


@dataclass(frozen=True, slots=True)
class Budget:
    points: int | None = None
    offers: int | None = None
    # Points may not exceed this share of the revenue of the purchases the campaign rewarded.
    share_of_revenue: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    rules: tuple[Rule, ...]
    description: str = ""
    active_from: datetime | None = None
    active_until: datetime | None = None  # exclusive
    priority: int = 0
    budget: Budget | None = None
    file: str = ""
    line: int = 0
    # Campaigns of one group do not stack: of those an event would pay, only the first
    # in priority order (ties by id) does.
    exclusive_group: str | None = None

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
        for lvl in self.levels:  # a handful of levels: a loop beats building an index
            if lvl.name == name:
                return lvl
        return None

    def multiplier(self, name: str | None) -> Decimal:
        level = self.level(name)
        return level.multiplier if level else Decimal(1)


@dataclass(frozen=True, slots=True)
class PointsPolicy:
    expire_after: timedelta | None = timedelta(days=365)
    warn_before: tuple[timedelta, ...] = ()
    pending_for: tuple[str, ...] = ()
    pending_days: int = 0
    # Fixed yearly expiry, (month, day): a lot expires when that day ends in expiry_timezone
    # (the programme's), the first such day after its earn date (plus expire_after, if set).
    fixed_expiry: tuple[int, int] | None = None
    expiry_timezone: str = "UTC"
    transfers: bool = False  # members may give points to each other
    # A clawback beyond what is left: "debt" records the rest for later earnings to repay;
    # "forgive" clamps at zero and forgets it.
    shortfall: str = "debt"
    # What one point is worth in the programme's currency, for cost and liability in
    # money; None: not set, and the reports give no money figures.
    value: Decimal | None = None
    # The share of outstanding points expected never to be redeemed (0 to 1).
    expected_breakage: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Offer:
    id: str
    title: str
    valid_for: timedelta
    discount_percent: Decimal | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Reward:
    id: str
    title: str
    cost: int
    description: str = ""
    stock: int | None = None  # how many there are to give, in all; None: no limit
    per_member: int | None = None  # how many one member may have; None: no limit


@dataclass(frozen=True, slots=True)
class ReferralPolicy:
    max_per_referrer: int | None = None  # referrals rewarded per referrer within `per`
    per: timedelta | None = None
    require_new_referee: bool = True


@dataclass(frozen=True, slots=True)
class RfmPolicy:
    """Cut points, ascending: a value at or past the k-th cut scores k+1 (1 to 5).

    Recency scores the other way: fewer days since the last purchase score higher.
    """

    recency_days: tuple[Decimal, ...] = tuple(Decimal(d) for d in (180, 90, 30, 7))
    frequency: tuple[Decimal, ...] = tuple(Decimal(n) for n in (2, 4, 8, 16))
    monetary: tuple[Decimal, ...] = tuple(Decimal(n) for n in (500, 2000, 5000, 20000))
    window: timedelta = timedelta(days=365)
    # Named segments: the first whose minimum scores the member meets, in file order.
    segments: tuple[tuple[str, int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class MessageCap:
    max: int
    per: timedelta
    category: str | None = None  # None: every category but transactional
    channel: str | None = None
    calendar: bool = False  # count calendar days in the member's zone rather than a rolling span


@dataclass(frozen=True, slots=True)
class MessagingPolicy:
    caps: tuple[MessageCap, ...] = ()
    quiet_from: str | None = None  # "21:00", in the member's time zone
    quiet_to: str | None = None


@dataclass(frozen=True, slots=True)
class Programme:
    id: str
    currency: str
    timezone: str
    points: PointsPolicy = PointsPolicy()
    tiers: TierPolicy = TierPolicy()
    offers: tuple[Offer, ...] = ()
    rewards: tuple[Reward, ...] = ()
    referrals: ReferralPolicy = ReferralPolicy()
    rfm: RfmPolicy = RfmPolicy()
    messaging: MessagingPolicy = MessagingPolicy()
    # Sections later features read that have no typed form yet (e.g. schedules).
    extras: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    def offer(self, offer_id: str) -> Offer | None:
        return next((o for o in self.offers if o.id == offer_id), None)

    def reward(self, reward_id: str) -> Reward | None:
        return next((r for r in self.rewards if r.id == reward_id), None)


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
