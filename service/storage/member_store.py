"""Storage for what members hold beside points: issued offers and reward redemptions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from service.application.ports import MemberOffer, Posting, Redemption
from service.storage.tables import member_offers, redemptions


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
