"""What evaluation decides: effects to apply, and a trace of why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class AwardPoints:
    points: int
    campaign: str
    rule: str
    customer_id: str | None = None  # another member (a referrer); None: the event's member
    type: str = "award_points"

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "points": self.points,
            "campaign": self.campaign,
            "rule": self.rule,
        }
        if self.customer_id is not None:
            body["customer_id"] = self.customer_id
        return body


@dataclass(frozen=True, slots=True)
class TagCustomer:
    add: tuple[str, ...]
    remove: tuple[str, ...]
    campaign: str
    rule: str
    type: str = "tag"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "add": list(self.add),
            "remove": list(self.remove),
            "campaign": self.campaign,
            "rule": self.rule,
        }


@dataclass(frozen=True, slots=True)
class ClawBackPoints:
    """Points taken back because the order they were earned on was refunded."""

    points: int
    order_id: str
    shortfall: int = 0  # points already spent, owed as debt
    customer_id: str | None = None  # another member it is taken from (a referrer)
    type: str = "claw_back_points"

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "points": self.points,
            "order_id": self.order_id,
            "shortfall": self.shortfall,
        }
        if self.customer_id is not None:
            body["customer_id"] = self.customer_id
        return body


@dataclass(frozen=True, slots=True)
class IssueOffer:
    offer: str
    valid_until: datetime
    campaign: str
    rule: str
    type: str = "issue_offer"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "offer": self.offer,
            "valid_until": self.valid_until.isoformat(),
            "campaign": self.campaign,
            "rule": self.rule,
        }


@dataclass(frozen=True, slots=True)
class SendMessage:
    template: str
    channel: str
    category: str
    campaign: str
    rule: str
    urgent: bool = False
    dedupe_key: str | None = None
    stale_after: timedelta | None = None
    type: str = "send_message"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "template": self.template,
            "channel": self.channel,
            "category": self.category,
            "campaign": self.campaign,
            "rule": self.rule,
        }


@dataclass(frozen=True, slots=True)
class ChangeTier:
    """The member moves to another level: qualified by the event, granted by a rule
    (fast track, maybe for a time), lowered at a review, or lowered by a refund that
    takes back what qualified the member."""

    from_tier: str | None
    to_tier: str
    reason: str  # qualified | fast_track | review | refund
    until: datetime | None = None
    campaign: str | None = None
    rule: str | None = None
    type: str = "change_tier"

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "from": self.from_tier,
            "to": self.to_tier,
            "reason": self.reason,
        }
        if self.until is not None:
            body["until"] = self.until.isoformat()
        if self.campaign is not None:
            body["campaign"] = self.campaign
            body["rule"] = self.rule
        return body


Effect = AwardPoints | TagCustomer | ClawBackPoints | IssueOffer | SendMessage | ChangeTier

# Trace outcomes: one per rule the event's type could reach.
MATCHED = "matched"
NOT_MATCHED = "not_matched"
INACTIVE = "inactive"
LIMIT_REACHED = "limit_reached"
BUDGET_SPENT = "budget_spent"
REFUSED = "refused"  # e.g. a self-referral: the rule matched but the programme says no
OUTRANKED = "outranked"  # another campaign of its exclusive group applied to the event


@dataclass(frozen=True, slots=True)
class TraceEntry:
    campaign: str
    rule: str
    outcome: str
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "campaign": self.campaign,
            "rule": self.rule,
            "outcome": self.outcome,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Evaluation:
    effects: tuple[Effect, ...]
    trace: tuple[TraceEntry, ...]
    rules_version: str
    engine: str  # which engine matched: durable, reference, or reference-fallback

    @property
    def points(self) -> int:
        return sum(e.points for e in self.effects if isinstance(e, AwardPoints))
