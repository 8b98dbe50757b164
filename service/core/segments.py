"""RFM scores (recency, frequency, monetary, each 1 to 5) and the named segment they make."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from service.core.customer import CustomerSnapshot
from service.core.programme import RfmPolicy


@dataclass(frozen=True, slots=True)
class Rfm:
    recency: int
    frequency: int
    monetary: int


def _score(value: Decimal, cuts: tuple[Decimal, ...]) -> int:
    return 1 + sum(1 for cut in cuts if value >= cut)


def rfm_scores(policy: RfmPolicy, customer: CustomerSnapshot, at: datetime) -> Rfm:
    if customer.last_purchase_at is None:
        recency = 1
    else:
        days = Decimal(max(0, (at - customer.last_purchase_at) // timedelta(days=1)))
        # Fewer days since the last purchase is better: count the cuts the member is within.
        recency = 1 + sum(1 for cut in policy.recency_days if days <= cut)
    return Rfm(
        recency=recency,
        frequency=_score(Decimal(customer.recent_orders), policy.frequency),
        monetary=_score(customer.recent_spend, policy.monetary),
    )


def segment_for(policy: RfmPolicy, scores: Rfm) -> str | None:
    for name, recency, frequency, monetary in policy.segments:
        if (
            scores.recency >= recency
            and scores.frequency >= frequency
            and scores.monetary >= monetary
        ):
            return name
    return None
