"""Lint for rule files: what loads and compiles, yet is almost surely a mistake.

Each finding has an id, a severity and a place: ``file:line: error [never-holds]: ...``.
Errors fail `loyalty rules check`; warnings fail it only with ``--strict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from service.core.conditions import AllOf, AnyOf, ArrayAll, ArrayAny, Compare, Condition
from service.core.programme import OfferGrant, PointsFormula, Programme, RuleSet
from service.rules.campaign_parser import RuleCase
from service.rules.lint_findings import ERROR, LINTS, WARNING, Finding, Lines, finding
from service.rules.lint_pairs import campaign_pairs, recipients
from service.rules.loader import PROGRAMME_FILE
from service.rules.satisfiable import alternatives, never_holds

__all__ = ["ERROR", "LINTS", "WARNING", "Finding", "lint"]

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
    lines = Lines(ruleset.files)
    findings = [
        *_unknown_references(ruleset, list(cases)),
        *_never_holds(ruleset),
        *campaign_pairs(ruleset, lines),
        *_ended(ruleset, lines, now),
        *_budgets(ruleset, lines),
        *_referrals(ruleset),
        *_expiry(ruleset.programme, lines),
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
        case ArrayAny() | ArrayAll():
            return


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
    where = f"case {case.name!r}"
    tier = case.customer.get("tier")
    if tier is not None and tier not in tiers:
        yield finding(
            "unknown-reference",
            case.file,
            case.line,
            f"{where}: customer tier {tier!r} is not a tier ({', '.join(tiers)})",
        )
    segment = case.customer.get("segment")
    if segment is not None and segment not in segments:
        yield finding(
            "unknown-reference",
            case.file,
            case.line,
            f"{where}: customer segment {segment!r} is not a named segment",
        )
    expected_tier = case.expect.get("tier")
    if expected_tier is not None and expected_tier not in tiers:
        yield finding(
            "unknown-reference",
            case.file,
            case.line,
            f"{where}: expects tier {expected_tier!r}, which is not a tier",
        )
    for offer in case.expect.get("offers") or []:
        if offer not in offers:
            yield finding(
                "unknown-reference",
                case.file,
                case.line,
                f"{where}: expects offer {offer!r}, which is not in the offer catalogue",
            )
    campaign = ruleset.campaign(case.campaign)
    names = {rule.name for rule in campaign.rules} if campaign else set()
    for name in case.expect.get("rules") or []:
        if name not in names:
            yield finding(
                "unknown-reference",
                case.file,
                case.line,
                f"{where}: expects rule {name!r}, which campaign {case.campaign!r} does not have",
            )


# -- never-holds


def _never_holds(ruleset: RuleSet) -> Iterator[Finding]:
    tiers = tuple(level.name for level in ruleset.programme.tiers.levels)
    enumerations = {"customer.tier": tiers} if tiers else {}
    for rule in ruleset.rules:
        reason = never_holds(rule.condition, enumerations)
        if reason is not None:
            yield finding(
                "never-holds", rule.file, rule.line, f"rule {rule.name!r} can never fire: {reason}"
            )


# -- campaign-ended


def _ended(ruleset: RuleSet, lines: Lines, now: datetime) -> Iterator[Finding]:
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


def _fixed_award(spec: PointsFormula, programme: Programme) -> int | None:
    """The smallest award a fixed-points formula gives, or None for a variable one."""
    if spec.of is not None:
        return None
    multiplier = spec.multiplier
    if spec.tier_multiplier and spec.to == "customer" and programme.tiers.levels:
        multiplier *= min(level.multiplier for level in programme.tiers.levels)
    points = int((spec.points * multiplier).quantize(Decimal(1), _ROUNDING[spec.round]))
    return min(points, spec.max) if spec.max is not None else points


def _budgets(ruleset: RuleSet, lines: Lines) -> Iterator[Finding]:
    for campaign in ruleset.campaigns:
        budget = campaign.budget
        if budget is None:
            continue
        for rule in campaign.rules:
            awards = [
                _fixed_award(s, ruleset.programme)
                for s in rule.effects
                if isinstance(s, PointsFormula)
            ]
            fixed = sum(a for a in awards if a is not None)
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
        awarded = recipients(rule)
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


def _expiry(programme: Programme, lines: Lines) -> Iterator[Finding]:
    policy = programme.points
    if policy.expire_after is None or policy.pending_days <= 0:
        return
    pending = timedelta(days=policy.pending_days)
    if policy.expire_after <= pending:
        yield finding(
            "expiry-before-pending",
            PROGRAMME_FILE,
            lines.of(PROGRAMME_FILE, "points", "expiry", "after")
            or lines.of(PROGRAMME_FILE, "points"),
            f"points expire {policy.expire_after.days} day(s) after they are earned, but are "
            f"held pending for {policy.pending_days} day(s): they expire before the member "
            "can spend them",
        )
