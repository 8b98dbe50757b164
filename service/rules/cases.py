"""Running the cases written inside rule files, through the same evaluation as live events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError

from service.core.customer import CustomerSnapshot
from service.core.effects import (
    AwardPoints,
    ChangeTier,
    Evaluation,
    IssueOffer,
    SendMessage,
    TagCustomer,
)
from service.core.evaluation import Matcher, evaluate
from service.core.programme import RuleSet
from service.event_schema import HypotheticalCustomerSchema, parse_event
from service.rules.campaign_parser import RuleCase


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: RuleCase
    failure: str | None  # None when the case passed

    @property
    def passed(self) -> bool:
        return self.failure is None

    def __str__(self) -> str:
        verdict = "ok" if self.passed else f"FAILED: {self.failure}"
        return (
            f"{self.case.file}:{self.case.line}: {self.case.campaign}::{self.case.name}: {verdict}"
        )


def run_cases(ruleset: RuleSet, matcher: Matcher, cases: Iterable[RuleCase]) -> list[CaseResult]:
    return [run_case(ruleset, matcher, case) for case in cases]


def run_case(ruleset: RuleSet, matcher: Matcher, case: RuleCase) -> CaseResult:
    try:
        event = parse_event(_event_payload(case), internal=True)
        customer = snapshot_from(case.customer, event.customer_id, event.occurred_at)
    except (ValidationError, ValueError, TypeError) as error:
        detail = error.messages if isinstance(error, ValidationError) else str(error)
        return CaseResult(case, f"the case itself is invalid: {detail}")
    evaluation = evaluate(ruleset, matcher, customer, event, explain=True)
    return CaseResult(case, _compare(case, evaluation))


def _event_payload(case: RuleCase) -> dict[str, Any]:
    payload: dict[str, Any] = {"event_id": f"case-{case.line}", "customer_id": "case-customer"}
    payload.update(_plain(case.event))
    if payload.get("type") in ("purchase", "refund"):
        payload.setdefault("order_id", f"order-{case.line}")
    if isinstance(payload.get("occurred_at"), datetime):
        payload["occurred_at"] = payload["occurred_at"].isoformat()
    if payload.get("type") == "referral":
        payload.setdefault("referrer_id", "case-referrer")
    return payload


def _plain(value: Any) -> Any:
    """YAML's dates and numbers, back to what JSON would have carried."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return Decimal(str(value))
    return value


def snapshot_from(fields: Mapping[str, Any], customer_id: str, at: datetime) -> CustomerSnapshot:
    """A hypothetical member, as a rule-file case or a dry run describes them.

    Raises marshmallow's ValidationError naming each bad field.
    """
    data = HypotheticalCustomerSchema().load(_plain(dict(fields)))
    since_purchase = data.get("days_since_last_purchase")
    since_enrolment = data.get("days_since_enrolment")
    return CustomerSnapshot(
        customer_id=customer_id,
        tier=data.get("tier"),
        points_available=data.get("balance", 0),
        points_pending=data.get("points_pending", 0),
        lifetime_spend=data.get("lifetime_spend", Decimal(0)),
        order_count=data.get("order_count", 0),
        last_purchase_at=at - timedelta(days=since_purchase)
        if since_purchase is not None
        else None,
        enrolled_at=at - timedelta(days=since_enrolment) if since_enrolment is not None else None,
        birthday=data.get("birthday"),
        timezone=data.get("timezone"),
        tags=frozenset(data.get("tags", ())),
        segment=data.get("segment"),
        is_new=data.get("is_new", True),
        referred_by=data.get("referred_by"),
        # A described member's orders and spend all count as recent (for RFM and tiers).
        recent_orders=data.get("order_count", 0),
        recent_spend=data.get("lifetime_spend", Decimal(0)),
        tier_value=data.get("lifetime_spend", Decimal(0)),
    )


def _compare(case: RuleCase, evaluation: Evaluation) -> str | None:
    """What the case expected, next to what this campaign's rules did."""
    mine = [e for e in evaluation.effects if getattr(e, "campaign", None) == case.campaign]
    awards = [e for e in mine if isinstance(e, AwardPoints)]
    actual: dict[str, Any] = {
        "points": sum(e.points for e in awards if e.customer_id is None),
        "referrer_points": sum(e.points for e in awards if e.customer_id is not None),
        "rules": sorted({e.rule for e in mine if hasattr(e, "rule") and e.rule is not None}),
        "tags": sorted({t for e in mine if isinstance(e, TagCustomer) for t in e.add}),
        "offers": sorted(e.offer for e in mine if isinstance(e, IssueOffer)),
        "messages": sorted(e.template for e in mine if isinstance(e, SendMessage)),
        "tier": next((e.to_tier for e in evaluation.effects if isinstance(e, ChangeTier)), None),
    }
    problems = []
    for key, expected in case.expect.items():
        wanted = sorted(expected) if isinstance(expected, list) else expected
        if actual[key] != wanted:
            problems.append(f"expected {key} {wanted!r}, got {actual[key]!r}")
    if not problems:
        return None
    why = [
        f"{t.rule}: {t.outcome} {t.reason}".strip()
        for t in evaluation.trace
        if t.campaign == case.campaign
    ]
    return "; ".join(problems) + (" (trace: " + " | ".join(why) + ")" if why else "")
