"""The catalogues a member app shows: rewards to spend points on, offers campaigns issue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from service.application.ports import Transaction
from service.core.programme import Programme


class StockReads(Protocol):
    def reward_stock_taken(self) -> dict[str, int]: ...


def reward_catalogue(
    transactions: Callable[[], Transaction[StockReads]], programme: Programme
) -> list[dict[str, Any]]:
    taken: dict[str, int] = {}
    if any(reward.stock is not None for reward in programme.rewards):
        with transactions() as uow:
            taken = uow.store.reward_stock_taken()
    return [
        {
            "id": reward.id,
            "title": reward.title,
            "description": reward.description,
            "cost": reward.cost,
            "stock": reward.stock,
            "stock_left": (
                max(reward.stock - taken.get(reward.id, 0), 0) if reward.stock is not None else None
            ),
            "per_member": reward.per_member,
        }
        for reward in programme.rewards
    ]


def offer_catalogue(programme: Programme) -> list[dict[str, Any]]:
    return [
        {
            "id": offer.id,
            "title": offer.title,
            "description": offer.description,
            "discount_percent": offer.discount_percent,
            "valid_for_days": offer.valid_for.days,
        }
        for offer in programme.offers
    ]
