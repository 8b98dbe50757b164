"""Measuring the programme: its KPIs over a period, and what its outstanding points are
worth in money at a date (the liability).

The definitions live here; the counting is set-based SQL behind ``ReportStore``
(service.storage.report_store), read in one snapshot of the database. A period is
``[from, to)``: whole days in the programme's time zone.

- ``members``: ``total`` counts the members known before ``to`` (from their first event),
  ``new`` those whose first event falls in the period, ``active`` those with an event in
  it (scheduled events the service makes itself do not count).
- ``points``: ``issued`` counts the points rules awarded in the period; pending points count
  once their return window has ended by ``to``. ``redeemed`` is what rewards took, less
  what reversals gave back; ``expired`` and ``clawed_back`` what expiry and refunds took.
  ``outstanding`` is what members held at ``to``, as ``liability`` counts it.
- ``redemption_rate = redeemed / issued``, ``breakage_rate = expired / issued``.
- ``orders``: the orders placed in the period, ``revenue`` their amounts less what has been
  refunded on them; ``repurchase_rate`` the share of members with an order in the period
  who placed at least two.
- ``referrals``: referrals recorded in the period; ``converted`` those whose referee
  ordered between the referral and ``to``.
- ``tiers``: members known at ``to`` by the tier they held then (no tier: the lowest).
- ``campaigns``: each campaign's share of ``issued``, the members it paid, ``cost`` (points
  times ``points.value``) and ``budget_used``: the share of its ``budget.points`` spent so
  far, refunds given back, as GET /v1/rules counts it (a budget spans the campaign's whole
  life, not a period). Listed: campaigns that awarded points in the period, and the live
  rules' campaigns active in it.

Liability at a date is taken at the end of that day: the points left at that moment in
lots not yet expired (a lot past its expiry counts as expired even before the
``expire-points`` job has run), valued at ``points.value``; ``value_after_breakage``
takes ``points.expected_breakage`` off. Events recorded later about earlier times change
the figure; nothing that happens after the date does.

Rates are 4-place decimals (None where the divisor is zero), money 2-place decimals
(None when the programme sets no ``points.value``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from service.application.ports import Transaction
from service.core.errors import NotFound
from service.core.programme import Campaign, Programme, RuleSet

RATE_PLACES = Decimal("0.0001")
MONEY_PLACES = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)``: the days ``first`` up to (not including) ``after`` in a zone."""

    first: date
    after: date
    start: datetime
    end: datetime


def period(first: date, after: date, zone: str) -> Period:
    if after <= first:
        raise ValueError(f"to ({after}) must be after from ({first})")
    return Period(first, after, day_start(first, zone), day_start(after, zone))


def day_start(day: date, zone: str) -> datetime:
    """Midnight starting ``day`` in ``zone``, in UTC."""
    return datetime.combine(day, time(), ZoneInfo(zone)).astimezone(UTC)


def local_today(now: datetime, zone: str) -> date:
    return now.astimezone(ZoneInfo(zone)).date()


def month_of(moment: datetime, zone: str) -> tuple[str, datetime]:
    """("YYYY-MM" holding ``moment`` in ``zone``, the start of the next month in UTC)."""
    local = moment.astimezone(ZoneInfo(zone))
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return f"{local.year:04d}-{local.month:02d}", day_start(date(year, month, 1), zone)


# -- what the store counts


@dataclass(frozen=True, slots=True)
class PointFlows:
    """Points that left members' lots in a period, by cause (positive numbers)."""

    redeemed: int = 0
    expired: int = 0
    clawed_back: int = 0


@dataclass(frozen=True, slots=True)
class CampaignAwards:
    campaign: str
    points: int
    members: int


@dataclass(frozen=True, slots=True)
class MemberCensus:
    """Members known at the end of a period: how many, how many new, by tier then."""

    total: int
    new: int
    tiers: Mapping[str | None, int]  # None: no tier recorded by then


