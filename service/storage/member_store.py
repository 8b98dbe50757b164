"""Storage for what members hold beside points: issued offers and reward redemptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from service.application.ports import MemberOffer, Posting, Redemption
from service.storage.tables import member_offers, redemptions, reward_stock


class MemberOffersStore:
    db: Connection
    dialect: str

    def write_posting(
        self,
        posting: Posting,
        event_id: str | None,
        occurred_at: datetime,
        version: str | None,
        now: datetime,
    ) -> None:
        raise NotImplementedError

    def member_offers(self, customer_id: str) -> list[MemberOffer]:
        rows = self.db.execute(
            select(member_offers)
            .where(member_offers.c.customer_id == customer_id)
            .order_by(member_offers.c.issued_at.desc())
        ).mappings()
        return [_offer(row) for row in rows]

    def lock_offer(self, code: str) -> MemberOffer | None:
        query = select(member_offers).where(member_offers.c.code == code)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = self.db.execute(query).mappings().first()
        return _offer(row) if row is not None else None

    def redeem_offer(self, code: str, at: datetime, reference: str | None) -> None:
        self.db.execute(
            update(member_offers)
            .where(member_offers.c.code == code)
            .values(status="redeemed", redeemed_at=at, redemption_ref=reference)
        )

    def offer_reference(self, code: str) -> str | None:
        query = select(member_offers.c.redemption_ref).where(member_offers.c.code == code)
        return self.db.execute(query).scalar()

    def find_redemption(self, redemption_id: str) -> Redemption | None:
        query = select(redemptions).where(redemptions.c.redemption_id == redemption_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = self.db.execute(query).mappings().first()
        if row is None:
            return None
        return Redemption(
            row["redemption_id"],
            row["customer_id"],
            row["reward_id"],
            row["points"],
            row["status"],
            [list(t) for t in row["takes"]],
            row["created_at"],
        )

    def redemptions_of(self, customer_id: str, reward_id: str) -> int:
        """The member's redemptions of the reward that stand (not reversed)."""
        query = select(func.count()).where(
            redemptions.c.customer_id == customer_id,
            redemptions.c.reward_id == reward_id,
            redemptions.c.status == "completed",
        )
        return int(self.db.scalar(query) or 0)

    def take_reward_stock(self, reward_id: str, stock: int) -> bool:
        """One of the reward's stock, if any is left; the row stays locked until commit."""
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self.db.execute(
            dialect_insert(reward_stock)
            .values(reward_id=reward_id, taken=0)
            .on_conflict_do_nothing()
        )
        query = select(reward_stock.c.taken).where(reward_stock.c.reward_id == reward_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        if int(self.db.scalar(query) or 0) >= stock:
            return False
        self.db.execute(
            update(reward_stock)
            .where(reward_stock.c.reward_id == reward_id)
            .values(taken=reward_stock.c.taken + 1)
        )
        return True

    def reward_stock_taken(self) -> dict[str, int]:
        rows = self.db.execute(select(reward_stock.c.reward_id, reward_stock.c.taken))
        return {reward_id: int(taken) for reward_id, taken in rows}

    def give_back_reward_stock(self, reward_id: str) -> None:
        self.db.execute(
            update(reward_stock)
            .where(reward_stock.c.reward_id == reward_id, reward_stock.c.taken > 0)
            .values(taken=reward_stock.c.taken - 1)
        )

    def save_redemption(self, redemption: Redemption, posting: Posting, at: datetime) -> None:
        self.db.execute(
            insert(redemptions).values(
                redemption_id=redemption.redemption_id,
                customer_id=redemption.customer_id,
                reward_id=redemption.reward_id,
                points=redemption.points,
                status=redemption.status,
                takes=redemption.takes,
                created_at=at,
            )
        )
        self.write_posting(posting, None, at, None, at)

    def reverse_redemption(self, redemption: Redemption, posting: Posting, at: datetime) -> None:
        self.db.execute(
            update(redemptions)
            .where(redemptions.c.redemption_id == redemption.redemption_id)
            .values(status="reversed", reversed_at=at)
        )
        self.write_posting(posting, None, at, None, at)


def _offer(row: Any) -> MemberOffer:
    return MemberOffer(
        row["code"],
        row["customer_id"],
        row["offer_id"],
        row["campaign"],
        row["issued_at"],
        row["valid_until"],
        row["status"],
        row["redeemed_at"],
    )
