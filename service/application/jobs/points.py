"""Points jobs: expire what is due (FIFO by lot), warn before expiry, release pending points.

Each member is one transaction under their row lock, as an event is: a job run twice, or
by two schedulers at once, expires, warns and releases nothing twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

from service.application.jobs.context import JobContext, pages
from service.application.messages import expiry_message
from service.application.ports import LedgerLine, Posting
from service.application.posting import EXPIRED
from service.core.expiry import expired_lots, warnings_due
from service.core.ledger import Lot, Take

RELEASED = "released"


def expire_points(ctx: JobContext, now: datetime) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for customer_id in pages(lambda after: _holders(ctx, now, after)):
        lots, points = _expire_member(ctx, customer_id, now)
        if lots:
            counts["members"] += 1
            counts["lots"] += lots
            counts["points"] += points
    return dict(counts)


def _holders(ctx: JobContext, until: datetime, after: str | None) -> list[str]:
    with ctx.uow() as uow:
        return uow.store.members_with_lots_expiring(until, ctx.batch, after)


def _expire_member(ctx: JobContext, customer_id: str, now: datetime) -> tuple[int, int]:
    version = ctx.rules().version
    with ctx.uow() as uow:
        store = uow.store
        member = store.lock_member(customer_id, now)
        due = expired_lots(store.lots(customer_id), now)
        if not due:
            return 0, 0
        by_moment: dict[datetime, list[Lot]] = defaultdict(list)
        for lot in due:
            assert lot.expires_at is not None
            by_moment[lot.expires_at].append(lot)
        for moment, lots in sorted(by_moment.items()):
            posting = Posting(member)
            for lot in lots:
                posting.takes.append(Take(lot.id, lot.remaining, lot.pending))
                posting.ledger.append(
                    LedgerLine(
                        EXPIRED,
                        -lot.remaining,
                        order_id=lot.order_id,
                        lot_id=lot.id,
                        note=f"{lot.remaining} points earned {lot.earned_at.date()} expired",
                    )
                )
                if lot.pending:
                    member.points_pending -= lot.remaining
                else:
                    member.points_available -= lot.remaining
            store.write_posting(posting, None, moment, version, ctx.clock())
        uow.commit()
    return len(due), sum(lot.remaining for lot in due)


def warn_expiry(ctx: JobContext, now: datetime) -> dict[str, int]:
    programme = ctx.rules().ruleset.programme
    horizons = programme.points.warn_before
    counts: Counter[str] = Counter()
    if not horizons:
        return {}
    until = now + max(horizons)
    for customer_id in pages(lambda after: _holders(ctx, until, after)):
        with ctx.uow() as uow:
            store = uow.store
            store.lock_member(customer_id, now)
            warnings = warnings_due(store.lots(customer_id), horizons, now, programme.timezone)
            used = store.dedupe_keys_used(customer_id, [w.dedupe_key for w in warnings])
            fresh = [expiry_message(w, now) for w in warnings if w.dedupe_key not in used]
            if fresh:
                store.add_messages(customer_id, None, fresh)
                uow.commit()
                counts["warnings"] += len(fresh)
                counts["members"] += 1
    return dict(counts)


def release_pending(ctx: JobContext, now: datetime) -> dict[str, int]:
    version = ctx.rules().version
    counts: Counter[str] = Counter()

    def holders(after: str | None) -> list[str]:
        with ctx.uow() as uow:
            return uow.store.members_with_due_pending(now, ctx.batch, after)

    for customer_id in pages(holders):
        with ctx.uow() as uow:
            store = uow.store
            member = store.lock_member(customer_id, now)
            lots = store.due_pending_lots(customer_id, now)
            if not lots:
                continue
            posting = Posting(member)
            for lot in lots:
                if lot.remaining > 0:
                    member.points_pending -= lot.remaining
                    member.points_available += lot.remaining
                    posting.ledger.append(
                        LedgerLine(
                            RELEASED,
                            0,
                            order_id=lot.order_id,
                            lot_id=lot.id,
                            note=f"{lot.remaining} pending points became available",
                        )
                    )
                    counts["points"] += lot.remaining
            store.release_lots(lot.id for lot in lots)
            store.write_posting(posting, None, now, version, ctx.clock())
            uow.commit()
            counts["lots"] += len(lots)
            counts["members"] += 1
    return dict(counts)