@dataclass(frozen=True, slots=True)
class OrderCounts:
    orders: int
    revenue: Decimal
    buyers: int  # members with an order in the period
    repeat_buyers: int  # of those, members with two or more


@dataclass(frozen=True, slots=True)
class ReferralCounts:
    count: int
    converted: int


@dataclass(frozen=True, slots=True)
class ExpiryBucket:
    month: str | None  # "YYYY-MM" in the programme's time zone; None: never expires
    points: int


class ReportStore(Protocol):
    def awards(self, start: datetime, end: datetime) -> list[CampaignAwards]: ...

    def point_flows(self, start: datetime, end: datetime) -> PointFlows: ...

    def outstanding(self, at: datetime, zone: str) -> list[ExpiryBucket]: ...

    def census(self, start: datetime, end: datetime) -> MemberCensus: ...

    def active_members(self, start: datetime, end: datetime) -> int: ...

    def orders(self, start: datetime, end: datetime) -> OrderCounts: ...

    def referrals(self, start: datetime, end: datetime) -> ReferralCounts: ...

    def budget_points_used(self, campaigns: Sequence[str]) -> Mapping[str, int]: ...


ReportReads = Callable[[], Transaction[ReportStore]]


# -- the answers


@dataclass(frozen=True, slots=True)
class MemberFigures:
    total: int
    new: int
    active: int


@dataclass(frozen=True, slots=True)
class PointFigures:
    issued: int
    redeemed: int
    expired: int
    clawed_back: int
    outstanding: int


@dataclass(frozen=True, slots=True)
class OrderFigures:
    count: int
    revenue: Decimal
    average_value: Decimal | None
    repurchase_rate: Decimal | None


@dataclass(frozen=True, slots=True)
class CampaignFigures:
    campaign: str
    points: int
    members: int
    cost: Decimal | None
    budget_used: Decimal | None


@dataclass(frozen=True, slots=True)
class KpiReport:
    from_date: date
    to_date: date
    currency: str
    members: MemberFigures
    points: PointFigures
    redemption_rate: Decimal | None
    breakage_rate: Decimal | None
    orders: OrderFigures
    referrals: ReferralCounts
    tiers: Mapping[str, int]
    campaigns: tuple[CampaignFigures, ...]


@dataclass(frozen=True, slots=True)
class ExpiryMonth:
    month: str | None
    points: int
    value: Decimal | None


@dataclass(frozen=True, slots=True)
class LiabilityReport:
    as_of: date
    currency: str
    point_value: Decimal | None
    points_outstanding: int
    value: Decimal | None
    expected_breakage: Decimal
    value_after_breakage: Decimal | None
    by_expiry_month: tuple[ExpiryMonth, ...]


def kpi_report(
    reads: ReportReads,
    ruleset: RuleSet,
    first: date,
    after: date,
    campaign: str | None = None,
) -> KpiReport:
    """The programme's measures over ``[first, after)``; ``campaign`` narrows the campaign
    list to that one (the programme-wide figures stay)."""
    programme = ruleset.programme
    span = period(first, after, programme.timezone)
    with reads() as transaction:
        store = transaction.store
        awards = store.awards(span.start, span.end)
        flows = store.point_flows(span.start, span.end)
        outstanding = store.outstanding(span.end, programme.timezone)
        census = store.census(span.start, span.end)
        active = store.active_members(span.start, span.end)
        orders = store.orders(span.start, span.end)
        referrals = store.referrals(span.start, span.end)
        budgeted = [c.id for c in ruleset.campaigns if c.budget and c.budget.points]
        budgets_used = store.budget_points_used(budgeted)
    issued = sum(award.points for award in awards)
    return KpiReport(
        from_date=first,
        to_date=after,
        currency=programme.currency,
        members=MemberFigures(census.total, census.new, active),
        points=PointFigures(
            issued=issued,
            redeemed=flows.redeemed,
            expired=flows.expired,
            clawed_back=flows.clawed_back,
            outstanding=sum(bucket.points for bucket in outstanding),
        ),
        redemption_rate=rate(flows.redeemed, issued),
        breakage_rate=rate(flows.expired, issued),
        orders=OrderFigures(
            count=orders.orders,
            revenue=money(orders.revenue),
            average_value=money(orders.revenue / orders.orders) if orders.orders else None,
            repurchase_rate=rate(orders.repeat_buyers, orders.buyers),
        ),
        referrals=referrals,
        tiers=tier_counts(programme, census.tiers),
        campaigns=campaign_figures(ruleset, span, awards, budgets_used, campaign),
    )


