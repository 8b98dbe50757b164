"""``rules/campaigns/<id>.yaml``: one campaign, its rules, and the cases that test it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.core.conditions import AllOf, Compare, Condition
from service.core.programme import (
    Budget,
    Campaign,
    Limit,
    Programme,
    Rule,
)
from service.rules.condition_parser import ConditionParser
from service.rules.effect_parser import parse_effects
from service.rules.problems import Problems
from service.rules.values import read_decimal, read_duration, read_int, read_moment, read_text
from service.rules.yaml_source import LocatedDict

CAMPAIGN_KEYS = ("campaign", "description", "active", "priority", "budget", "rules", "tests")
RULE_KEYS = ("name", "when", "then", "limit")
CASE_KEYS = ("name", "customer", "event", "expect")
EXPECT_KEYS = ("points", "referrer_points", "rules", "tags", "offers", "tier", "messages")


@dataclass(frozen=True, slots=True)
class RuleCase:
    """A case written inside a campaign file: this member, this event, expect this."""

    campaign: str
    name: str
    customer: dict[str, Any]
    event: dict[str, Any]
    expect: dict[str, Any]
    file: str
    line: int


def parse_campaign(
    document: Any,
    problems: Problems,
    programme: Programme,
    dynamic: dict[str, str],
    expected_id: str,
) -> tuple[Campaign | None, list[RuleCase]]:
    root = problems.mapping(document, 1, "a campaign file")
    if root is None:
        return None, []
    problems.unknown_keys(root, CAMPAIGN_KEYS, "the campaign")
    if not problems.required(root, ("campaign", "rules"), "the campaign"):
        return None, []
    campaign_id = read_text(problems, root["campaign"], root.line_of("campaign"), "campaign")
    if campaign_id is not None and campaign_id != expected_id:
        problems.add(
            root.line_of("campaign"),
            f"campaign {campaign_id!r} must live in a file named {campaign_id}.yaml",
        )
    campaign_id = campaign_id or expected_id
    active_from, active_until = _active(root, problems, programme.timezone)
    priority = 0
    if "priority" in root:
        priority = read_int(problems, root["priority"], root.line_of("priority"), "priority") or 0
    budget = _budget(root, problems)
    tiers = tuple(level.name for level in programme.tiers.levels)
    conditions = ConditionParser(problems, tiers, dynamic)
    rules = _rules(root, problems, conditions, campaign_id, programme)
    cases = _cases(root, problems, campaign_id)
    if "tests" not in root:
        problems.add(
            root.line, f"campaign {campaign_id!r} has no `tests:`; every campaign carries its cases"
        )
    campaign = Campaign(
        id=campaign_id,
        rules=tuple(rules),
        description=str(root.get("description", "")),
        active_from=active_from,
        active_until=active_until,
        priority=priority,
        budget=budget,
        file=problems.file,
        line=root.line,
    )
    return campaign, cases


def _active(root: LocatedDict, problems: Problems, timezone: str) -> tuple[Any, Any]:
    if "active" not in root:
        return None, None
    active = problems.mapping(root["active"], root.line_of("active"), "active")
    if active is None:
        return None, None
    problems.unknown_keys(active, ("from", "until"), "active")
    start = end = None
    if "from" in active:
        start = read_moment(
            problems, active["from"], active.line_of("from"), "active.from", timezone, False
        )
    if "until" in active:
        end = read_moment(
            problems, active["until"], active.line_of("until"), "active.until", timezone, True
        )
    if start is not None and end is not None and end <= start:
        problems.add(active.line, "active.until comes before active.from")
    return start, end


def _budget(root: LocatedDict, problems: Problems) -> Budget | None:
    if "budget" not in root:
        return None
    budget = problems.mapping(root["budget"], root.line_of("budget"), "budget")
    if budget is None:
        return None
    problems.unknown_keys(budget, ("points", "offers", "share_of_revenue"), "budget")
    if not budget:
        problems.add(budget.line, "budget needs points, offers or share_of_revenue")
        return None
    points = offers = share = None
    if "points" in budget:
        points = read_int(problems, budget["points"], budget.line_of("points"), "budget.points", 1)
    if "offers" in budget:
        offers = read_int(problems, budget["offers"], budget.line_of("offers"), "budget.offers", 1)
    if "share_of_revenue" in budget:
        line = budget.line_of("share_of_revenue")
        share = read_decimal(problems, budget["share_of_revenue"], line, "share_of_revenue", True)
        if share is not None and share > 1:
            problems.add(line, "share_of_revenue is a fraction, e.g. 0.02 for 2%")
    return Budget(points=points, offers=offers, share_of_revenue=share)


def _rules(
    root: LocatedDict,
    problems: Problems,
    conditions: ConditionParser,
    campaign_id: str,
    programme: Programme,
) -> list[Rule]:
    entries = problems.sequence(root["rules"], root.line_of("rules"), "rules")
    if entries is None:
        return []
    if not entries:
        problems.add(root.line_of("rules"), "`rules` is empty")
    rules: list[Rule] = []
    names: set[str] = set()  # a set, not a scan of `rules`: 12,000 rules took 16 s
    for index, raw in enumerate(entries):
        entry = problems.mapping(raw, entries.line_of(index), "a rule")
        if entry is None:
            continue
        problems.unknown_keys(entry, RULE_KEYS, "a rule")
        if not problems.required(entry, ("name", "when", "then"), "a rule"):
            continue
        name = read_text(problems, entry["name"], entry.line_of("name"), "rule name")
        if name is not None and name in names:
            problems.add(entry.line_of("name"), f"rule {name!r} appears twice in this campaign")
        if name is not None:
            names.add(name)
        condition = conditions.parse(entry["when"], entry.line_of("when"))
        effects = parse_effects(entry, problems, programme, conditions)
        limit = _limit(entry, problems) if "limit" in entry else None
        if name is None or condition is None or effects is None:
            continue
        rules.append(
            Rule(
                campaign=campaign_id,
                name=name,
                condition=condition,
                effects=effects,
                limit=limit,
                event_type=_required_type(condition),
                file=problems.file,
                line=entry.line,
            )
        )
    return rules


def _required_type(condition: Condition) -> str | None:
    """The event type a condition insists on, so engines can index rules by it."""
    parts = condition.items if isinstance(condition, AllOf) else (condition,)
    for part in parts:
        if isinstance(part, Compare) and part.path == "type" and part.op == "eq":
            return str(part.value)
    return None


def _limit(entry: LocatedDict, problems: Problems) -> Limit | None:
    limit = problems.mapping(entry["limit"], entry.line_of("limit"), "limit")
    if limit is None:
        return None
    problems.unknown_keys(limit, ("per_customer", "per"), "limit")
    if not problems.required(limit, ("per_customer",), "limit"):
        return None
    count = read_int(
        problems, limit["per_customer"], limit.line_of("per_customer"), "per_customer", minimum=1
    )
    window = None
    if "per" in limit and limit["per"] != "lifetime":
        window = read_duration(problems, limit["per"], limit.line_of("per"), "limit.per")
        if window is None:
            return None
    return Limit(count, window) if count is not None else None


def _cases(root: LocatedDict, problems: Problems, campaign_id: str) -> list[RuleCase]:
    if "tests" not in root:
        return []
    entries = problems.sequence(root["tests"], root.line_of("tests"), "tests")
    cases: list[RuleCase] = []
    for index, raw in enumerate(entries or []):
        line = entries.line_of(index) if entries is not None else root.line
        entry = problems.mapping(raw, line, "a test case")
        if entry is None:
            continue
        problems.unknown_keys(entry, CASE_KEYS, "a test case")
        if not problems.required(entry, ("name", "event", "expect"), "a test case"):
            continue
        customer = entry.get("customer", {})
        event = problems.mapping(entry["event"], entry.line_of("event"), "test event")
        expect = problems.mapping(entry["expect"], entry.line_of("expect"), "expect")
        if not isinstance(customer, dict):
            problems.add(entry.line_of("customer"), "test customer must be a mapping")
            continue
        if event is None or expect is None:
            continue
        problems.unknown_keys(expect, EXPECT_KEYS, "expect")
        cases.append(
            RuleCase(
                campaign_id,
                str(entry["name"]),
                dict(customer),
                dict(event),
                dict(expect),
                problems.file,
                entry.line,
            )
        )
    if entries is not None and not entries:
        problems.add(root.line_of("tests"), "`tests` is empty; every campaign carries its cases")
    return cases
