"""The rows the event path keeps for refunds (service.application.refunds): refunds held
until their purchase comes, and what purchases gave referrers. Read for a group with one
statement each, written with the group as one upsert each (the working set hands the
rows' final state). Mixed into SqlStore beside EventPathStore, which calls these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, select

from service.application.event_ports import GroupWrite
from service.application.ports import HeldRefund, ReferrerAward
from service.storage.event_store import _among, _dialect_insert
from service.storage.tables import held_refunds, referrer_awards


class RefundRowsStore:
    db: Connection
    dialect: str

    def held_refunds_for(
        self, customer_ids: Sequence[str], order_ids: Sequence[str]
    ) -> list[HeldRefund]:
        """The members' refunds of these orders still waiting for their purchase."""
        if not customer_ids or not order_ids:
            return []
        rows = self.db.execute(
            _statements(self.dialect).held,
            {"ids": list(customer_ids), "order_ids": list(order_ids)},
        ).mappings()
        return [HeldRefund(**row) for row in rows]

    def referrer_awards_for(
        self, customer_ids: Sequence[str], order_ids: Sequence[str]
    ) -> list[ReferrerAward]:
        """What the purchases of these members' orders gave referrers."""
        if not customer_ids or not order_ids:
            return []
        rows = self.db.execute(
            _statements(self.dialect).given,
            {"ids": list(customer_ids), "order_ids": list(order_ids)},
        ).mappings()
        return [ReferrerAward(**row) for row in rows]

    def write_refund_rows(self, changes: GroupWrite) -> None:
        sql = _statements(self.dialect)
        if changes.held_refunds:
            self.db.execute(
                sql.save_held,
                [_held_row(held) for _, held in sorted(changes.held_refunds.items())],
            )
        if changes.referrer_awards:
            self.db.execute(
                sql.save_given,
                [_given_row(award) for _, award in sorted(changes.referrer_awards.items())],
            )


@dataclass(frozen=True)
class _Statements:
    held: Any
    given: Any
    save_held: Any
    save_given: Any


@cache
def _statements(dialect: str) -> _Statements:
    return _Statements(
        held=select(held_refunds).where(
            _among(held_refunds.c.customer_id, "ids", dialect),
            _among(held_refunds.c.order_id, "order_ids", dialect),
            held_refunds.c.applied_by.is_(None),
        ),
        given=select(referrer_awards).where(
            _among(referrer_awards.c.customer_id, "ids", dialect),
            _among(referrer_awards.c.order_id, "order_ids", dialect),
        ),
        save_held=_overwrite(dialect, held_refunds),
        save_given=_overwrite(dialect, referrer_awards),
    )


def _overwrite(dialect: str, table: Table) -> Any:
    """An upsert that leaves the row as given: the working set knows its whole state."""
    statement = _dialect_insert(dialect, table)
    keys = list(table.primary_key.columns)
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c not in keys},
    )


def _held_row(held: HeldRefund) -> dict[str, Any]:
    return {
        "event_id": held.event_id,
        "customer_id": held.customer_id,
        "order_id": held.order_id,
        "amount": held.amount,
        "occurred_at": held.occurred_at,
        "applied_by": held.applied_by,
        "applied_at": held.applied_at,
    }


def _given_row(award: ReferrerAward) -> dict[str, Any]:
    return {
        "event_id": award.event_id,
        "referrer_id": award.referrer_id,
        "campaign": award.campaign,
        "customer_id": award.customer_id,
        "order_id": award.order_id,
        "points": award.points,
        "points_clawed": award.points_clawed,
    }
