"""Adjustments and transfers: the request rows, and the members' postings beside them."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.exc import IntegrityError

from service.application.manual_points import Adjustment, Transfer
from service.application.ports import Posting
from service.core.errors import EventConflict
from service.storage.tables import adjustments, transfers


class ManualPointsStore:
    """Mixed into SqlStore, beside EventPathStore (whose write_posting it uses)."""

    db: Connection
    dialect: str

    if TYPE_CHECKING:  # service.storage.event_store.EventPathStore, beside it in SqlStore

        def write_posting(
            self,
            posting: Posting,
            event_id: str | None,
            occurred_at: datetime,
            version: str | None,
            now: datetime,
        ) -> None: ...

    def find_adjustment(self, adjustment_id: str) -> Adjustment | None:
        row = self._find(adjustments, adjustments.c.adjustment_id == adjustment_id)
        if row is None:
            return None
        return Adjustment(
            row["adjustment_id"],
            row["customer_id"],
            row["points"],
            row["reason"],
            bool(row["allow_debt"]),
            row["made_by"],
            row["created_at"],
        )

    def save_adjustment(self, adjustment: Adjustment, posting: Posting) -> None:
        at = adjustment.created_at
        self._claim(
            adjustments,
            adjustment.adjustment_id,
            adjustment_id=adjustment.adjustment_id,
            customer_id=adjustment.customer_id,
            points=adjustment.points,
            reason=adjustment.reason,
            allow_debt=int(adjustment.allow_debt),
            made_by=adjustment.made_by,
            created_at=at,
        )
        self.write_posting(posting, None, at, None, at)

    def find_transfer(self, transfer_id: str) -> Transfer | None:
        row = self._find(transfers, transfers.c.transfer_id == transfer_id)
        if row is None:
            return None
        return Transfer(
            row["transfer_id"],
            row["from_id"],
            row["to_id"],
            row["points"],
            row["made_by"],
            row["created_at"],
        )

    def save_transfer(self, transfer: Transfer, postings: tuple[Posting, Posting]) -> None:
        at = transfer.created_at
        self._claim(
            transfers,
            transfer.transfer_id,
            transfer_id=transfer.transfer_id,
            from_id=transfer.from_id,
            to_id=transfer.to_id,
            points=transfer.points,
            made_by=transfer.made_by,
            created_at=at,
        )
        for posting in postings:
            self.write_posting(posting, None, at, None, at)

    def _find(self, table: Table, where: Any) -> Any:
        return self.db.execute(select(table).where(where)).mappings().first()

    def _claim(self, table: Table, request_id: str, **row: Any) -> None:
        """Insert the request's row first: a request under the same id for another member,
        racing this one, fails here and nothing of this one is kept."""
        try:
            self.db.execute(insert(table).values(**row))
        except IntegrityError as error:
            raise EventConflict(f"{request_id!r} is being used by another request") from error
