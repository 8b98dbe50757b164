"""Ledger arithmetic: lots, FIFO consumption, refund clawback and debt.

Points live in lots (one per award, with what is left of it), so expiry and spending
can take them oldest first. A balance is always the sum of what is left in the lots,
and equally the sum of the signed ledger entries; these functions keep both true.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from service.core.errors import InsufficientPoints


@dataclass(frozen=True, slots=True)
class Lot:
    id: int
    earned_at: datetime
    remaining: int
    expires_at: datetime | None = None
    order_id: str | None = None
    pending: bool = False
    event_id: str | None = None  # the event that earned it


@dataclass(frozen=True, slots=True)
class Take:
    lot_id: int
    points: int
    pending: bool = False


def fifo_order(lots: Sequence[Lot]) -> list[Lot]:
    """The order points are spent in: soonest to expire first, then oldest, then by id."""
    return sorted(
        lots,
        key=lambda lot: (
            lot.expires_at.timestamp() if lot.expires_at else math.inf,
            lot.earned_at.timestamp(),
            lot.id,
        ),
    )


def take_fifo(lots: Sequence[Lot], points: int) -> list[Take]:
    """Take ``points`` from available lots, oldest first; refuse if there are not enough."""
    available = [lot for lot in lots if not lot.pending and lot.remaining > 0]
    have = sum(lot.remaining for lot in available)
    if points > have:
        raise InsufficientPoints(f"needs {points} points, {have} available")
    takes, left = [], points
    for lot in fifo_order(available):
        if left == 0:
            break
        taken = min(lot.remaining, left)
        takes.append(Take(lot.id, taken))
        left -= taken
    return takes


def clawback_points(
    earned_on_order: int,
    clawed_so_far: int,
    order_amount: Decimal,
    refunded_before: Decimal,
    refund_amount: Decimal,
) -> tuple[int, Decimal]:
    """Points to take back for a refund, in proportion to the share of the order refunded.

    Computed from the cumulative refunded share, so several partial refunds add up to
    exactly what one full refund would take. Returns (points, refunded total after).
    """
    if order_amount <= 0:
        return 0, refunded_before
    refunded_after = min(order_amount, refunded_before + refund_amount)
    target = (Decimal(earned_on_order) * refunded_after / order_amount).to_integral_value(
        ROUND_FLOOR
    )
    if refunded_after == order_amount:
        target = Decimal(earned_on_order)
    return max(0, int(target) - clawed_so_far), refunded_after


@dataclass(frozen=True, slots=True)
class Clawback:
    takes: tuple[Take, ...]
    shortfall: int  # points already spent: owed by the member as debt

    @property
    def taken(self) -> int:
        return sum(take.points for take in self.takes)


def settle_clawback(
    lots: Sequence[Lot],
    points: int,
    order_id: str | None,
    earned_by: Collection[str] = (),
) -> Clawback:
    """Take back points: first from the lots they were paid into (pending or not): the
    order's own, or those the events ``earned_by`` made (a referrer's thank-you for
    another member's order); then FIFO from the rest.

    What cannot be taken without going below zero is returned as a shortfall.
    """

    def paid_into(lot: Lot) -> bool:
        return (order_id is not None and lot.order_id == order_id) or lot.event_id in earned_by

    own = [lot for lot in lots if paid_into(lot) and lot.remaining > 0]
    others = [lot for lot in fifo_order(lots) if not paid_into(lot) and lot.remaining > 0]
    others = [lot for lot in others if not lot.pending]
    takes, left = [], points
    for lot in [*own, *others]:
        if left == 0:
            break
        taken = min(lot.remaining, left)
        takes.append(Take(lot.id, taken, lot.pending))
        left -= taken
    return Clawback(tuple(takes), left)


def pay_debt(debt: int, award: int) -> tuple[int, int]:
    """Earnings pay debt first. Returns (paid towards debt, points left to credit)."""
    paid = min(debt, award)
    return paid, award - paid
