"""The members of a group of events, held in memory while the group is decided.

Loaded once per group (service.application.event_ports.LoadedGroup), read by each event's
decision and updated with its changes, so a member's later event sees the earlier one's
effects without asking storage again. What the group changed comes out as one GroupWrite.
A replay or a rules diff keeps one working set for all its members and never writes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from service.application.event_ports import (
    GroupWrite,
    LedgerLineToWrite,
    LoadedGroup,
    LotToCreate,
)
from service.application.member_state import MemberSource, MemberState, MemoryOnly
from service.application.ports import (
    BudgetChange,
    Changes,
    HeldRefund,
    MemberRecord,
    OrderAward,
    OrderRecord,
    ReferrerAward,
    StoredEvent,
)
from service.application.posting import EARNED, PENDING
from service.core.evaluation import BudgetUse
from service.core.ledger import Lot

__all__ = ["MemberSource", "MemberState", "MemoryOnly", "WorkingSet"]


class WorkingSet:
    def __init__(
        self,
        source: MemberSource | None = None,
        budgeted: Iterable[str] = (),
        *,
        keep_writes: bool = True,
    ) -> None:
        self._source: MemberSource = source or MemoryOnly()
        self.members: dict[str, MemberState] = {}
        self.events: dict[str, StoredEvent] = {}
        self.budgets: dict[str, BudgetUse] = {}
        self._budgeted = frozenset(budgeted)
        self._locked_budgets: set[str] = set()
        self._next_lot = -1
        self._keep = keep_writes
        self.write = GroupWrite()
        # Members the group's upsert has just created, none of whose events is applied
        # yet: to the group's earlier events (a referral naming one) they do not exist.
        self._not_yet: set[str] = set()

    @property
    def keeps_writes(self) -> bool:
        """False for a replay that only decides (a rules diff): nothing will be written."""
        return self._keep

    @classmethod
    def loaded(
        cls, group: LoadedGroup, source: MemberSource, budgeted: Iterable[str]
    ) -> WorkingSet:
        ws = cls(source, budgeted)
        for customer_id, record in group.members.items():
            ws.members[customer_id] = MemberState(record)
            if record.events_applied == 0:
                ws._not_yet.add(customer_id)
        ws.events.update(group.events)
        for order in group.orders:
            ws.members[order.customer_id].orders.include(order)
        for customer_id, order_id, award in group.order_awards:
            ws.members[customer_id].order_awards.setdefault(order_id, []).append(award)
        for state in ws.members.values():
            for awards in state.order_awards.values():
                awards.sort(key=lambda a: a.campaign)
        for customer_id, key, at, event_id in group.firings:
            ws.members[customer_id].firings.setdefault(key, []).append((at, event_id))
        for customer_id, lot in group.lots:
            ws.members[customer_id].lots[lot.id] = lot
        for customer_id, at, points in group.earned:
            ws.members[customer_id].earned.append((at, points))
        for referrer_id, at in group.referrals_rewarded:
            ws.members[referrer_id].referrals_rewarded.append(at)
        for held in sorted(group.held_refunds, key=lambda h: (h.occurred_at, h.event_id)):
            ws.members[held.customer_id].held.setdefault(held.order_id, []).append(held)
        for given in group.referrer_awards:
            ws.members[given.customer_id].referrer_awards.setdefault(given.order_id, []).append(
                given
            )
        return ws

    # -- reads, as storage would answer them

    def event(self, event_id: str) -> StoredEvent | None:
        return self.events.get(event_id)

    def member(self, customer_id: str, now: datetime) -> MemberRecord:
        """The member's record, live: changes to it are the group's changes."""
        return self._state(customer_id, now).record

    def read_member(self, customer_id: str) -> MemberRecord | None:
        state = self.members.get(customer_id)
        if state is None or customer_id in self._not_yet:
            return None
        return state.record

    def lock_member(self, customer_id: str, now: datetime) -> MemberRecord:
        return self._state(customer_id, now).record

    def _state(self, customer_id: str, now: datetime) -> MemberState:
        state = self.members.get(customer_id)
        if state is None:
            state = self.members[customer_id] = MemberState(
                self._source.lock_member(customer_id, now)
            )
        return state

    def rule_firings(
        self, customer_id: str, rule_keys: Iterable[str]
    ) -> dict[str, tuple[datetime, ...]]:
        firings = self.members[customer_id].firings
        return {
            key: tuple(sorted(at for at, _ in firings[key])) for key in rule_keys if key in firings
        }

    def orders_between(
        self, customer_id: str, since: datetime, until: datetime
    ) -> tuple[Decimal, int]:
        return self.members[customer_id].orders.between(since, until)

    def tier_value(
        self, customer_id: str, metric: str, since: datetime, until: datetime
    ) -> Decimal:
        state = self.members[customer_id]
        if metric == "points":
            return Decimal(sum(p for at, p in state.earned if since < at <= until))
        spend, count = state.orders.between(since, until)
        return Decimal(count) if metric == "orders" else spend

    def referrals_rewarded(self, referrer_id: str) -> tuple[datetime, ...]:
        state = self.members.get(referrer_id)
        return tuple(sorted(state.referrals_rewarded)) if state is not None else ()

    def lots(self, customer_id: str) -> list[Lot]:
        return [lot for lot in self.members[customer_id].lots.values() if lot.remaining > 0]

    def find_order(self, customer_id: str, order_id: str) -> OrderRecord | None:
        """A copy: the caller changes it and hands it back in Changes."""
        order = self.members[customer_id].orders.by_id.get(order_id)
        return replace(order) if order is not None else None

    def order_awards(self, customer_id: str, order_id: str) -> list[OrderAward]:
        awards = self.members[customer_id].order_awards.get(order_id, [])
        return [replace(award) for award in awards]

    def held_refunds(self, customer_id: str, order_id: str) -> list[HeldRefund]:
        """Refunds of this order held until its purchase came, oldest first (copies)."""
        return [replace(held) for held in self.members[customer_id].held.get(order_id, [])]

    def referrer_awards(self, customer_id: str, order_id: str) -> list[ReferrerAward]:
        """What the order's purchases gave referrers (copies, for a refund to change)."""
        awards = self.members[customer_id].referrer_awards.get(order_id, [])
        return [replace(award) for award in awards]

    def order_event(self, customer_id: str, order_id: str) -> str | None:
        order = self.members[customer_id].orders.by_id.get(order_id)
        return order.event_id if order is not None else None

    def budgets_used(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]:
        """What is known of these budgets: those locked (or seeded) so far. A decision
        that would spend from one not known yet locks it and is taken again if it differs
        (apply_event._decide_with_locks), so budgets are read only when something spends."""
        return {c: self.budgets[c] for c in campaigns if c in self.budgets}

    def lock_budgets(self, campaigns: Iterable[str]) -> dict[str, BudgetUse]:
        names = sorted(campaigns)
        fresh = [c for c in names if c not in self._locked_budgets]
        if fresh:
            self.budgets.update(self._source.lock_budgets(fresh))
            self._locked_budgets.update(fresh)
        return {c: self.budgets.get(c, BudgetUse()) for c in names}

    def dedupe_keys_used(self, customer_id: str, keys: Iterable[str]) -> set[str]:
        known = self.members[customer_id].dedupe_keys
        wanted = set(keys)
        used = wanted & known
        unknown = wanted - known
        if unknown:
            found = self._source.dedupe_keys_used(customer_id, unknown)
            known.update(found)
            used |= found
        return used

    # -- one event's changes, folded in

    def add_event(self, event: StoredEvent) -> None:
        """An event whose changes were folded in without it (Changes.new_event False),
        once its answer is known."""
        self.events[event.event_id] = event
        if self._keep:
            self.write.events.append(event)

    def apply(self, changes: Changes) -> None:
        event = changes.event
        if changes.new_event:
            self.events[event.event_id] = event
        self._not_yet.difference_update(changes.postings)
        own = self.members[event.customer_id]
        write = self.write
        if self._keep and changes.new_event:
            write.events.append(event)
        for customer_id, posting in changes.postings.items():
            state = self.members[customer_id]
            keys = []
            for new in posting.new_lots:
                key = self._next_lot
                self._next_lot -= 1
                keys.append(key)
                state.lots[key] = Lot(
                    key,
                    new.earned_at,
                    new.points,
                    new.expires_at,
                    new.order_id,
                    new.pending,
                    event.event_id,
                )
                if self._keep:
                    write.lots.append(
                        LotToCreate(key, customer_id, event.event_id, new, new.points)
                    )
            for take in posting.takes:
                lot = state.lots[take.lot_id]
                state.lots[take.lot_id] = replace(lot, remaining=lot.remaining - take.points)
                if self._keep:
                    self._take(take.lot_id, take.points)
            for line in posting.ledger:
                if line.kind in (EARNED, PENDING):
                    state.earned.append((event.occurred_at, line.points))
                if self._keep:
                    if line.new_lot is not None:
                        line = replace(line, lot_id=keys[line.new_lot], new_lot=None)
                    write.ledger.append(
                        LedgerLineToWrite(
                            customer_id,
                            event.event_id,
                            event.occurred_at,
                            changes.rules_version,
                            line,
                        )
                    )
            if self._keep:
                write.members[customer_id] = state.record
        for rule_key in changes.firings:
            own.firings.setdefault(rule_key, []).append((event.occurred_at, event.event_id))
            if self._keep:
                write.firings.append(
                    (event.customer_id, rule_key, event.occurred_at, event.event_id)
                )
        if changes.unfire_event is not None:
            gone = changes.unfire_event
            for rule_key, times in own.firings.items():
                own.firings[rule_key] = [(at, e) for at, e in times if e != gone]
            if self._keep:
                write.unfired.append(gone)
        if changes.order is not None:
            self._order(own, changes)
        for change in changes.budgets:
            self._spend(change)
        if changes.held_refunds:
            self._held(own, changes.held_refunds)
        if changes.referrer_awards:
            self._referrer_awards(own, changes.referrer_awards)
        for message in changes.messages:
            if message.dedupe_key is not None and message.status == "queued":
                own.dedupe_keys.add(message.dedupe_key)
        if changes.referral is not None:
            referrer_id, rewarded = changes.referral
            if rewarded:
                self.members[referrer_id].referrals_rewarded.append(event.occurred_at)
        if self._keep:
            write.members[event.customer_id] = own.record
            at, cid, eid = event.occurred_at, event.customer_id, event.event_id
            write.tier_moves.extend((cid, eid, at, move) for move in changes.tier_moves)
            write.offers.extend((cid, eid, at, offer) for offer in changes.offers)
            if changes.referral is not None:
                write.referrals.append((cid, changes.referral[0], eid, at, changes.referral[1]))
            write.messages.extend((cid, eid, message) for message in changes.messages)
            if changes.trace is not None:
                write.traces.append(changes.trace)

    def _take(self, lot_id: int, points: int) -> None:
        write = self.write
        if lot_id > 0:
            write.lot_takes[lot_id] = write.lot_takes.get(lot_id, 0) + points
            return
        for index, lot in enumerate(write.lots):
            if lot.key == lot_id:
                write.lots[index] = replace(lot, remaining=lot.remaining - points)
                return

    def _order(self, own: MemberState, changes: Changes) -> None:
        """A purchase adds to its order (a new one, or a later part of a split shipment);
        a refund hands back its whole order, as it now stands."""
        given = changes.order
        assert given is not None
        orders = own.orders
        known = orders.by_id.get(given.order_id)
        # The records handed in are the event's own (new, or copies find_order and
        # order_awards made), so they are kept as they are, and changed in place after.
        if known is not None:
            orders.exclude(known)
        if changes.event.type == "purchase":
            order = given
            if known is not None:
                order = known
                order.amount += given.amount
                order.points_earned += given.points_earned
                if given.tier_reached is not None:  # a later part qualified the member higher
                    if order.tier_reached is None:
                        order.tier_before = given.tier_before
                    order.tier_reached = given.tier_reached
                    order.tier_reached_at = given.tier_reached_at
            awards = {a.campaign: a for a in own.order_awards.get(given.order_id, [])}
            for added in changes.order_awards:
                was = awards.get(added.campaign)
                if was is None:
                    awards[added.campaign] = added
                else:
                    was.points += added.points
                    was.revenue += added.revenue
            updated = sorted(awards.values(), key=lambda a: a.campaign)
        else:
            order = given
            updated = list(changes.order_awards)
        orders.include(order)
        own.order_awards[given.order_id] = updated
        if self._keep:
            cid = order.customer_id
            self.write.orders[(cid, order.order_id)] = order
            for award in updated:
                self.write.order_awards[(cid, order.order_id, award.campaign)] = award

    def _held(self, own: MemberState, refunds: list[HeldRefund]) -> None:
        """A refund held now joins its order's list; one applied now leaves it."""
        for held in refunds:
            waiting = own.held.setdefault(held.order_id, [])
            waiting[:] = [h for h in waiting if h.event_id != held.event_id]
            if held.applied_by is None:
                waiting.append(held)
            if not waiting:
                del own.held[held.order_id]
            if self._keep:
                self.write.held_refunds[held.event_id] = held

    def _referrer_awards(self, own: MemberState, awards: list[ReferrerAward]) -> None:
        """Awards a purchase gave referrers, new or as a refund left them."""
        for award in awards:
            key = (award.event_id, award.referrer_id, award.campaign)
            known = own.referrer_awards.setdefault(award.order_id, [])
            known[:] = [a for a in known if (a.event_id, a.referrer_id, a.campaign) != key]
            known.append(award)
            if self._keep:
                self.write.referrer_awards[key] = award

    def _spend(self, change: BudgetChange) -> None:
        if change.campaign not in self._budgeted:
            return  # storage keeps budgets only for campaigns that have one
        used = self.budgets.get(change.campaign, BudgetUse())
        self.budgets[change.campaign] = BudgetUse(
            used.points + change.points, used.offers + change.offers, used.revenue + change.revenue
        )
        if not self._keep:
            return
        was = self.write.budgets.get(change.campaign)
        self.write.budgets[change.campaign] = (
            change
            if was is None
            else BudgetChange(
                change.campaign,
                was.points + change.points,
                was.offers + change.offers,
                was.revenue + change.revenue,
            )
        )
