"""``rules/campaigns/<id>.yaml``, declared once: a campaign, its rules (their effects are
service.rules.effect_parser's) and the cases that test it.

The Sections below are what `loyalty rules check` holds the file to and what the editors'
JSON Schema says. A rule's ``when`` (and an award's ``exclude``) is the condition grammar
of service.rules.condition_parser, written by hand; its problems keep their own lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, post_load, validates_schema

from service.core.conditions import AllOf, Compare, Condition
from service.core.programme import Budget, Campaign, Limit, Programme, Rule
from service.event_schema import INTERNAL_SCHEMAS, SCHEMAS, HypotheticalCustomerSchema
from service.rules.effect_parser import Effect, Reading, condition_of, reading
from service.rules.file_fields import (
    DURATION,
    TEXT,
    Description,
    Duration,
    Entries,
    Nested,
    Number,
    Section,
    Text,
    Value,
    WholeNumber,
)
from service.rules.problems import Problems, kind_of, report


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


class When(Value):
    JSON = {"$ref": "#/$defs/condition"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Condition:
        return condition_of(lambda conditions: conditions.parse(value, data.line_of(attr)))


class Moment(Value):
    """A date (whole days in the programme's zone; ``until`` takes in the whole day) or a
    time with an offset."""

    JSON = {
        "type": "string",
        "description": "a date (whole days in the programme's time zone) or a time with offset",
        "anyOf": [{"format": "date"}, {"format": "date-time"}],
    }

    def __init__(self, what: str, end_of_day: bool = False, **kwargs: Any) -> None:
        super().__init__(what, **kwargs)
        self.end_of_day = end_of_day

    def check(self, value: Any, what: str) -> datetime:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValidationError(f"{what}: give a UTC offset, e.g. 2026-12-01T00:00:00+08:00")
            return value
        if isinstance(value, date):
            day = value + timedelta(days=1) if self.end_of_day else value
            return datetime.combine(day, time(0), ZoneInfo(reading.get().programme.timezone))
        expected = "a date (2026-12-01) or a time with offset"
        raise ValidationError(f"{what} must be {expected}, got {kind_of(value)}")


class CampaignId(Text):
    JSON = {**TEXT, "pattern": "^[a-z0-9][a-z0-9_-]*$"}

    def check(self, value: Any, what: str) -> str:
        text = super().check(value, what)
        if text != reading.get().campaign:
            raise ValidationError(f"campaign {text!r} must live in a file named {text}.yaml")
        return text


class Name(Description):
    JSON = TEXT


class Window(Value):
    JSON = {"anyOf": [DURATION, {"const": "lifetime"}]}

    def check(self, value: Any, what: str) -> timedelta | None:
        return None if value == "lifetime" else Duration().check(value, what)


class Active(Section):
    what = "active"
    active_from = Moment("active.from", data_key="from")
    active_until = Moment("active.until", end_of_day=True, data_key="until")

    @validates_schema
    def in_order(self, data: Any, **kwargs: Any) -> None:
        start, end = data.get("active_from"), data.get("active_until")
        if start is not None and end is not None and end <= start:
            raise ValidationError("active.until comes before active.from")


class CampaignBudget(Section):
    what = "budget"
    make = Budget
    needs_one = True
    points = WholeNumber("budget.points", minimum=1)
    offers = WholeNumber("budget.offers", minimum=1)
    share_of_revenue = Number(
        "share_of_revenue",
        positive=True,
        most=1,
        over="share_of_revenue is a fraction, e.g. 0.02 for 2%",
        description="a fraction: 0.02 for 2%",
    )


class RuleLimit(Section):
    what = "limit"
    make = Limit
    per_customer = WholeNumber("per_customer", minimum=1, required=True)
    window = Window("limit.per", data_key="per", load_default=None, allow_none=False)


def _required_type(condition: Condition) -> str | None:
    """The event type a condition insists on, so engines can index rules by it."""
    parts = condition.items if isinstance(condition, AllOf) else (condition,)
    for part in parts:
        if isinstance(part, Compare) and part.path == "type" and part.op == "eq":
            return str(part.value)
    return None


class RuleEntry(Section):
    what = "a rule"
    json_name = "rule"
    name = Text("rule name", required=True)
    when = When(required=True)
    then = Entries(
        Effect(),
        "`then`",
        minimum=1,
        empty="`then` is empty; say what the rule does",
        required=True,
        post_load=tuple,
    )
    limit = Nested(RuleLimit)

    @post_load(pass_original=True)
    def build(self, data: Any, original: Any, **kwargs: Any) -> Rule:
        current = reading.get()
        return Rule(
            campaign=current.campaign,
            name=data["name"],
            condition=data["when"],
            effects=data["then"],
            limit=data.get("limit"),
            event_type=_required_type(data["when"]),
            file=current.problems.file,
            line=original.line,
        )


class Contract(Value):
    """A mapping whose fields a marshmallow contract checks when the case runs (the event's
    schema for its ``type``, the described member's); here, only that it is a mapping."""

    def __init__(
        self, refusal: str, contract: Mapping[str, Schema], needs: Iterable[str] = (), **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.refusal, self.contract, self.needs = refusal, contract, tuple(needs)

    def check(self, value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError(self.refusal.format(kind=kind_of(value)))
        return dict(value)


class ExpectedTier(Text):
    JSON = {"type": ["string", "null"]}


class Expect(Section):
    what = "expect"
    points = WholeNumber("expect.points", minimum=None)
    referrer_points = WholeNumber("expect.referrer_points", minimum=None)
    rules = Entries(Text("expect.rules"), "expect.rules", flat=True)
    tags = Entries(Text("expect.tags"), "expect.tags", flat=True)
    offers = Entries(Text("expect.offers"), "expect.offers", flat=True)
    tier = ExpectedTier("expect.tier", allow_none=True)
    messages = Entries(Text("expect.messages"), "expect.messages", flat=True)


class Case(Section):
    what = "a test case"
    json_name = "case"
    name = Name(required=True)
    customer = Contract("test customer must be a mapping", {"": HypotheticalCustomerSchema()})
    event = Contract(
        "test event must be a mapping, got {kind}",
        {**SCHEMAS, **INTERNAL_SCHEMAS},
        ("type", "occurred_at"),
        required=True,
    )
    expect = Nested(Expect, required=True)

    @post_load(pass_original=True)
    def build(self, data: Any, original: Any, **kwargs: Any) -> RuleCase:
        current = reading.get()
        customer = dict(original.get("customer", {}))
        event, expect = dict(original["event"]), dict(original["expect"])
        return RuleCase(
            current.campaign,
            str(data["name"]),
            customer,
            event,
            expect,
            current.problems.file,
            original.line,
        )


def _no_tests() -> str:
    return f"campaign {reading.get().campaign!r} has no `tests:`; every campaign carries its cases"


class CampaignFile(Section):
    what = "the campaign"
    campaign = CampaignId("campaign", required=True)
    description = Description()
    active = Nested(Active)
    priority = WholeNumber("priority")
    budget = Nested(CampaignBudget)
    exclusive_group = Text(
        "exclusive_group",
        description="campaigns of one group do not stack: only the highest priority pays",
    )
    rules = Entries(Nested(RuleEntry), "rules", minimum=1, empty="`rules` is empty", required=True)
    tests = Entries(
        Nested(Case),
        "tests",
        minimum=1,
        empty="`tests` is empty; every campaign carries its cases",
        required=True,
        error_messages={"required": _no_tests},
    )

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def rule_names_once(self, data: Any, original: Any, **kwargs: Any) -> None:
        names, twice = set(), {}  # a set, not a scan of the rules: 12,000 rules took 16 s
        rules = original.get("rules")
        for index, entry in enumerate(rules if isinstance(rules, list) else ()):
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name.strip():
                if name in names:
                    twice[index] = {"name": [f"rule {name!r} appears twice in this campaign"]}
                names.add(name)
        if twice:
            raise ValidationError({"rules": twice})

    @post_load(pass_original=True)
    def build(self, data: Any, original: Any, **kwargs: Any) -> tuple[Campaign, list[RuleCase]]:
        active = data.get("active") or {}
        campaign = Campaign(
            id=data["campaign"],
            rules=tuple(data["rules"]),
            description=data.get("description", ""),
            active_from=active.get("active_from"),
            active_until=active.get("active_until"),
            priority=data.get("priority", 0),
            budget=data.get("budget"),
            exclusive_group=data.get("exclusive_group"),
            file=reading.get().problems.file,
            line=original.line,
        )
        return campaign, data["tests"]


CAMPAIGN = Nested(CampaignFile, "a campaign file")


def parse_campaign(
    document: Any,
    problems: Problems,
    programme: Programme,
    dynamic: dict[str, str],
    expected_id: str,
) -> tuple[Campaign | None, list[RuleCase]]:
    """The campaign and its cases, or (None, []) with every problem added to ``problems``."""
    token = reading.set(Reading(programme, dynamic, problems, expected_id))
    try:
        campaign, cases = CAMPAIGN.deserialize(document)
    except ValidationError as error:
        report(error, document, problems)
        return None, []
    finally:
        reading.reset(token)
    return campaign, cases
