"""What evaluation read and decided for an event, as JSON to store beside it.

``trace_record`` is what the event path stores (one row per applied event); the ledger
explanation reads it back and re-evaluates from exactly the snapshot the service saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from service.application.ports import EventTrace
from service.core.customer import CustomerSnapshot
from service.core.effects import Evaluation
from service.core.evaluation import BudgetUse
from service.core.events import Event


def trace_record(
    event: Event,
    snapshot: CustomerSnapshot,
    evaluation: Evaluation,
    budgets: Mapping[str, BudgetUse] | None,
    at: datetime,
) -> EventTrace:
    return EventTrace(
        event_id=event.event_id,
        customer_id=event.customer_id,
        rules_version=evaluation.rules_version,
        engine=evaluation.engine,
        trace=[entry.as_dict() for entry in evaluation.trace],
        snapshot=snapshot_to_json(snapshot),
        budgets=budgets_to_json(budgets or {}),
        recorded_at=at,
    )


_FIELDS = tuple(f.name for f in fields(CustomerSnapshot))


def snapshot_to_json(snapshot: CustomerSnapshot) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(snapshot, name)
        if name == "rule_firings":
            body[name] = {k: [t.isoformat() for t in times] for k, times in value.items()}
        elif name == "tags":
            body[name] = sorted(value)
        elif isinstance(value, datetime | date):
            body[name] = value.isoformat()
        elif isinstance(value, Decimal):
            body[name] = str(value)
        else:
            body[name] = value
    return body


_MOMENTS = ("last_purchase_at", "enrolled_at", "tier_until")
_DECIMALS = ("lifetime_spend", "tier_value", "recent_spend")


def snapshot_from_json(body: Mapping[str, Any]) -> CustomerSnapshot:
    values: dict[str, Any] = {k: v for k, v in body.items() if k in _FIELDS}
    for name in _MOMENTS:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    for name in _DECIMALS:
        if name in values:
            values[name] = Decimal(values[name])
    if values.get("birthday") is not None:
        values["birthday"] = date.fromisoformat(values["birthday"])
    values["tags"] = frozenset(values.get("tags", ()))
    values["rule_firings"] = MappingProxyType(
        {
            key: tuple(datetime.fromisoformat(t) for t in times)
            for key, times in values.get("rule_firings", {}).items()
        }
    )
    return CustomerSnapshot(**values)


def budgets_to_json(budgets: Mapping[str, BudgetUse]) -> dict[str, list[str]]:
    return {
        campaign: [str(use.points), str(use.offers), str(use.revenue)]
        for campaign, use in sorted(budgets.items())
    }


def budgets_from_json(body: Mapping[str, list[str]]) -> dict[str, BudgetUse]:
    return {
        campaign: BudgetUse(int(points), int(offers), Decimal(revenue))
        for campaign, (points, offers, revenue) in body.items()
    }
