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
    shares_contact: bool = False  # referee and referrer have an e-mail or phone in common


Contact = tuple[str | None, str | None]  # (e-mail, phone) as the member gave them


def share_contact(referee: Contact, referrer: Contact) -> bool:
    """One person under two ids: the same e-mail address (whatever its case and spaces)
    or the same phone number (whatever its spacing, punctuation and +86 / 0086 prefix)."""
    emails = {_email(referee[0]), _email(referrer[0])}
    phones = {_phone(referee[1]), _phone(referrer[1])}
    return (len(emails) == 1 and None not in emails) or (len(phones) == 1 and None not in phones)


def _email(value: str | None) -> str | None:
    text = "".join(value.split()).lower() if value else ""
    return text or None


def _phone(value: str | None) -> str | None:
    digits = "".join(c for c in value if c.isdigit() or c == "+") if value else ""
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
    return digits.lstrip("+") or None


def referral_refusal(
    event: Event,
    referee: CustomerSnapshot,
    context: ReferralContext | None,
    policy: ReferralPolicy,
) -> str | None:
    """Why a referral earns nothing, or None when it may. Only referral events are judged."""
    judged = _judge(event, referee, context, policy)
    return judged[0] if judged else None


def links_members(
    event: Event,
    referee: CustomerSnapshot,
    context: ReferralContext | None,
    policy: ReferralPolicy,
) -> bool:
    """Does this referral record who referred whom? Yes when it is rewarded, and when only
    the referrer's cap stopped the reward; not for a self-referral, an unknown referrer, a
    wrong code or a referee who is not new."""
    if event.type != "referral" or event.referrer_id is None:
        return False
    judged = _judge(event, referee, context, policy)
    return judged is None or judged[1]


def _judge(
    event: Event,
    referee: CustomerSnapshot,
    context: ReferralContext | None,
    policy: ReferralPolicy,
) -> tuple[str, bool] | None:
    """(reason, whether the members are still linked) for a refused referral; None if not."""
    if event.type != "referral":
        return None
    if event.referrer_id == event.customer_id:
        return "self-referral: a member cannot refer themselves", False
    if context is not None and context.shares_contact:
        return "self-referral: referee and referrer share an e-mail address or phone", False
    if context is not None and not context.referrer_known:
        return f"referrer {event.referrer_id!r} is not a member", False
    if context is not None and not context.code_matches:
        return f"code {event.code!r} does not belong to referrer {event.referrer_id!r}", False
    if policy.require_new_referee and (not referee.is_new or referee.referred_by is not None):
        return "the referred member is not new", False
    if policy.max_per_referrer is not None and context is not None:
        recent = context.referrer_rewarded_at
        if policy.per is not None:
            recent = tuple(t for t in recent if abs(event.occurred_at - t) < policy.per)
        if len(recent) >= policy.max_per_referrer:
            return f"referrer reached the cap of {policy.max_per_referrer} referrals", True
    return None
