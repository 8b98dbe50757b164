"""What evaluation decides: effects to apply, and a trace of why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AwardPoints:
    points: int
    campaign: str
    rule: str
    type: str = "award_points"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "points": self.points,
            "campaign": self.campaign,
            "rule": self.rule,
        }


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
    type: str = "claw_back_points"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "points": self.points,
            "order_id": self.order_id,
            "shortfall": self.shortfall,
        }


Effect = AwardPoints | TagCustomer | ClawBackPoints

# Trace outcomes: one per rule the event's type could reach.
MATCHED = "matched"
NOT_MATCHED = "not_matched"
INACTIVE = "inactive"
LIMIT_REACHED = "limit_reached"
BUDGET_SPENT = "budget_spent"


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
