"""A member's personal data: all of it read out (export), or erased under a pseudonym.

Erasure keeps every amount (ledger, lots, orders, budgets) so balances and reports stay
true, and moves it to a pseudonymous id; what identifies the person goes: profile fields,
tags, message addresses and bodies, the member snapshots of explanations, and the
personal parts of stored event bodies. The original id is kept nowhere, so a later event
for it starts a new member.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update

from service.application.personal_data import Erasure, MemberExport, scrub_event_body
from service.storage.tables import (
    adjustments,
    erasures,
    event_traces,
    events,
    held_refunds,
    ledger_entries,
    member_offers,
    members,
    order_awards,
    orders,
    outbox,
    point_lots,
    redemptions,
    referrals,
    referrer_awards,
    rule_firings,
    tier_history,
    transfers,
)

# Tables whose rows belong to one member through customer_id; all of them move to the
# pseudonym together.
OWNED: tuple[Table, ...] = (
    events,
    point_lots,
    ledger_entries,
    rule_firings,
    orders,
    order_awards,
    tier_history,
    member_offers,
    redemptions,
    outbox,
    adjustments,
    held_refunds,
    referrer_awards,  # as the buyer; as the referrer below
)
# Cleared on erasure: who the person is and how to reach them. Amounts, tier and dates stay.
PERSONAL_FIELDS: dict[str, Any] = {
    "email": None,
    "phone": None,
    "birthday": None,
    "timezone": None,
    "tags": [],
    "referral_code": None,
}


class PersonalDataStore:
    """Mixed into SqlStore."""

    db: Connection
    dialect: str

    def member_export(self, customer_id: str) -> MemberExport | None:
        db = self.db
        member = db.execute(select(members).where(members.c.customer_id == customer_id))
        profile = member.mappings().first()
        if profile is None:
            return None

        def rows(table: Table, *where: Any, order: Any) -> list[dict[str, Any]]:
            query = select(table).where(*where).order_by(order)
            return [dict(row) for row in db.execute(query).mappings()]

        mine = {table.name: table.c.customer_id == customer_id for table in OWNED}
        return MemberExport(
            profile=dict(profile),
            events=rows(events, mine["events"], order=events.c.occurred_at),
            ledger=rows(ledger_entries, mine["ledger_entries"], order=ledger_entries.c.id),
            point_lots=rows(point_lots, mine["point_lots"], order=point_lots.c.id),
            orders=rows(orders, mine["orders"], order=orders.c.occurred_at),
            offers=rows(member_offers, mine["member_offers"], order=member_offers.c.issued_at),
            redemptions=rows(redemptions, mine["redemptions"], order=redemptions.c.created_at),
            messages=rows(outbox, mine["outbox"], order=outbox.c.id),
            tier_history=rows(tier_history, mine["tier_history"], order=tier_history.c.id),
            referrals=rows(
                referrals,
                (referrals.c.referee_id == customer_id) | (referrals.c.referrer_id == customer_id),
                order=referrals.c.occurred_at,
            ),
            adjustments=rows(adjustments, mine["adjustments"], order=adjustments.c.created_at),
            transfers=rows(
                transfers,
                (transfers.c.from_id == customer_id) | (transfers.c.to_id == customer_id),
                order=transfers.c.created_at,
            ),
            held_refunds=rows(
                held_refunds,
                held_refunds.c.customer_id == customer_id,
                order=held_refunds.c.occurred_at,
            ),
            referrer_awards=rows(
                referrer_awards,
                (referrer_awards.c.customer_id == customer_id)
                | (referrer_awards.c.referrer_id == customer_id),
                order=referrer_awards.c.event_id,
            ),
        )

    def erase_member(
        self, customer_id: str, pseudonym: str, by: str, at: datetime
    ) -> Erasure | None:
        db = self.db
        found = select(members.c.customer_id).where(members.c.customer_id == customer_id)
        if self.dialect == "postgresql":
            found = found.with_for_update()  # events for this member wait, then start anew
        if db.execute(found).first() is None:
            return None
        self._scrub_event_bodies(customer_id, pseudonym)
        db.execute(delete(event_traces).where(event_traces.c.customer_id == customer_id))
        for table in OWNED:
            db.execute(
                update(table)
                .where(table.c.customer_id == customer_id)
                .values(customer_id=pseudonym)
            )
        db.execute(
            update(outbox)
            .where(outbox.c.customer_id == pseudonym)
            .values(
                data={},
                reason=None,
                dedupe_key=func.replace(outbox.c.dedupe_key, customer_id, pseudonym),
                dedupe_claim=func.replace(outbox.c.dedupe_claim, customer_id, pseudonym),
            )
        )
        db.execute(
            update(ledger_entries)
            .where(ledger_entries.c.customer_id == pseudonym)
            .values(note=func.replace(ledger_entries.c.note, customer_id, pseudonym))
        )
        db.execute(
            update(adjustments)
            .where(adjustments.c.customer_id == pseudonym)
            .values(reason=func.replace(adjustments.c.reason, customer_id, pseudonym))
        )
        for column in (
            referrals.c.referee_id,
            referrals.c.referrer_id,
            referrer_awards.c.referrer_id,
            transfers.c.from_id,
            transfers.c.to_id,
        ):
            db.execute(
                update(column.table).where(column == customer_id).values({column: pseudonym})
            )
        db.execute(
            update(members)
            .where(members.c.referred_by == customer_id)
            .values(referred_by=pseudonym)
        )
        db.execute(
            update(members)
            .where(members.c.customer_id == customer_id)
            .values(customer_id=pseudonym, **PERSONAL_FIELDS)
        )
        db.execute(insert(erasures).values(pseudonym=pseudonym, erased_at=at, erased_by=by))
        return Erasure(pseudonym, at, by)

    def _scrub_event_bodies(self, customer_id: str, pseudonym: str) -> None:
        """The member's own events, and the referral events that name them as referrer."""
        referred = select(referrals.c.event_id).where(referrals.c.referrer_id == customer_id)
        query = select(
            events.c.event_id, events.c.customer_id, events.c.payload, events.c.result
        ).where((events.c.customer_id == customer_id) | events.c.event_id.in_(referred))
        changed = [
            {
                "b_event_id": row.event_id,
                # Another member's referral event keeps its body, naming the pseudonym.
                "payload": scrub_event_body(row.payload, customer_id, pseudonym)
                if row.customer_id == customer_id
                else _replaced(row.payload, customer_id, pseudonym),
                "result": _replaced(row.result, customer_id, pseudonym),
            }
            for row in self.db.execute(query)
        ]
        if changed:
            self.db.execute(
                update(events)
                .where(events.c.event_id == bindparam("b_event_id"))
                .values(payload=bindparam("payload"), result=bindparam("result")),
                changed,
            )


def _replaced(value: Any, old: str, new: str) -> Any:
    """``value`` with every string equal to ``old`` made ``new``, at any depth."""
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, Mapping):
        return {key: _replaced(inner, old, new) for key, inner in value.items()}
    if isinstance(value, list):
        return [_replaced(inner, old, new) for inner in value]
    return value
