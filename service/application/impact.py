"""What a rules change would have done: two replays of the same events, compared.

Pure: takes the two versions and their replay results, returns the numbers a reviewer
reads (per campaign and in total, and the members who change most). Rendering lives at
the edge (service.commands.impact_format).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.application.replay import CampaignTally, CustomerOutcome, ReplayResult
from service.core.programme import RuleSet

CAMPAIGN_METRICS = ("points", "awards", "members", "offers", "messages", "tier_grants", "budget")
TOTAL_METRICS = (
    "points_issued",
    "points_clawed",
    "members_affected",
    "offers",
    "messages",
    "tier_changes",
    "budget_used",
)


@dataclass(frozen=True, slots=True)
class Change:
    base: int
    head: int

    @property
    def delta(self) -> int:
        return self.head - self.base

    def as_dict(self) -> dict[str, int]:
        return {"base": self.base, "head": self.head, "delta": self.delta}


@dataclass(frozen=True, slots=True)
class CampaignImpact:
    campaign: str
    status: str  # added | removed | changed | unchanged
    metrics: dict[str, Change]
    members_changed: int  # members whose points (or other effects) from it differ
    budget_points: int | None  # the head's budget (the base's for a removed campaign)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "status": self.status,
            **{name: change.as_dict() for name, change in self.metrics.items()},
            "members_changed": self.members_changed,
            "budget_points": self.budget_points,
        }


@dataclass(frozen=True, slots=True)
class CustomerImpact:
    customer_id: str
    points: Change
    offers: Change
    balance: Change
    tier_base: str | None
    tier_head: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "points": self.points.as_dict(),
            "offers": self.offers.as_dict(),
            "balance": self.balance.as_dict(),
            "tier": {"base": self.tier_base, "head": self.tier_head},
        }


@dataclass(frozen=True, slots=True)
class RunReport:
    """How the replay ran (not what the change does): processes, and why so."""

    processes: int
    how: str
    memory_mib: tuple[tuple[str, float], ...]  # (process, its peak resident memory)

    def as_dict(self) -> dict[str, Any]:
        return {
            "processes": self.processes,
            "how": self.how,
            "peak_memory_mib": {name: round(mib, 1) for name, mib in self.memory_mib},
        }


@dataclass(frozen=True, slots=True)
class Impact:
    base_version: str
    head_version: str
    source: str
    events: int
    skipped: int
    duplicates: int
    files: dict[str, list[str]]  # added | removed | modified -> paths
    totals: dict[str, Change]
    members_changed: int
    campaigns: list[CampaignImpact]
    customers: list[CustomerImpact]  # the members who change most
    tiers: dict[str, Change]  # members per tier at the end
    skipped_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    run: RunReport | None = None  # rendered beside as_dict(), which says what changes

    @property
    def changed(self) -> bool:
        return self.members_changed > 0 or any(c.delta for c in self.totals.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "base_version": self.base_version,
            "head_version": self.head_version,
            "source": self.source,
            "events": self.events,
            "skipped": self.skipped,
            "skipped_examples": self.skipped_examples,
            "duplicates": self.duplicates,
            "seconds": round(self.seconds, 2),
            "files": self.files,
            "totals": {name: change.as_dict() for name, change in self.totals.items()},
            "members_changed": self.members_changed,
            "campaigns": [c.as_dict() for c in self.campaigns],
            "customers": [c.as_dict() for c in self.customers],
            "tiers": {name: change.as_dict() for name, change in self.tiers.items()},
        }


def compare(
    base_rules: RuleSet,
    head_rules: RuleSet,
    base: ReplayResult,
    head: ReplayResult,
    *,
    source: str,
    skipped: list[str] | None = None,
    top: int = 10,
    seconds: float = 0.0,
) -> Impact:
    skipped = skipped or []
    customers = _customers(base.customers, head.customers)
    return Impact(
        base_version=base_rules.version,
        head_version=head_rules.version,
        source=source,
        events=head.events + head.duplicates,
        skipped=len(skipped),
        duplicates=head.duplicates,
        files=_files(base_rules.files, head_rules.files),
        totals=_totals(base, head),
        members_changed=sum(1 for c in customers if _differs(c)),
        campaigns=_campaigns(base_rules, head_rules, base, head),
        customers=[c for c in customers if _differs(c)][:top],
        tiers={
            name: Change(base.tiers.get(name, 0), head.tiers.get(name, 0))
            for name in _tier_order(base_rules, head_rules, base, head)
        },
        skipped_examples=skipped[:5],
        seconds=seconds,
    )


def _files(base: Mapping[str, str], head: Mapping[str, str]) -> dict[str, list[str]]:
    return {
        "added": sorted(set(head) - set(base)),
        "removed": sorted(set(base) - set(head)),
        "modified": sorted(p for p in set(base) & set(head) if base[p] != head[p]),
    }


def _affected(result: ReplayResult) -> int:
    members: set[str] = set()
    for tally in result.campaigns.values():
        members.update(tally.members)
    members.update(c for c, o in result.customers.items() if o.tier_changes)
    return len(members)


def _totals(base: ReplayResult, head: ReplayResult) -> dict[str, Change]:
    def of(result: ReplayResult) -> dict[str, int]:
        return {
            "points_issued": result.points_issued,
            "points_clawed": result.points_clawed,
            "members_affected": _affected(result),
            "offers": result.offers,
            "messages": result.messages,
            "tier_changes": result.tier_changes,
            "budget_used": sum(use.points for use in result.budgets.values()),
        }

    before, after = of(base), of(head)
    return {name: Change(before[name], after[name]) for name in TOTAL_METRICS}


def _metrics(tally: CampaignTally | None, budget_used: int) -> dict[str, int]:
    tally = tally or CampaignTally()
    return {
        "points": tally.points,
        "awards": tally.awards,
        "members": len(tally.members),
        "offers": tally.offers,
        "messages": tally.messages,
        "tier_grants": tally.tier_grants,
        "budget": budget_used,
    }


def _campaigns(
    base_rules: RuleSet, head_rules: RuleSet, base: ReplayResult, head: ReplayResult
) -> list[CampaignImpact]:
    found = []
    ids = {c.id for c in base_rules.campaigns} | {c.id for c in head_rules.campaigns}
    ids |= set(base.campaigns) | set(head.campaigns)
    for campaign_id in ids:
        before, after = base_rules.campaign(campaign_id), head_rules.campaign(campaign_id)
        if before is None:
            status = "added"
        elif after is None:
            status = "removed"
        elif base_rules.files.get(before.file) != head_rules.files.get(after.file):
            status = "changed"
        else:
            status = "unchanged"
        old_tally, new_tally = base.campaigns.get(campaign_id), head.campaigns.get(campaign_id)
        old = _metrics(old_tally, _spent(base, campaign_id))
        new = _metrics(new_tally, _spent(head, campaign_id))
        old_members = old_tally.members if old_tally else {}
        new_members = new_tally.members if new_tally else {}
        changed = sum(
            1
            for member in set(old_members) | set(new_members)
            if old_members.get(member) != new_members.get(member)
        )
        either = after or before
        budget = either.budget if either is not None else None
        found.append(
            CampaignImpact(
                campaign_id,
                status,
                {name: Change(old[name], new[name]) for name in CAMPAIGN_METRICS},
                changed,
                budget.points if budget is not None else None,
            )
        )
    order = {"changed": 0, "added": 0, "removed": 0, "unchanged": 1}
    return sorted(
        found,
        key=lambda c: (order[c.status], -abs(c.metrics["points"].delta), c.campaign),
    )


def _spent(result: ReplayResult, campaign: str) -> int:
    use = result.budgets.get(campaign)
    return use.points if use is not None else 0


def _customers(
    base: Mapping[str, CustomerOutcome], head: Mapping[str, CustomerOutcome]
) -> list[CustomerImpact]:
    empty = CustomerOutcome()
    found = []
    for customer_id in set(base) | set(head):
        old, new = base.get(customer_id, empty), head.get(customer_id, empty)
        found.append(
            CustomerImpact(
                customer_id,
                Change(old.points, new.points),
                Change(old.offers, new.offers),
                Change(old.balance, new.balance),
                old.tier,
                new.tier,
            )
        )
    return sorted(
        found,
        key=lambda c: (
            -abs(c.points.delta),
            -abs(c.offers.delta),
            c.tier_base == c.tier_head,
            c.customer_id,
        ),
    )


def _differs(customer: CustomerImpact) -> bool:
    return bool(
        customer.points.delta
        or customer.offers.delta
        or customer.balance.delta
        or customer.tier_base != customer.tier_head
    )


def _tier_order(
    base_rules: RuleSet, head_rules: RuleSet, base: ReplayResult, head: ReplayResult
) -> list[str]:
    names = [level.name for level in head_rules.programme.tiers.levels]
    names += [lvl.name for lvl in base_rules.programme.tiers.levels if lvl.name not in names]
    names += sorted((set(base.tiers) | set(head.tiers)) - set(names))
    return names
