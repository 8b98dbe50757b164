"""Replaying events through one rules version, with the members held in memory.

The decisions are the live service's own: ``evaluate`` from the core, the ledger and tier
arithmetic, and the same application steps ``record_event`` takes (posting awards and
clawbacks, giving budgets back on refunds, limit counts, referrals, member updates). Only
the storage differs: dicts instead of tables, and no transactions. Scheduled jobs (expiry,
release of pending points, tier reviews) are not run, just as a replay of events alone
would not trigger them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from service.application.members import segment_after, update_member
from service.application.messages import event_messages
from service.application.ports import (
    BudgetChange,
    IssuedOffer,
    MemberRecord,
    OrderAward,
    OrderRecord,
    Posting,
)
from service.application.posting import (
    EARNED,
    PENDING,
    post_awards,
    post_clawback,
    return_budgets,
    spent_from_budgets,
)
from service.application.replay_records import (
    CampaignTally,
    CustomerOutcome,
    MemberOrders,
    MemberSeed,
    ReplayResult,
)
from service.core.customer import CustomerSnapshot
from service.core.effects import (
    AwardPoints,
    Effect,
    IssueOffer,
    TagCustomer,
)
from service.core.evaluation import BudgetUse, Matcher, evaluate
from service.core.events import Event
from service.core.ledger import Lot
from service.core.programme import RuleSet
from service.core.referrals import ReferralContext, links_members

_FIRING_EFFECTS = (AwardPoints, TagCustomer, IssueOffer)
__all__ = ["CampaignTally", "CustomerOutcome", "MemberSeed", "Replay", "ReplayResult"]


@dataclass(slots=True)
class _Member:
    record: MemberRecord
    lots: dict[int, Lot] = field(default_factory=dict)
    orders: MemberOrders = field(default_factory=MemberOrders)
    order_awards: dict[str, list[OrderAward]] = field(default_factory=dict)
    firings: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    earned: list[tuple[datetime, int]] = field(default_factory=list)
    referrals_rewarded: list[datetime] = field(default_factory=list)
    dedupe_keys: set[str] = field(default_factory=set)


class Replay:
    """One rules version, fed events in the order the service received them."""

    def __init__(
        self,
        ruleset: RuleSet,
        matcher: Matcher,
        seeds: Mapping[str, MemberSeed] | None = None,
        budgets: Mapping[str, BudgetUse] | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.matcher = matcher
        self.result = ReplayResult(ruleset.version)
        self._seeds = dict(seeds or {})
        self._members: dict[str, _Member] = {}
        self._seen: set[str] = set()
        self._lot_ids = 0
        self._budgeted = frozenset(c.id for c in ruleset.campaigns if c.budget is not None)
        self._budgets: dict[str, BudgetUse] = {
            c: use for c, use in (budgets or {}).items() if c in self._budgeted
        }
        self._limited = tuple(rule.key for rule in ruleset.rules if rule.limit is not None)
        tiers, rfm = ruleset.programme.tiers, ruleset.programme.rfm
        self._tier_window, self._rfm_window = tiers.window, rfm.window
        self._lowest = tiers.levels[0].name if tiers.levels else None

    # -- one event, as record_event applies it

    def apply(self, event: Event) -> None:
        if event.event_id in self._seen:
            self.result.duplicates += 1  # the service answers a repeat and changes nothing
            return
        self._seen.add(event.event_id)
        programme = self.ruleset.programme
        own = self._member(event.customer_id, event.occurred_at)
        snapshot = self._snapshot(own, event)
        referral = self._referral_context(event)
        evaluation = evaluate(
            self.ruleset,
            self.matcher,
            snapshot,
            event,
            budgets_used=self._budgets,
            referral=referral,
        )
        postings = {event.customer_id: Posting(own.record)}
        for effect in evaluation.effects:
            if isinstance(effect, AwardPoints) and effect.customer_id:
                other = effect.customer_id
                if other not in postings:
                    postings[other] = Posting(self._member(other, event.occurred_at).record)
        effects: list[Effect] = list(evaluation.effects)
        budget_changes: list[BudgetChange] = []
        if event.type == "refund":
            self._refund(own, postings[event.customer_id], event, effects, budget_changes)
        self._awards(postings, event, evaluation.effects)
        if event.type == "purchase" and event.order_id is not None and event.amount is not None:
            self._record_order(own, event, evaluation.effects)
        self._spend(event, evaluation.effects, budget_changes)
        self._referral(own, postings, event, snapshot, referral)
        fired = {f"{e.campaign}/{e.rule}" for e in effects if isinstance(e, _FIRING_EFFECTS)}
        for key in fired:
            own.firings.setdefault(key, []).append((event.occurred_at, event.event_id))
        update_member(own.record, event, evaluation.effects)
        own.record.segment = segment_after(programme.rfm, snapshot, event)
        self.result.count(event.customer_id, effects)
        self._queue(own, event, effects)

    def _queue(self, member: _Member, event: Event, effects: list[Effect]) -> None:
        """The outbox messages the service queues for the event (rule messages and its
        notices of tier changes and offers), less those a used dedupe key suppresses."""
        offers = [
            IssuedOffer("", e.offer, e.valid_until, e.campaign, e.rule)
            for e in effects
            if isinstance(e, IssueOffer)
        ]
        messages = event_messages(event, effects, offers, self.ruleset.programme, event.occurred_at)
        queued = []
        for message in messages:
            key = message.dedupe_key
            if key is not None:
                if key in member.dedupe_keys:
                    continue
                member.dedupe_keys.add(key)
            queued.append(message.campaign)
        self.result.count_messages(event.customer_id, queued)

    def _member(self, customer_id: str, at: datetime) -> _Member:
        member = self._members.get(customer_id)
        if member is not None:
            return member
        seed = self._seeds.pop(customer_id, None)
        if seed is None:
            member = _Member(MemberRecord(customer_id, first_seen_at=at))
        else:
            member = _Member(
                replace(seed.record, tags=list(seed.record.tags)),
                firings={k: list(v) for k, v in seed.firings.items()},
                earned=list(seed.earned),
                referrals_rewarded=list(seed.referrals_rewarded),
            )
            for order in seed.orders:
                member.orders.include(replace(order))
            member.order_awards = {
                order_id: [replace(award) for award in awards]
                for order_id, awards in seed.order_awards.items()
            }
            self._opening_lot(member, at)
        self._members[customer_id] = member
        return member

    def _opening_lot(self, member: _Member, at: datetime) -> None:
        """A seeded balance is one lot, spendable and never expiring within the replay."""
        record = member.record
        for points, pending in ((record.points_available, False), (record.points_pending, True)):
            if points > 0:
                self._lot_ids += 1
                member.lots[self._lot_ids] = Lot(self._lot_ids, at, points, None, None, pending)

    def _snapshot(self, member: _Member, event: Event) -> CustomerSnapshot:
        """What gather() reads from the tables, read from memory."""
        record, at = member.record, event.occurred_at
        # As evaluate() would: a member with no tier yet stands on the lowest level.
        metric = self.ruleset.programme.tiers.metric
        recent_spend, recent_orders = member.orders.between(at - self._rfm_window, at)
        if metric == "points":
            since = at - self._tier_window
            tier_value = Decimal(sum(p for t, p in member.earned if since < t <= at))
        else:
            spend, count = (
                (recent_spend, recent_orders)
                if self._tier_window == self._rfm_window
                else member.orders.between(at - self._tier_window, at)
            )
            tier_value = Decimal(count) if metric == "orders" else spend
        firings = member.firings
        return CustomerSnapshot(
            customer_id=record.customer_id,
            tier=record.tier or self._lowest,
            points_available=record.points_available,
            points_pending=record.points_pending,
            points_debt=record.points_debt,
            lifetime_spend=record.lifetime_spend,
            order_count=record.order_count,
            last_purchase_at=record.last_purchase_at,
            enrolled_at=record.enrolled_at,
            birthday=record.birthday,
            timezone=record.timezone,
            tags=frozenset(record.tags),
            is_new=record.events_applied == 0,
            rule_firings={
                key: tuple(t for t, _ in firings[key]) for key in self._limited if key in firings
            },
            tier_until=record.tier_until,
            tier_value=tier_value,
            recent_orders=recent_orders,
            recent_spend=recent_spend,
            referred_by=record.referred_by,
        )

    def _referral_context(self, event: Event) -> ReferralContext | None:
        if event.type != "referral" or event.referrer_id is None:
            return None
        referrer = self._members.get(event.referrer_id)
        if referrer is None and event.referrer_id in self._seeds:
            referrer = self._member(event.referrer_id, event.occurred_at)
        if referrer is None:
            return ReferralContext(referrer_known=False)
        code = referrer.record.referral_code
        return ReferralContext(
            referrer_known=True,
            referrer_rewarded_at=tuple(referrer.referrals_rewarded),
            # Codes are drawn at random per database; a replay only knows seeded ones.
            code_matches=event.code is None or code is None or event.code == code,
        )

    def _refund(
        self,
        member: _Member,
        posting: Posting,
        event: Event,
        effects: list[Effect],
        budget_changes: list[BudgetChange],
    ) -> None:
        if event.order_id is None:
            return
        order = member.orders.by_id.get(event.order_id)
        lots = [lot for lot in member.lots.values() if lot.remaining > 0]
        if order is not None:
            member.orders.exclude(order)
        clawback = post_clawback(posting, event, order, lots)
        if order is not None:
            member.orders.include(order)
        self._take(member, posting)
        if clawback is not None:
            effects.append(clawback)
        if order is None:
            return
        awards = member.order_awards.get(event.order_id, [])
        budget_changes.extend(return_budgets(order, awards))
        if order.refunded_amount >= order.amount and order.event_id is not None:
            unfired = order.event_id
            for key, times in member.firings.items():
                member.firings[key] = [(t, e) for t, e in times if e != unfired]

    def _awards(
        self, postings: dict[str, Posting], event: Event, effects: tuple[Effect, ...]
    ) -> None:
        policy = self.ruleset.programme.points
        by_member: dict[str, list[AwardPoints]] = defaultdict(list)
        for effect in effects:
            if isinstance(effect, AwardPoints):
                by_member[effect.customer_id or event.customer_id].append(effect)
        for customer_id, awards in by_member.items():
            posting = postings[customer_id]
            post_awards(posting, event, awards, policy)
            member = self._members[customer_id]
            for lot in posting.new_lots:
                self._lot_ids += 1
                member.lots[self._lot_ids] = Lot(
                    self._lot_ids,
                    lot.earned_at,
                    lot.points,
                    lot.expires_at,
                    lot.order_id,
                    lot.pending,
                )
            member.earned.extend(
                (event.occurred_at, line.points)
                for line in posting.ledger
                if line.kind in (EARNED, PENDING)
            )

    @staticmethod
    def _take(member: _Member, posting: Posting) -> None:
        for take in posting.takes:
            lot = member.lots[take.lot_id]
            member.lots[take.lot_id] = replace(lot, remaining=lot.remaining - take.points)
        posting.takes.clear()

    def _record_order(self, member: _Member, event: Event, effects: tuple[Effect, ...]) -> None:
        assert event.order_id is not None
        assert event.amount is not None
        own = [e for e in effects if isinstance(e, AwardPoints) and e.customer_id is None]
        order = member.orders.by_id.get(event.order_id)
        if order is None:
            order = OrderRecord(
                event.customer_id,
                event.order_id,
                event.amount,
                event.occurred_at,
                event_id=event.event_id,
            )
        else:
            member.orders.exclude(order)
            order.amount += event.amount  # a later part of the same order (split shipment)
        member.orders.include(order)
        order.points_earned += sum(e.points for e in own)
        per_campaign: dict[str, int] = defaultdict(int)
        for effect in own:
            per_campaign[effect.campaign] += effect.points
        awards = member.order_awards.setdefault(event.order_id, [])
        for campaign, points in sorted(per_campaign.items()):
            known = next((a for a in awards if a.campaign == campaign), None)
            if known is None:
                awards.append(OrderAward(campaign, points, 0, event.amount, event.event_id))
            else:
                known.points += points
                known.revenue += event.amount
        awards.sort(key=lambda a: a.campaign)

    def _spend(
        self, event: Event, effects: tuple[Effect, ...], budget_changes: list[BudgetChange]
    ) -> None:
        budget_changes.extend(spent_from_budgets(event, effects, self._budgeted))
        for change in budget_changes:
            if change.campaign not in self._budgeted:
                continue  # storage keeps budgets only for campaigns that have one
            used = self._budgets.get(change.campaign, BudgetUse())
            self._budgets[change.campaign] = BudgetUse(
                used.points + change.points,
                used.offers + change.offers,
                used.revenue + change.revenue,
            )

    def _referral(
        self,
        member: _Member,
        postings: dict[str, Posting],
        event: Event,
        snapshot: CustomerSnapshot,
        referral: ReferralContext | None,
    ) -> None:
        policy = self.ruleset.programme.referrals
        if event.referrer_id is None or not links_members(event, snapshot, referral, policy):
            return
        posting = postings.get(event.referrer_id)
        if posting is not None and posting.ledger:
            self._members[event.referrer_id].referrals_rewarded.append(event.occurred_at)
        member.record.referred_by = event.referrer_id

    # -- what the report counts

    def finish(self) -> ReplayResult:
        """Close the books: final balances and tiers, budgets, the tier distribution."""
        result = self.result
        lowest = self.ruleset.programme.tiers.level(None)
        tiers: Counter[str] = Counter()
        for customer_id, member in self._members.items():
            record = member.record
            outcome = result.customers.get(customer_id)
            if outcome is None:
                outcome = result.customers[customer_id] = CustomerOutcome()
            outcome.balance = record.points_available + record.points_pending
            outcome.debt = record.points_debt
            outcome.tier = record.tier or (lowest.name if lowest else None)
            tiers[outcome.tier or "-"] += 1
        result.tiers = dict(sorted(tiers.items()))
        result.budgets = dict(sorted(self._budgets.items()))
        return result
