"""Referral safeguards: the programme's "no" to a referral, whatever the rules say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.core.customer import CustomerSnapshot
from service.core.events import Event
from service.core.programme import ReferralPolicy


@dataclass(frozen=True, slots=True)
class ReferralContext:
    """What the service knows about the referrer of a referral event."""

    referrer_known: bool
    referrer_rewarded_at: tuple[datetime, ...] = ()  # earlier referrals that were rewarded
    code_matches: bool = True  # the code given, if any, is the referrer's


def referral_refusal(
    event: Event,
    referee: CustomerSnapshot,
    context: ReferralContext | None,
    policy: ReferralPolicy,
) -> str | None:
    """Why a referral earns nothing, or None when it may. Only referral events are judged."""
    if event.type != "referral":
        return None
    if event.referrer_id == event.customer_id:
        return "self-referral: a member cannot refer themselves"
    if context is not None and not context.referrer_known:
        return f"referrer {event.referrer_id!r} is not a member"
    if context is not None and not context.code_matches:
        return f"code {event.code!r} does not belong to referrer {event.referrer_id!r}"
    if policy.require_new_referee and (not referee.is_new or referee.referred_by is not None):
        return "the referred member is not new"
    if policy.max_per_referrer is not None and context is not None:
        recent = context.referrer_rewarded_at
        if policy.per is not None:
            recent = tuple(t for t in recent if abs(event.occurred_at - t) < policy.per)
        if len(recent) >= policy.max_per_referrer:
            return f"referrer reached the cap of {policy.max_per_referrer} referrals"
    return None
