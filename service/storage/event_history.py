"""A stored event's member as the tables show them just before the event: what explaining
an event without its recorded trace starts from (service.application.explain)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import Connection, and_, func, or_, select

from service.application.ports import MemberHistory, StoredEvent
from service.storage.tables import events, ledger_entries, orders, rule_firings, tier_history


class EventHistoryStore:
    """Mixed into SqlStore: reads of a member's history before one of their events."""

    db: Connection

    def history_before(self, event: StoredEvent) -> MemberHistory:
        """What the tables say about the event's member before it was applied.

        Rows of later events are left out; values that later events update in place (an
        order's refunds, the member's tags) are as they are now. "Earlier" is the order of
        writing (the events' ids): recorded_at ties within a group and under a fixed clock.
        """
        customer_id = event.customer_id
        position, recorded_at = self.db.execute(
            select(events.c.id, events.c.recorded_at).where(events.c.event_id == event.event_id)
        ).one()
        theirs = events.c.customer_id == customer_id
        earlier = select(events.c.event_id).where(theirs, events.c.id < position)
        since = select(events.c.event_id).where(theirs, events.c.id >= position)
        before, first_at = self.db.execute(
            select(func.count(), func.min(events.c.occurred_at)).where(
                theirs, events.c.id < position
            )
        ).one()
        ledger = ledger_entries.c
        # Lines of no event of the member's (jobs, redemptions, a referee's reward) count
        # when recorded before the event, or at the same moment but written ahead of the
        # first line of this event or a later one.
        first_since = select(func.min(ledger.id)).where(
            ledger.customer_id == customer_id, ledger.event_id.in_(since)
        )
        prior = and_(
            ledger.customer_id == customer_id,
            or_(
                ledger.event_id.in_(earlier),
                and_(
                    or_(ledger.event_id.is_(None), ledger.event_id.not_in(since)),
                    or_(
                        ledger.recorded_at < recorded_at,
                        (ledger.recorded_at == recorded_at)
                        & (ledger.id < first_since.scalar_subquery()),
                    ),
                ),
            ),
        )
        balance = self.db.execute(
            select(func.coalesce(func.sum(ledger.points), 0)).where(prior)
        ).scalar_one()
        earned = self.db.execute(
            select(ledger.occurred_at, ledger.points).where(
                prior, ledger.kind.in_(("earned", "pending"))
            )
        ).all()
        tier = self.db.execute(
            select(tier_history.c.to_tier)
            .where(
                tier_history.c.customer_id == customer_id,
                tier_history.c.event_id.in_(earlier)
                | (
                    tier_history.c.event_id.is_(None)
                    & (tier_history.c.occurred_at < event.occurred_at)
                ),
            )
            .order_by(tier_history.c.id.desc())
            .limit(1)
        ).scalar()
        order_rows = self.db.execute(
            select(orders.c.occurred_at, orders.c.amount, orders.c.refunded_amount).where(
                orders.c.customer_id == customer_id, orders.c.event_id.in_(earlier)
            )
        ).all()
        fired: dict[str, list[datetime]] = defaultdict(list)
        for key, at in self.db.execute(
            select(rule_firings.c.rule_key, rule_firings.c.occurred_at)
            .where(rule_firings.c.customer_id == customer_id, rule_firings.c.event_id.in_(earlier))
            .order_by(rule_firings.c.occurred_at)
        ):
            fired[key].append(at)
        return MemberHistory(
            points_available=int(balance),
            tier=tier,
            events_before=int(before),
            first_event_at=first_at,
            orders=[(at, amount, refunded) for at, amount, refunded in order_rows],
            earned=[(at, int(points)) for at, points in earned],
            firings={key: tuple(times) for key, times in fired.items()},
        )
