"""Lint for rule files: what loads and compiles, yet is almost surely a mistake.

Each finding has an id, a severity and a place: ``file:line: error [never-holds]: ...``.
Errors fail `loyalty rules check`; warnings fail it only with ``--strict``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from service.core.conditions import AllOf, AnyOf, Compare, Condition
from service.core.programme import (
    Campaign,
    EffectSpec,
    OfferGrant,
    PointsFormula,
    Programme,
    Rule,
    RuleSet,
    TagChange,
    TierGrant,
)
from service.rules.campaign_parser import RuleCase
from service.rules.loader import PROGRAMME_FILE
from service.rules.satisfiable import alternatives, can_hold_together, never_holds
from service.rules.yaml_source import KeyLines

ERROR, WARNING = "error", "warning"

# id -> (severity, what it catches); README and `loyalty rules check` list these.
LINTS: Mapping[str, tuple[str, str]] = {
    "unknown-reference": (
        ERROR,
        "a segment, tier, offer or rule name that the programme does not define",
    ),
    "never-holds": (ERROR, "a rule whose condition no event can satisfy"),
    "equal-priority-overlap": (
        WARNING,
        "two campaigns of equal priority that both award points on the same event",
    ),
    "campaign-ended": (WARNING, "a campaign whose active.until is already past"),
    "budget-below-award": (ERROR, "a campaign budget smaller than one of its awards"),
    "referral-unguarded": (WARNING, "a referral reward with no new-customer guard"),
    "expiry-before-pending": (ERROR, "points that expire before their pending period ends"),
    "exclusive-group-of-one": (WARNING, "an exclusive_group no other campaign shares"),
    "order-dependent": (
        WARNING,
        "equal-priority campaigns whose effects interact, so the outcome hangs on their ids",
    ),
}


@dataclass(frozen=True, slots=True)
class Finding:
    lint: str
    severity: str
    file: str
    line: int | None
    message: str

    def format(self, root: str | Path | None = None) -> str:
        path = str(Path(root) / self.file) if root is not None else self.file
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.severity} [{self.lint}]: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def finding(lint_id: str, file: str, line: int | None, message: str) -> Finding:
    return Finding(lint_id, LINTS[lint_id][0], file, line, message)


_ROUNDING = {"floor": ROUND_FLOOR, "ceil": ROUND_CEILING, "nearest": ROUND_HALF_UP}
_NEW_CUSTOMER_GUARDS = (
    ("customer.is_new", "eq", True),
    ("customer.referred", "eq", False),
    ("customer.order_count", "eq", Decimal(0)),
    ("customer.order_count", "lt", Decimal(1)),
    ("customer.order_count", "lte", Decimal(0)),
)


def lint(ruleset: RuleSet, cases: Iterable[RuleCase], *, now: datetime) -> list[Finding]:
    """Every finding, sorted by file and line."""
    lines = KeyLines(ruleset.files)
    findings = [
        *_unknown_references(ruleset, list(cases)),
        *_never_holds(ruleset),
        *_campaign_pairs(ruleset, lines),
        *_ended(ruleset, lines, now),
        *_budgets(ruleset, lines),
        *_referrals(ruleset),
        *_expiry(ruleset.programme, lines),
        *_groups_of_one(ruleset, lines),
    ]
    return sorted(findings, key=lambda f: (f.file, f.line or 0, f.lint, f.message))


# -- unknown-reference


def _leaves(condition: Condition) -> Iterator[Compare]:
    match condition:
        case Compare():
            yield condition
        case AllOf(items) | AnyOf(items):
            for item in items:
                yield from _leaves(item)


def _unknown_references(ruleset: RuleSet, cases: list[RuleCase]) -> Iterator[Finding]:
    programme = ruleset.programme
    segments = [name for name, *_ in programme.rfm.segments]
    tiers = [level.name for level in programme.tiers.levels]
    offers = [offer.id for offer in programme.offers]
    known_segments = ", ".join(segments) or "none are defined"
    for rule in ruleset.rules:
        for leaf in _leaves(rule.condition):
            if leaf.path == "customer.segment" and leaf.value not in segments:
                yield finding(
                    "unknown-reference",
                    rule.file,
                    rule.line,
                    f"rule {rule.name!r} compares customer.segment with {leaf.value!r}, which "
                    f"no segment in {PROGRAMME_FILE} is named (segments: {known_segments})",
                )
    for case in cases:
        yield from _case_references(ruleset, case, tiers, segments, offers)


def _case_references(
    ruleset: RuleSet, case: RuleCase, tiers: list[str], segments: list[str], offers: list[str]
) -> Iterator[Finding]:
    customer, expect = case.customer, case.expect
    if customer.get("tier") not in (None, *tiers):
        yield _case(case, f"customer tier {customer['tier']!r} is not a tier ({', '.join(tiers)})")
    if customer.get("segment") not in (None, *segments):
        yield _case(case, f"customer segment {customer['segment']!r} is not a named segment")
    if expect.get("tier") not in (None, *tiers):
        yield _case(case, f"expects tier {expect['tier']!r}, which is not a tier")
    for offer in expect.get("offers") or ():
        if offer not in offers:
            yield _case(case, f"expects offer {offer!r}, which is not in the offer catalogue")
    campaign = ruleset.campaign(case.campaign)
    names = {rule.name for rule in campaign.rules} if campaign else set()
    for name in expect.get("rules") or ():
        if name not in names:
            yield _case(
                case, f"expects rule {name!r}, which campaign {case.campaign!r} does not have"
            )


def _case(case: RuleCase, message: str) -> Finding:
    return finding("unknown-reference", case.file, case.line, f"case {case.name!r}: {message}")


# -- never-holds


def _never_holds(ruleset: RuleSet) -> Iterator[Finding]:
    tiers = tuple(level.name for level in ruleset.programme.tiers.levels)
    enumerations = {"customer.tier": tiers} if tiers else {}
    for rule in ruleset.rules:
        reason = never_holds(rule.condition, enumerations)
        if reason is not None:
            message = f"rule {rule.name!r} can never fire: {reason}"
            yield finding("never-holds", rule.file, rule.line, message)


# -- exclusive-group-of-one


def _groups_of_one(ruleset: RuleSet, lines: KeyLines) -> Iterator[Finding]:
    groups = Counter(c.exclusive_group for c in ruleset.campaigns if c.exclusive_group)
    for c in ruleset.campaigns:
        if c.exclusive_group and groups[c.exclusive_group] == 1:
            message = f"campaign {c.id!r} is alone in exclusive_group {c.exclusive_group!r}"
            line = lines.of(c.file, "exclusive_group") or c.line
            yield finding("exclusive-group-of-one", c.file, line, message)


# -- campaign-ended


def _ended(ruleset: RuleSet, lines: KeyLines, now: datetime) -> Iterator[Finding]:
    for campaign in ruleset.campaigns:
        until = campaign.active_until
        if until is not None and until <= now:
            line = lines.of(campaign.file, "active", "until") or campaign.line
            yield finding(
                "campaign-ended",
                campaign.file,
                line,
                f"campaign {campaign.id!r} ended at {until.isoformat()}, before "
                f"{now.isoformat()}; it can never apply again. Remove it or move active.until",
            )


# -- budget-below-award


def _fixed_award(spec: EffectSpec, programme: Programme) -> int | None:
    """The smallest award a fixed-points formula gives, or None for any other effect."""
    if not isinstance(spec, PointsFormula) or spec.of is not None:
        return None
    multiplier = spec.multiplier
    if spec.tier_multiplier and spec.to == "customer" and programme.tiers.levels:
        multiplier *= min(level.multiplier for level in programme.tiers.levels)
    points = int((spec.points * multiplier).quantize(Decimal(1), _ROUNDING[spec.round]))
    return min(points, spec.max) if spec.max is not None else points


def _budgets(ruleset: RuleSet, lines: KeyLines) -> Iterator[Finding]:
    for campaign in ruleset.campaigns:
        budget = campaign.budget
        if budget is None:
            continue
        for rule in campaign.rules:
            awards = (_fixed_award(s, ruleset.programme) for s in rule.effects)
            fixed = sum(award for award in awards if award is not None)
            if budget.points is not None and fixed > budget.points:
                yield finding(
                    "budget-below-award",
                    campaign.file,
                    lines.of(campaign.file, "budget", "points") or campaign.line,
                    f"budget.points {budget.points} is smaller than one award of rule "
                    f"{rule.name!r} ({fixed} points): the rule can never award in full",
                )
            offers = sum(1 for s in rule.effects if isinstance(s, OfferGrant))
            if budget.offers is not None and offers > budget.offers:
                yield finding(
                    "budget-below-award",
                    campaign.file,
                    lines.of(campaign.file, "budget", "offers") or campaign.line,
                    f"budget.offers {budget.offers} is smaller than the {offers} offers rule "
                    f"{rule.name!r} issues at once",
                )


# -- referral-unguarded


def _guarded(condition: Condition) -> bool:
    options = alternatives(condition)
    if options is None:
        return True  # too large to judge; say nothing
    return all(
        any(
            isinstance(leaf, Compare) and (leaf.path, leaf.op, leaf.value) in _NEW_CUSTOMER_GUARDS
            for leaf in option
        )
        for option in options
    )


def _referrals(ruleset: RuleSet) -> Iterator[Finding]:
    require_new = ruleset.programme.referrals.require_new_referee
    for rule in ruleset.rules:
        awarded = _recipients(rule)
        if not awarded or _guarded(rule.condition):
            continue
        if rule.event_type == "referral" and not require_new:
            yield finding(
                "referral-unguarded",
                rule.file,
                rule.line,
                f"referral rule {rule.name!r} awards points with no new-customer guard "
                "(e.g. `customer.is_new: true`) while referrals.require_new_referee is false: "
                "existing members can be referred for points",
            )
        elif rule.event_type != "referral" and "referrer" in awarded and rule.limit is None:
            yield finding(
                "referral-unguarded",
                rule.file,
                rule.line,
                f"rule {rule.name!r} rewards the referrer on every matching event of the "
                "referred member; add `customer.order_count: 0` or a `limit`",
            )


# -- expiry-before-pending


def _expiry(programme: Programme, lines: KeyLines) -> Iterator[Finding]:
    policy = programme.points
    if policy.expire_after is None or policy.pending_days <= 0:
        return
    if policy.expire_after <= timedelta(days=policy.pending_days):
        yield finding(
            "expiry-before-pending",
            PROGRAMME_FILE,
            lines.of(PROGRAMME_FILE, "points", "expiry", "after")
            or lines.of(PROGRAMME_FILE, "points"),
            f"points expire {policy.expire_after.days} day(s) after they are earned, but are "
            f"held pending for {policy.pending_days} day(s): they expire before the member "
            "can spend them",
        )


# -- equal-priority-overlap and order-dependent


def _windows_overlap(first: Campaign, second: Campaign) -> bool:
    def before(start: datetime | None, end: datetime | None) -> bool:
        return start is None or end is None or start < end

    return before(first.active_from, second.active_until) and before(
        second.active_from, first.active_until
    )


def _recipients(rule: Rule) -> set[str]:
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


def _campaign_pairs(ruleset: RuleSet, lines: KeyLines) -> Iterator[Finding]:
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
    lines: KeyLines,
    enumerations: Mapping[str, Any],
) -> Iterator[Finding]:
    line = lines.of(second.file, "priority") or second.line
    overlap = interplay = None
    for one in first.rules:
        for other in second.rules:
            award = overlap is None and bool(_recipients(one) & _recipients(other))
            reason = _interplay(one, other) if interplay is None else None
            if not (award or reason) or not _same_events(one, other, enumerations):
                continue
            if award:
                overlap = (one, other)
            if reason:
                interplay = (one, other, reason)
    stack = first.exclusive_group is None or first.exclusive_group != second.exclusive_group
    if overlap is not None and stack:  # one exclusive group never pays both
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
