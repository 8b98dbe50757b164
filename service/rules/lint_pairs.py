"""Lint of campaign pairs: equal priorities that overlap, or whose effects interact."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from service.core.programme import (
    Campaign,
    OfferGrant,
    PointsFormula,
    Rule,
    RuleSet,
    TagChange,
    TierGrant,
)
from service.rules.lint_findings import Finding, Lines, finding
from service.rules.satisfiable import can_hold_together


def _windows_overlap(first: Campaign, second: Campaign) -> bool:
    starts_before_end = (
        first.active_from is None
        or second.active_until is None
        or first.active_from < second.active_until
    )
    ends_after_start = (
        second.active_from is None
        or first.active_until is None
        or second.active_from < first.active_until
    )
    return starts_before_end and ends_after_start


def recipients(rule: Rule) -> set[str]:
    return {spec.to for spec in rule.effects if isinstance(spec, PointsFormula)}


def _interplay(first: Rule, second: Rule) -> str | None:
    """How two rules' effects depend on which applies first, if they do."""
    offers = {s.offer for s in first.effects if isinstance(s, OfferGrant)}
    shared = sorted(offers & {s.offer for s in second.effects if isinstance(s, OfferGrant)})
    if shared:
        return f"both issue offer {shared[0]!r}"
    grants = any(isinstance(s, TierGrant) for s in first.effects)
    if grants and any(isinstance(s, TierGrant) for s in second.effects):
        return "both move the member's tier, and the second sees the first's move"
    for one, other in ((first, second), (second, first)):
        added = {t for s in one.effects if isinstance(s, TagChange) for t in s.add}
        removed = {t for s in other.effects if isinstance(s, TagChange) for t in s.remove}
        if added & removed:
            return f"one adds tag {sorted(added & removed)[0]!r} and the other removes it"
    return None


def _same_events(first: Rule, second: Rule, enumerations: Mapping[str, Any]) -> bool:
    if first.event_type and second.event_type and first.event_type != second.event_type:
        return False
    return can_hold_together(first.condition, second.condition, enumerations)


def campaign_pairs(ruleset: RuleSet, lines: Lines) -> Iterator[Finding]:
    tiers = tuple(level.name for level in ruleset.programme.tiers.levels)
    enumerations = {"customer.tier": tiers} if tiers else {}
    by_priority: dict[int, list[Campaign]] = {}
    for campaign in sorted(ruleset.campaigns, key=lambda c: c.id):
        by_priority.setdefault(campaign.priority, []).append(campaign)
    for priority, campaigns in by_priority.items():
        for index, first in enumerate(campaigns):
            for second in campaigns[index + 1 :]:
                if _windows_overlap(first, second):
                    yield from _pair(first, second, priority, lines, enumerations)


def _pair(
    first: Campaign,
    second: Campaign,
    priority: int,
    lines: Lines,
    enumerations: Mapping[str, Any],
) -> Iterator[Finding]:
    line = lines.of(second.file, "priority") or second.line
    overlap = interplay = None
    for one in first.rules:
        for other in second.rules:
            award = overlap is None and bool(recipients(one) & recipients(other))
            reason = _interplay(one, other) if interplay is None else None
            if not (award or reason) or not _same_events(one, other, enumerations):
                continue
            if award:
                overlap = (one, other)
            if reason:
                interplay = (one, other, reason)
    if overlap is not None:
        one, other = overlap
        on = f"{one.event_type or other.event_type or 'the same'} events"
        yield finding(
            "equal-priority-overlap",
            second.file,
            line,
            f"campaigns {first.id!r} and {second.id!r} both award points on {on} at priority "
            f"{priority} (rules {one.name!r} and {other.name!r}); both apply, in campaign-id "
            "order. Give one a higher priority, or make their conditions exclusive",
        )
    if interplay is not None:
        one, other, reason = interplay
        yield finding(
            "order-dependent",
            second.file,
            line,
            f"campaigns {first.id!r} and {second.id!r} have the same priority ({priority}) and "
            f"{reason} (rules {one.name!r} and {other.name!r}): the outcome depends on their "
            "ids, not on a declared priority. Give one a higher priority",
        )
