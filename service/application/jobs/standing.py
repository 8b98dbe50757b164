"""Jobs over what members hold beside points: the tier review and offer expiry."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from service.application.jobs.context import JobContext, pages
from service.application.messages import tier_message
from service.application.ports import TierMove
from service.core.tiers import review_change


def review_tiers(ctx: JobContext, now: datetime) -> dict[str, int]:
    """Lower members whose tier metric stayed below their level for the whole grace.

    A member first found below is remembered (tier_below_since); a later review after
    the grace lowers them, writes tier history (reason ``review``) and tells them.
    """
    policy = ctx.rules().ruleset.programme.tiers
    if not policy.levels:
        return {}
    lowest = policy.levels[0].name
    counts: Counter[str] = Counter()

    def reviewed(after: str | None) -> list[str]:
        with ctx.uow() as uow:
            return uow.store.members_to_review(lowest, ctx.batch, after)

    for customer_id in pages(reviewed):
        with ctx.uow() as uow:
            store = uow.store
            member = store.lock_member(customer_id, now)
            value = store.tier_value(customer_id, policy.metric, now - policy.window, now)
            change, below_since = review_change(
                policy, member.tier, value, member.tier_below_since, member.tier_until, now
            )
            counts["reviewed"] += 1
            if change is not None:
                member.tier, member.tier_since = change.to_tier, now
                member.tier_until = member.tier_below_since = None
                store.record_tier_move(
                    customer_id,
                    TierMove(change.from_tier, change.to_tier, change.reason, None, None, None),
                    now,
                )
                store.add_messages(customer_id, None, [tier_message(change, now)])
                counts["lowered"] += 1
            elif below_since == member.tier_below_since:
                continue
            else:
                member.tier_below_since = below_since
                counts["below" if below_since else "recovered"] += 1
            store.save_member(member)
            uow.commit()
    return dict(counts)


def expire_offers(ctx: JobContext, now: datetime) -> dict[str, int]:
    with ctx.uow() as uow:
        expired = uow.store.expire_offers(now)
        uow.commit()
    return {"expired": expired}
