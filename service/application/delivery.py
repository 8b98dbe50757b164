"""The port the dispatcher delivers through: a channel takes one message to one member.

Adapters (service.channels) implement it: webhook, email (SMTP), log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Delivery:
    message_id: int
    customer_id: str
    template: str
    category: str
    channel: str
    data: Mapping[str, Any]
    created_at: datetime
    attempt: int
    email: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The body a webhook receives (and what the log channel prints)."""
        return {
            "message_id": self.message_id,
            "customer_id": self.customer_id,
            "template": self.template,
            "category": self.category,
            "data": dict(self.data),
            "created_at": self.created_at.isoformat(),
            "attempt": self.attempt,
        }


class DeliveryFailed(Exception):
    """The channel could not deliver. ``permanent``: trying again will not help."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Channel(Protocol):
    name: str

    def send(self, delivery: Delivery) -> None:
        """Deliver, or raise DeliveryFailed."""
        ...