def liability_report(reads: ReportReads, programme: Programme, as_of: date) -> LiabilityReport:
    """Outstanding points at the end of ``as_of`` and their worth, by month of expiry."""
    with reads() as transaction:
        buckets = transaction.store.outstanding(
            day_start(as_of + timedelta(days=1), programme.timezone), programme.timezone
        )
    policy = programme.points
    points = sum(bucket.points for bucket in buckets)
    value = worth(points, policy.value)
    return LiabilityReport(
        as_of=as_of,
        currency=programme.currency,
        point_value=policy.value,
        points_outstanding=points,
        value=value,
        expected_breakage=policy.expected_breakage.quantize(RATE_PLACES),
        value_after_breakage=None
        if policy.value is None
        else money(points * policy.value * (1 - policy.expected_breakage)),
        by_expiry_month=tuple(
            ExpiryMonth(bucket.month, bucket.points, worth(bucket.points, policy.value))
            for bucket in sorted(buckets, key=_month_order)
            if bucket.points
        ),
    )


def tier_counts(programme: Programme, found: Mapping[str | None, int]) -> dict[str, int]:
    """Every level of the programme in its order (members with no tier in the lowest),
    then any tier no longer in the programme, by name."""
    levels = [level.name for level in programme.tiers.levels]
    counts = dict.fromkeys(levels, 0)
    for tier, members in sorted(found.items(), key=lambda item: item[0] or ""):
        name = tier if tier is not None else (levels[0] if levels else None)
        if name is not None:
            counts[name] = counts.get(name, 0) + members
    return counts


def campaign_figures(
    ruleset: RuleSet,
    span: Period,
    awards: Sequence[CampaignAwards],
    budgets_used: Mapping[str, int],
    only: str | None,
) -> tuple[CampaignFigures, ...]:
    """Campaigns that awarded points in the period, and the live ones active in it, by id.
    ``only``: that campaign alone; NotFound when it is neither."""
    paid = {award.campaign: award for award in awards}
    live = {c.id: c for c in ruleset.campaigns}
    shown = set(paid) | {c.id for c in live.values() if _live_during(c, span)}
    if only is not None:
        if only not in paid and only not in live:
            raise NotFound(f"no campaign {only!r} in the rules or the period's awards")
        shown = {only}
    point_value = ruleset.programme.points.value
    figures = []
    for name in sorted(shown):
        award = paid.get(name, CampaignAwards(name, 0, 0))
        budget = live[name].budget if name in live else None
        figures.append(
            CampaignFigures(
                campaign=name,
                points=award.points,
                members=award.members,
                cost=worth(award.points, point_value),
                budget_used=rate(budgets_used.get(name, 0), budget.points)
                if budget is not None and budget.points
                else None,
            )
        )
    return tuple(figures)


def _live_during(campaign: Campaign, span: Period) -> bool:
    starts_in_time = campaign.active_from is None or campaign.active_from < span.end
    return starts_in_time and (campaign.active_until is None or campaign.active_until > span.start)


def rate(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(RATE_PLACES, ROUND_HALF_UP)


def money(amount: Decimal) -> Decimal:
    return amount.quantize(MONEY_PLACES, ROUND_HALF_UP)


def worth(points: int, point_value: Decimal | None) -> Decimal | None:
    return None if point_value is None else money(points * point_value)


def _month_order(bucket: ExpiryBucket) -> tuple[bool, str]:
    return bucket.month is None, bucket.month or ""
