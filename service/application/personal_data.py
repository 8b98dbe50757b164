"""A member's rights over their data (GDPR, China's PIPL): a copy of all of it, and erasure.

Erasure is pseudonymisation of the programme's records: the ledger and every amount stay,
under a new random id, so balances, budgets and reports add up as before; what
identifies the person is removed. The erasure itself is recorded: the pseudonym, when,
and the name of the API key that asked.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from service.application.ports import Transaction
from service.core.errors import NotFound

# Kept in a stored event body after erasure: what the event did, not who did it. The
# rest (profile, free-form attributes, anything else) goes.
KEPT_EVENT_FIELDS = frozenset(
    {
        "event_id",
        "type",
        "occurred_at",
        "order_id",
        "amount",
        "items",
        "channel",
        "store_id",
        "code",
        "kind",
        "referrer_id",
    }
)


@dataclass(frozen=True, slots=True)
class MemberExport:
    """Every row held about one member, by kind; values as stored."""

    profile: dict[str, Any]
    events: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    point_lots: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    offers: list[dict[str, Any]]
    redemptions: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    tier_history: list[dict[str, Any]]
    referrals: list[dict[str, Any]]
    adjustments: list[dict[str, Any]]
    transfers: list[dict[str, Any]]
    held_refunds: list[dict[str, Any]]
    referrer_awards: list[dict[str, Any]]  # what their purchases gave a referrer, or theirs


@dataclass(frozen=True, slots=True)
class Erasure:
    pseudonym: str
    erased_at: datetime
    erased_by: str


class PersonalDataStore(Protocol):
    def member_export(self, customer_id: str) -> MemberExport | None: ...

    def erase_member(
        self, customer_id: str, pseudonym: str, by: str, at: datetime
    ) -> Erasure | None: ...


def export_member(
    transactions: Callable[[], Transaction[PersonalDataStore]], customer_id: str
) -> dict[str, Any]:
    """Everything held about the member, as plain JSON values."""
    with transactions() as uow:
        found = uow.store.member_export(customer_id)
    if found is None:
        raise NotFound(f"no member {customer_id!r}")
    return {
        "customer_id": customer_id,
        **{name: plain(getattr(found, name)) for name in MemberExport.__dataclass_fields__},
    }


def erase_member(
    transactions: Callable[[], Transaction[PersonalDataStore]],
    customer_id: str,
    by: str,
    now: datetime,
) -> Erasure:
    pseudonym = f"erased-{secrets.token_hex(8)}"
    with transactions() as uow:
        erasure = uow.store.erase_member(customer_id, pseudonym, by, now)
        if erasure is None:
            raise NotFound(f"no member {customer_id!r}")
        uow.commit()
    return erasure


def scrub_event_body(body: Mapping[str, Any], customer_id: str, pseudonym: str) -> dict[str, Any]:
    """A stored event body with only what the event did, under the pseudonym."""
    kept = {key: value for key, value in body.items() if key in KEPT_EVENT_FIELDS}
    if body.get("customer_id") == customer_id:
        kept["customer_id"] = pseudonym
    elif "customer_id" in body:
        kept["customer_id"] = body["customer_id"]
    if kept.get("referrer_id") == customer_id:
        kept["referrer_id"] = pseudonym
    return kept


def plain(value: Any) -> Any:
    """Stored values as JSON: times and dates in ISO 8601, money as decimal text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, Mapping):
        return {str(key): plain(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [plain(inner) for inner in value]
    return value
