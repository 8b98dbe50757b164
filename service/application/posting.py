"""Turning decided effects into ledger lines, lots and member balances.

Arithmetic only; the caller hands the result to storage in one call. Invariants kept:
balance (available + pending) = what is left in the member's lots = the sum of ledger
points; debt = the sum of ledger debt; nothing goes below zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal

from service.application.ports import (
    BudgetChange,
    LedgerLine,
    NewLot,
    OrderAward,
    OrderRecord,
    Posting,
    ReferrerAward,
)
from service.core.effects import AwardPoints, ClawBackPoints, Effect, IssueOffer
from service.core.events import Event
from service.core.expiry import lot_expiry
from service.core.ledger import Clawback, Lot, clawback_points, pay_debt, settle_clawback
from service.core.programme import PointsPolicy

EARNED, PENDING, DEBT_PAID, CLAWED_BACK, DEBT_RECORDED = (
    "earned",
    "pending",
    "debt_paid",
    "clawed_back",
    "debt_recorded",
)
REDEEMED, REDEMPTION_REVERSED, EXPIRED = "redeemed", "redemption_reversed", "expired"
DEBT_FORGIVEN = "debt_forgiven"  # a shortfall the programme let go (points.shortfall)


def post_awards(
    posting: Posting, event: Event, awards: Sequence[AwardPoints], policy: PointsPolicy
) -> None:
    member = posting.member
    pending = event.type in policy.pending_for and policy.pending_days > 0
    available_at = (
        event.occurred_at + timedelta(days=policy.pending_days) if pending else event.occurred_at
    )
    expires_at = lot_expiry(policy, event.occurred_at)
    order_id = event.order_id if posting.member.customer_id == event.customer_id else None
    for award in awards:
        paid, credited = pay_debt(member.points_debt, award.points)
        if credited:
            posting.new_lots.append(
                NewLot(credited, event.occurred_at, available_at, expires_at, order_id, pending)
            )
            posting.ledger.append(
                LedgerLine(
                    PENDING if pending else EARNED,
                    credited,
                    campaign=award.campaign,
                    rule=award.rule,
                    order_id=order_id,
                    new_lot=len(posting.new_lots) - 1,
                )
            )
            if pending:
                member.points_pending += credited
            else:
                member.points_available += credited
        if paid:
            member.points_debt -= paid
            posting.ledger.append(
                LedgerLine(
                    DEBT_PAID,
                    0,
                    debt=-paid,
                    campaign=award.campaign,
                    rule=award.rule,
                    order_id=order_id,
                    note=f"{paid} of {award.points} points paid debt",
                )
            )


def post_clawback(
    posting: Posting,
    event: Event,
    order: OrderRecord | None,
    lots: Sequence[Lot],
    note: str | None = None,
    *,
    forgive: bool = False,
) -> ClawBackPoints | None:
    """Take back the refunded share of an order's points, recording any shortfall as debt
    (or, with ``forgive``, only noting it).

    Updates ``order`` (refunded amount, points clawed) for the caller to store.
    """
    if order is None or event.amount is None or event.order_id is None:
        return None
    points, refunded_after = clawback_points(
        order.points_earned, order.points_clawed, order.amount, order.refunded_amount, event.amount
    )
    order.refunded_amount = refunded_after
    if points == 0:
        return None
    order.points_clawed += points
    settled = settle_clawback(lots, points, event.order_id)
    _post_settled(posting, settled, event.order_id, note, forgive=forgive)
    return ClawBackPoints(points, event.order_id, settled.shortfall)


def post_referrer_clawback(
    posting: Posting,
    event: Event,
    order: OrderRecord,
    refunded_before: Decimal,
    awards: Sequence[ReferrerAward],
    lots: Sequence[Lot],
    *,
    forgive: bool = False,
) -> ClawBackPoints | None:
    """Take back from a referrer the refunded share of what the order's purchases gave
    them, as the buyer's own points are: from the lots those purchases made first, the
    rest oldest first, and what was spent as debt. Updates each award's points clawed."""
    if event.amount is None or event.order_id is None:
        return None
    points = 0
    for award in awards:
        taken, _after = clawback_points(
            award.points, award.points_clawed, order.amount, refunded_before, event.amount
        )
        award.points_clawed += taken
        points += taken
    if points == 0:
        return None
    settled = settle_clawback(lots, points, None, {award.event_id for award in awards})
    note = f"{event.customer_id}'s order {event.order_id}, which earned this, was refunded"
    # No order_id on these lines: the order is the buyer's, not the referrer's.
    _post_settled(posting, settled, None, note, forgive=forgive)
    return ClawBackPoints(points, event.order_id, settled.shortfall, posting.member.customer_id)


def _post_settled(
    posting: Posting,
    settled: Clawback,
    order_id: str | None,
    note: str | None,
    *,
    forgive: bool,
) -> None:
    """The ledger lines and balances of a settled clawback."""
    member = posting.member
    posting.takes.extend(settled.takes)
    for take in settled.takes:
        posting.ledger.append(
            LedgerLine(CLAWED_BACK, -take.points, order_id=order_id, lot_id=take.lot_id, note=note)
        )
        if take.pending:
            member.points_pending -= take.points
        else:
            member.points_available -= take.points
    if settled.shortfall and forgive:
        posting.ledger.append(
            LedgerLine(
                DEBT_FORGIVEN,
                0,
                order_id=order_id,
                note=f"{settled.shortfall} points were already spent; the programme forgives them",
            )
        )
    elif settled.shortfall:
        member.points_debt += settled.shortfall
        posting.ledger.append(
            LedgerLine(
                DEBT_RECORDED,
                0,
                debt=settled.shortfall,
                order_id=order_id,
                note=f"{settled.shortfall} points were already spent; later earnings repay them",
            )
        )


def return_budgets(order: OrderRecord, awards: Sequence[OrderAward]) -> list[BudgetChange]:
    """Give back to each campaign's budget the refunded share of what it spent on the order."""
    if order.amount <= 0:
        return []
    share = min(order.refunded_amount / order.amount, Decimal(1))
    changes = []
    for award in awards:
        target = (
            award.points
            if share == 1
            else int((award.points * share).to_integral_value(ROUND_FLOOR))
        )
        give_back = target - award.points_returned
        if give_back <= 0:
            continue
        revenue = (
            award.revenue * Decimal(give_back) / Decimal(award.points)
            if award.points
            else Decimal(0)
        )
        award.points_returned += give_back
        revenue = revenue.quantize(Decimal("0.0001"))  # money is kept to four places
        changes.append(BudgetChange(award.campaign, points=-give_back, revenue=-revenue))
    return changes


def spent_from_budgets(
    event: Event, effects: Sequence[Effect], budgeted: Collection[str]
) -> list[BudgetChange]:
    """What an event's effects take from the budgets of the campaigns that have one:
    points, offers, and (once per campaign that gave points) the purchase's revenue."""
    points: dict[str, int] = defaultdict(int)
    offers: dict[str, int] = defaultdict(int)
    for effect in effects:
        if isinstance(effect, AwardPoints) and effect.campaign in budgeted:
            points[effect.campaign] += effect.points
        elif isinstance(effect, IssueOffer) and effect.campaign in budgeted:
            offers[effect.campaign] += 1
    revenue = event.amount if event.type == "purchase" and event.amount is not None else Decimal(0)
    return [
        BudgetChange(
            campaign,
            points[campaign],
            offers[campaign],
            revenue if points[campaign] else Decimal(0),
        )
        for campaign in sorted(set(points) | set(offers))
    ]
