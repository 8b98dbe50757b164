"""The reports' counting, as set-based SQL aggregates (service.application.reports has the
definitions). Each method is a few statements whatever the size of the history; all of a
report's statements read one snapshot of the database."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from types import TracebackType
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    distinct,
    exists,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.exc import DBAPIError, OperationalError

from service.application.ports import ConnectionLost
from service.application.posting import (
    CLAWED_BACK,
    EARNED,
    EXPIRED,
    PENDING,
    REDEEMED,
    REDEMPTION_REVERSED,
)
from service.application.reports import (
    CampaignAwards,
    ExpiryBucket,
    MemberCensus,
    OrderCounts,
    PointFlows,
    ReferralCounts,
    month_starts,
)
from service.storage.tables import (
    campaign_budgets,
    events,
    ledger_entries,
    members,
    orders,
    point_lots,
    referrals,
    tier_history,
)
from service.storage.types import Money, UtcDateTime

SCHEDULED = "schedule"  # events the service makes itself (run-schedules)
entries, lots = ledger_entries, point_lots


def moment(at: datetime) -> Any:
    """A bound moment, stored the way the columns store it (naive UTC text on SQLite)."""
    return literal(at, UtcDateTime())


class SqlReportStore:
    def __init__(self, connection: Connection) -> None:
        self.db = connection

    # -- points

    def awards(self, start: datetime, end: datetime) -> list[CampaignAwards]:
        """Points each campaign's rules credited in the period, and to how many members;
        pending points only if their return window ended by ``end``."""
        # Only pending entries need their lot. Per campaign and member first, then per
        # campaign: two groupings, where count(DISTINCT) would sort the period's entries.
        earned = select(entries.c.campaign, entries.c.customer_id, entries.c.points).where(
            _within(entries.c.occurred_at, start, end), entries.c.kind == EARNED
        )
        released = (
            select(entries.c.campaign, entries.c.customer_id, entries.c.points)
            .select_from(entries.join(lots, lots.c.id == entries.c.lot_id))
            .where(
                _within(entries.c.occurred_at, start, end),
                entries.c.kind == PENDING,
                lots.c.available_at <= moment(end),
            )
        )
        credited = union_all(earned, released).subquery()
        paid = (
            select(credited.c.campaign, func.sum(credited.c.points).label("points"))
            .group_by(credited.c.campaign, credited.c.customer_id)
            .subquery()
        )
        query = select(paid.c.campaign, func.sum(paid.c.points), func.count()).group_by(
            paid.c.campaign
        )
        return [
            CampaignAwards(campaign or "", int(points), int(count))
            for campaign, points, count in self.db.execute(query)
        ]

    def point_flows(self, start: datetime, end: datetime) -> PointFlows:
        query = (
            select(entries.c.kind, func.sum(entries.c.points))
            .where(
                _within(entries.c.occurred_at, start, end),
                entries.c.kind.in_((REDEEMED, REDEMPTION_REVERSED, EXPIRED, CLAWED_BACK)),
            )
            .group_by(entries.c.kind)
        )
        moved = {kind: int(points) for kind, points in self.db.execute(query)}
        return PointFlows(
            # Rewards take (negative), reversals give back (positive).
            redeemed=-(moved.get(REDEEMED, 0) + moved.get(REDEMPTION_REVERSED, 0)),
            expired=-moved.get(EXPIRED, 0),
            clawed_back=-moved.get(CLAWED_BACK, 0),
        )

    def outstanding(self, at: datetime, zone: str) -> list[ExpiryBucket]:
        """Points held at ``at``, by month of expiry: what is left now in the lots alive
        then, less what entries after ``at`` added to them (and plus what they took). A
        lot's remaining points are always the sum of its entries, so this reads the lots
        with points left and the entries after ``at``, never the whole ledger."""
        alive = and_(
            lots.c.earned_at < moment(at),
            or_(lots.c.expires_at.is_(None), lots.c.expires_at > moment(at)),
        )
        # Alive lots expire after `at`: their months run from the first such expiry's to
        # the last one's (both ends of ix_point_lots_expires), however far back `at` is.
        first, last = self.db.execute(
            select(func.min(lots.c.expires_at), func.max(lots.c.expires_at)).where(
                lots.c.expires_at > moment(at)
            )
        ).one()
        months = month_starts(first, last, zone) if first is not None else []
        month = _month_of(lots.c.expires_at, months).label("month")
        # Grouped outside: PostgreSQL would not see a CASE of bound months in the GROUP BY
        # as the one selected.
        now = (
            select(month, lots.c.remaining.label("points"))
            .where(alive, lots.c.remaining > 0)
            .subquery()
        )
        later = (
            select(month, entries.c.points)
            .select_from(entries.join(lots, lots.c.id == entries.c.lot_id))
            .where(entries.c.occurred_at >= moment(at), alive)
            .subquery()
        )
        held: dict[str | None, int] = defaultdict(int)
        for name, points in self.db.execute(
            select(now.c.month, func.sum(now.c.points)).group_by(now.c.month)
        ):
            held[name] += int(points)
        for name, points in self.db.execute(
            select(later.c.month, func.sum(later.c.points)).group_by(later.c.month)
        ):
            held[name] -= int(points)
        return [ExpiryBucket(month, points) for month, points in held.items()]

    # -- members

    def census(self, start: datetime, end: datetime) -> MemberCensus:
        """Members by the time of their first event (their creation where they have none)
        and the tier of their latest tier change before ``end``."""
        first_event = (
            select(func.min(events.c.occurred_at))
            .where(events.c.customer_id == members.c.customer_id)
            .scalar_subquery()
        )
        # Materialized, so each member's first event is looked up once, not once per use.
        known = (
            select(
                members.c.customer_id,
                func.coalesce(first_event, members.c.first_seen_at).label("since"),
            )
            .cte("known")
            .prefix_with("MATERIALIZED")
        )
        tier_then = (
            select(tier_history.c.to_tier)
            .where(
                tier_history.c.customer_id == known.c.customer_id,
                tier_history.c.occurred_at < moment(end),
            )
            .order_by(tier_history.c.occurred_at.desc(), tier_history.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        then = (
            select(tier_then.label("tier"), (known.c.since >= moment(start)).label("fresh"))
            .where(known.c.since < moment(end))
            .subquery()
        )
        query = select(then.c.tier, func.count(), func.count().filter(then.c.fresh)).group_by(
            then.c.tier
        )
        tiers, new = {}, 0
        for tier, count, fresh in self.db.execute(query):
            tiers[tier] = int(count)
            new += int(fresh)
        return MemberCensus(sum(tiers.values()), new, tiers)

    def active_members(self, start: datetime, end: datetime) -> int:
        """Members with an event of their own in the period: one look each along their
        events by time (ix_events_customer_occurred), however long the period."""
        acted = exists().where(
            events.c.customer_id == members.c.customer_id,
            _within(events.c.occurred_at, start, end),
            events.c.type != SCHEDULED,
        )
        query = select(func.count()).select_from(members).where(acted)
        return int(self.db.execute(query).scalar_one())

    # -- orders and referrals

    def orders(self, start: datetime, end: datetime) -> OrderCounts:
        per_buyer = (
            select(
                func.count().label("orders"),
                type_coerce(func.sum(orders.c.amount - orders.c.refunded_amount), Money()).label(
                    "revenue"
                ),
            )
            .where(_within(orders.c.occurred_at, start, end))
            .group_by(orders.c.customer_id)
            .subquery()
        )
        count, revenue, buyers, repeat = self.db.execute(
            select(
                func.coalesce(func.sum(per_buyer.c.orders), 0),
                type_coerce(func.coalesce(func.sum(per_buyer.c.revenue), 0), Money()),
                func.count(),
                func.count().filter(per_buyer.c.orders >= 2),
            )
        ).one()
        return OrderCounts(int(count), revenue or Decimal(0), int(buyers), int(repeat))

    def referrals(self, start: datetime, end: datetime) -> ReferralCounts:
        made = select(func.count()).where(_within(referrals.c.occurred_at, start, end))
        # A join on the referee, not EXISTS: PostgreSQL would look for each referral's
        # orders along their dates rather than the referee's own orders.
        converted = (
            select(func.count(distinct(referrals.c.referee_id)))
            .select_from(referrals.join(orders, orders.c.customer_id == referrals.c.referee_id))
            .where(
                _within(referrals.c.occurred_at, start, end),
                orders.c.occurred_at >= referrals.c.occurred_at,
                orders.c.occurred_at < moment(end),
            )
        )
        return ReferralCounts(
            int(self.db.execute(made).scalar_one()), int(self.db.execute(converted).scalar_one())
        )

    def budget_points_used(self, campaigns: Sequence[str]) -> Mapping[str, int]:
        if not campaigns:
            return {}
        query = select(campaign_budgets.c.campaign, campaign_budgets.c.points_used).where(
            campaign_budgets.c.campaign.in_(list(campaigns))
        )
        return {campaign: int(used) for campaign, used in self.db.execute(query)}


def _within(column: Any, start: datetime, end: datetime) -> Any:
    return and_(column >= moment(start), column < moment(end))


def _month_of(expires_at: Any, months: list[tuple[str, datetime]]) -> Any:
    """The "YYYY-MM" holding ``expires_at`` (None for a lot that never expires): ``months``
    are the starts of consecutive months, the last one past every expiry."""
    if len(months) < 2:
        return literal(None).cast(lots.c.customer_id.type)
    whens = [(expires_at < moment(start), name) for (name, _), (_, start) in pairwise(months)]
    return case(*whens, else_=None)


class SqlReportReads:
    """One read-only transaction for a report; on PostgreSQL a repeatable-read one, so
    every statement of the report sees the same snapshot (SQLite's read transaction does
    that already)."""

    store: SqlReportStore

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    def __enter__(self) -> SqlReportReads:
        try:
            connection = self._engine.connect()
        except OperationalError as error:
            raise ConnectionLost(str(error.orig)) from error
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        else:
            connection = connection.execution_options(readonly=True)
        self._connection = connection
        connection.begin()
        self.store = SqlReportStore(connection)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._connection is not None
        lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
        try:
            if self._connection.in_transaction():
                self._connection.rollback()
        finally:
            self._connection.close()
            self._connection = None
        if lost:
            raise ConnectionLost(str(exc)) from exc

    def commit(self) -> None:
        """Nothing to keep: a report only reads."""


def report_reads(engine: Engine) -> Callable[[], SqlReportReads]:
    """The transactions the report use cases read in (service.application.reports)."""
    return lambda: SqlReportReads(engine)
