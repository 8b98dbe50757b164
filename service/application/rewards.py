"""Spending points on the rewards catalogue, and giving them back."""

from __future__ import annotations

from typing import Any

from service.application.ports import (
    Clock,
    LedgerLine,
    MemberRecord,
    Posting,
    Redemption,
    UnitOfWorkFactory,
)
from service.application.posting import DEBT_PAID, REDEEMED, REDEMPTION_REVERSED
from service.application.rules_runtime import ActiveRules
from service.core.errors import EventConflict, NotFound, RewardUnavailable
from service.core.ledger import Take, pay_debt, take_fifo


def redeem_reward(
    uow_factory: UnitOfWorkFactory,
    rules: ActiveRules,
    customer_id: str,
    reward_id: str,
    redemption_id: str,
    clock: Clock,
) -> tuple[str, dict[str, Any]]:
    """Spend a reward's cost, oldest points first. Returns (created | duplicate, answer).

    Raises InsufficientPoints when the balance is short: nothing is spent then.
    """
    reward = rules.ruleset.programme.reward(reward_id)
    if reward is None:
        raise NotFound(f"no reward {reward_id!r} in the catalogue")
    with uow_factory() as uow:
        store = uow.store
        if store.read_member(customer_id) is None:
            raise NotFound(f"no member {customer_id!r}")
        member = store.lock_member(customer_id, clock())
        earlier = store.find_redemption(redemption_id)
        if earlier is not None:
            return "duplicate", _repeat(earlier, customer_id, reward_id, member.points_available)
        takes = take_fifo(store.lots(customer_id), reward.cost)
        # The member is locked, so their count is exact; the stock row is locked after the
        # member, always in that order, so racing redemptions neither oversell nor deadlock.
        if reward.per_member is not None and (
            store.redemptions_of(customer_id, reward_id) >= reward.per_member
        ):
            raise RewardUnavailable(
                f"reward {reward_id!r} is limited to {reward.per_member} per member"
            )
        if reward.stock is not None and not store.take_reward_stock(reward_id, reward.stock):
            raise RewardUnavailable(f"reward {reward_id!r} is out of stock")
        now = clock()
        posting = Posting(
            member,
            takes=takes,
            ledger=[
                LedgerLine(
                    REDEEMED,
                    -take.points,
                    lot_id=take.lot_id,
                    note=f"reward {reward_id} ({redemption_id})",
                )
                for take in takes
            ],
        )
        member.points_available -= reward.cost
        redemption = Redemption(
            redemption_id,
            customer_id,
            reward_id,
            reward.cost,
            "completed",
            [[take.lot_id, take.points] for take in takes],
            now,
        )
        store.save_redemption(redemption, posting, now)
        uow.commit()
    return "created", _answer(redemption, member.points_available)


def reverse_redemption(
    uow_factory: UnitOfWorkFactory, customer_id: str, redemption_id: str, clock: Clock
) -> dict[str, Any]:
    """Give a redemption's points back to the lots they came from (idempotent)."""
    with uow_factory() as uow:
        store = uow.store
        if store.read_member(customer_id) is None:
            raise NotFound(f"no member {customer_id!r}")
        member = store.lock_member(customer_id, clock())
        redemption = store.find_redemption(redemption_id)
        if redemption is None or redemption.customer_id != customer_id:
            raise NotFound(f"no redemption {redemption_id!r} for member {customer_id!r}")
        if redemption.status == "reversed":
            return _answer(redemption, member.points_available)
        now = clock()
        posting = _giving_back(member, redemption)
        store.reverse_redemption(redemption, posting, now)
        store.give_back_reward_stock(redemption.reward_id)
        uow.commit()
    return _answer(
        Redemption(**{**_fields(redemption), "status": "reversed"}), member.points_available
    )


def _giving_back(member: MemberRecord, redemption: Redemption) -> Posting:
    """The points come back as every credit does: they pay debt first, the rest goes back
    to the lots they were taken from, the lots spent last (latest to expire) first."""
    paid, credited = pay_debt(member.points_debt, redemption.points)
    posting = Posting(member)
    reversal = f"reversal of {redemption.redemption_id}"
    for lot_id, points in reversed(redemption.takes):
        back = min(points, credited)
        if back == 0:
            break
        credited -= back
        # A negative take gives points back to the lot they were taken from.
        posting.takes.append(Take(lot_id, -back))
        posting.ledger.append(LedgerLine(REDEMPTION_REVERSED, back, lot_id=lot_id, note=reversal))
        member.points_available += back
    if paid:
        member.points_debt -= paid
        posting.ledger.append(
            LedgerLine(
                DEBT_PAID,
                0,
                debt=-paid,
                note=f"{paid} of {redemption.points} points paid debt ({reversal})",
            )
        )
    return posting


def _repeat(
    earlier: Redemption, customer_id: str, reward_id: str, available: int
) -> dict[str, Any]:
    if earlier.customer_id != customer_id or earlier.reward_id != reward_id:
        raise EventConflict(
            f"redemption {earlier.redemption_id!r} was already used for another member or reward"
        )
    return _answer(earlier, available)


def _fields(redemption: Redemption) -> dict[str, Any]:
    return {name: getattr(redemption, name) for name in Redemption.__dataclass_fields__}


def _answer(redemption: Redemption, available: int) -> dict[str, Any]:
    return {
        "redemption_id": redemption.redemption_id,
        "customer_id": redemption.customer_id,
        "reward_id": redemption.reward_id,
        "points": redemption.points,
        "status": redemption.status,
        "points_available": available,
    }
