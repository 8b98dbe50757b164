"""Lot arithmetic: FIFO, clawback in proportion, debt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.errors import InsufficientPoints
from service.core.ledger import Lot, clawback_points, pay_debt, settle_clawback, take_fifo

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def lot(id_: int, remaining: int, days: int = 0, **kw) -> Lot:  # type: ignore[no-untyped-def]
    earned = T0 + timedelta(days=days)
    return Lot(id_, earned, remaining, earned + timedelta(days=365), **kw)


def test_fifo_takes_the_soonest_to_expire_first() -> None:
    lots = [lot(2, 50, days=10), lot(1, 30, days=0), lot(3, 100, days=20)]
    takes = take_fifo(lots, 60)
    assert [(t.lot_id, t.points) for t in takes] == [(1, 30), (2, 30)]


def test_fifo_refuses_more_than_available_and_skips_pending() -> None:
    with pytest.raises(InsufficientPoints):
        take_fifo([lot(1, 30), lot(2, 100, pending=True)], 31)


def test_partial_refunds_add_up_to_a_full_one() -> None:
    earned, clawed, refunded = 121, 0, Decimal(0)
    for part in (Decimal("33.33"), Decimal("33.33"), Decimal("33.34")):
        points, refunded = clawback_points(earned, clawed, Decimal(100), refunded, part)
        clawed += points
    assert clawed == earned


@given(
    earned=st.integers(0, 10_000),
    amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10_000), places=2),
    parts=st.lists(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal(5_000), places=2), max_size=6
    ),
)
def test_clawback_never_exceeds_what_was_earned(earned, amount, parts) -> None:  # type: ignore[no-untyped-def]
    clawed, refunded = 0, Decimal(0)
    for part in parts:
        points, refunded = clawback_points(earned, clawed, amount, refunded, part)
        assert points >= 0
        clawed += points
    assert clawed <= earned


def test_clawback_takes_the_orders_own_lots_first_then_records_a_shortfall() -> None:
    lots = [lot(1, 10, order_id="o-1"), lot(2, 5, order_id="o-2")]
    settled = settle_clawback(lots, 20, "o-1")
    assert [(t.lot_id, t.points) for t in settled.takes] == [(1, 10), (2, 5)]
    assert settled.shortfall == 5


def test_debt_is_paid_before_anything_is_credited() -> None:
    assert pay_debt(30, 100) == (30, 70)
    assert pay_debt(300, 100) == (100, 0)
    assert pay_debt(0, 100) == (0, 100)
