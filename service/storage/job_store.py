"""Storage for the scheduler's jobs: which members a job concerns, the few writes that are
not an event's, job-run records and the SQLite leader lease."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, extract, insert, select, update

from service.application.ports import MemberRecord, TierMove
from service.core.ledger import Lot
from service.storage.tables import (
    events,
    job_runs,
    member_offers,
    members,
    point_lots,
    scheduler_leases,
    tier_history,
)

CHUNK = 500


class JobStore:
    db: Connection
    dialect: str

    # -- lots

    def members_with_lots_expiring(
        self, until: datetime, limit: int, after: str | None
    ) -> list[str]:
        """Members holding points in lots that expire at or before ``until``, by id."""
        return self._lot_holders(
            limit,
            after,
            point_lots.c.remaining > 0,
            point_lots.c.expires_at.is_not(None),
            point_lots.c.expires_at <= until,
        )

    def members_with_due_pending(self, now: datetime, limit: int, after: str | None) -> list[str]:
        return self._lot_holders(
            limit, after, point_lots.c.pending == 1, point_lots.c.available_at <= now
        )

    def _lot_holders(self, limit: int, after: str | None, *where: Any) -> list[str]:
        query = select(point_lots.c.customer_id).where(*where)
        if after is not None:
            query = query.where(point_lots.c.customer_id > after)
        rows = self.db.execute(
            query.group_by(point_lots.c.customer_id).order_by(point_lots.c.customer_id).limit(limit)
        )
        return [customer_id for (customer_id,) in rows]

    def due_pending_lots(self, customer_id: str, now: datetime) -> list[Lot]:
        rows = self.db.execute(
            select(point_lots)
            .where(
                point_lots.c.customer_id == customer_id,
                point_lots.c.pending == 1,
                point_lots.c.available_at <= now,
            )
            .order_by(point_lots.c.id)
        ).mappings()
        return [
            Lot(r["id"], r["earned_at"], r["remaining"], r["expires_at"], r["order_id"], True)
            for r in rows
        ]

    def release_lots(self, lot_ids: Iterable[int]) -> None:
        ids = list(lot_ids)
        if ids:
            self.db.execute(update(point_lots).where(point_lots.c.id.in_(ids)).values(pending=0))

    # -- tiers and offers

    def members_to_review(self, lowest: str | None, limit: int, after: str | None) -> list[str]:
        """Members above the lowest level, or marked below their level, by id from ``after``."""
        query = select(members.c.customer_id).where(
            members.c.tier.is_not(None) | members.c.tier_below_since.is_not(None)
        )
        if lowest is not None:
            query = query.where(
                (members.c.tier != lowest) | members.c.tier_below_since.is_not(None)
            )
        if after is not None:
            query = query.where(members.c.customer_id > after)
        rows = self.db.execute(query.order_by(members.c.customer_id).limit(limit))
        return [customer_id for (customer_id,) in rows]

    def record_tier_move(self, customer_id: str, move: TierMove, at: datetime) -> None:
        self.db.execute(
            insert(tier_history).values(
                customer_id=customer_id,
                from_tier=move.from_tier,
                to_tier=move.to_tier,
                reason=move.reason,
                until=move.until,
                campaign=move.campaign,
                rule=move.rule,
                occurred_at=at,
            )
        )

    def expire_offers(self, now: datetime) -> int:
        result = self.db.execute(
            update(member_offers)
            .where(member_offers.c.status == "active", member_offers.c.valid_until <= now)
            .values(status="expired")
        )
        return int(result.rowcount)

    # -- time-based campaigns

    def members_born_in(self, months: Iterable[int]) -> list[MemberRecord]:
        return self._members(
            members.c.birthday.is_not(None), extract("month", members.c.birthday).in_(months)
        )

    def members_enrolled_in(self, months: Iterable[int], before: datetime) -> list[MemberRecord]:
        return self._members(
            members.c.enrolled_at.is_not(None),
            members.c.enrolled_at <= before,
            extract("month", members.c.enrolled_at).in_(months),
        )

    def members_lapsed_since(self, before: datetime) -> list[MemberRecord]:
        return self._members(
            members.c.last_purchase_at.is_not(None), members.c.last_purchase_at <= before
        )

    def _members(self, *where: Any) -> list[MemberRecord]:
        rows = self.db.execute(select(members).where(*where).order_by(members.c.customer_id))
        return [
            MemberRecord(**{**dict(row), "tags": list(row["tags"] or [])})
            for row in rows.mappings()
        ]

    def recorded_events(self, event_ids: Iterable[str]) -> set[str]:
        ids, found = list(event_ids), set[str]()
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = self.db.execute(select(events.c.event_id).where(events.c.event_id.in_(chunk)))
            found.update(event_id for (event_id,) in rows)
        return found

    # -- job runs

    def start_job_run(self, job: str, as_of: datetime, runner: str, at: datetime) -> int:
        return int(
            self.db.execute(
                insert(job_runs)
                .values(job=job, as_of=as_of, runner=runner, started_at=at, status="running")
                .returning(job_runs.c.id)
            ).scalar_one()
        )

    def finish_job_run(
        self,
        run_id: int,
        status: str,
        result: dict[str, Any] | None,
        error: str | None,
        at: datetime,
    ) -> None:
        self.db.execute(
            update(job_runs)
            .where(job_runs.c.id == run_id)
            .values(status=status, result=result, error=error, finished_at=at)
        )

    def job_runs(self, limit: int) -> list[dict[str, Any]]:
        rows = self.db.execute(select(job_runs).order_by(job_runs.c.id.desc()).limit(limit))
        return [dict(row) for row in rows.mappings()]

    # -- the leader lease (SQLite)

    def take_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Hold or renew the lease unless another holder's is still live."""
        row = (
            self.db.execute(select(scheduler_leases).where(scheduler_leases.c.name == name))
            .mappings()
            .first()
        )
        values = {"holder": holder, "expires_at": now + ttl, "heartbeat_at": now}
        if row is None:
            self.db.execute(insert(scheduler_leases).values(name=name, **values))
            return True
        if row["holder"] != holder and row["expires_at"] > now:
            return False
        self.db.execute(
            update(scheduler_leases).where(scheduler_leases.c.name == name).values(values)
        )
        return True

    def drop_lease(self, name: str, holder: str) -> None:
        self.db.execute(
            scheduler_leases.delete().where(
                scheduler_leases.c.name == name, scheduler_leases.c.holder == holder
            )
        )
