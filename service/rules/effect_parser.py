"""A rule's ``then:``, declared once: the effects a rule can decide, each in its full
form (a Section) and, where it has one, its short form (``award_points: 10``).

Effects are checked against the programme the campaign runs in (its offers and tiers):
``reading`` holds it while service.rules.campaign_parser reads a file.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from marshmallow import ValidationError, validates_schema

from service.core.conditions import Condition
from service.core.facts import FIELD_TYPES, ITEM_FIELDS, NUMBER
from service.core.programme import (
    ROUNDING,
    EffectSpec,
    MessageSpec,
    OfferGrant,
    PointsFormula,
    Programme,
    TagChange,
    TierGrant,
)
from service.rules.condition_parser import ConditionParser
from service.rules.file_fields import (
    TEXT,
    Duration,
    Flag,
    Json,
    Nested,
    Number,
    OneOf,
    Section,
    Text,
    Value,
    WholeNumber,
)
from service.rules.problems import Located, Problems, kind_of, suggest
from service.rules.yaml_source import LocatedDict

CHANNELS = ("webhook", "email", "log")
RECIPIENTS = ("customer", "referrer")
NUMBER_FIELDS = ("items", *(path for path, kind in FIELD_TYPES.items() if kind == NUMBER))


@dataclass(frozen=True, slots=True)
class Reading:
    """What checking one campaign file needs besides the file: the programme it runs in."""

    programme: Programme
    dynamic: dict[str, str]  # attributes.* fields' types, shared by every campaign
    problems: Problems
    campaign: str  # the id its file name gives


reading: ContextVar[Reading] = ContextVar("campaign file being read")


def condition_of(parse: Callable[[ConditionParser], Condition | None]) -> Condition:
    """A condition, by the hand-written grammar; its problems keep their own lines."""
    current = reading.get()
    found = Problems(current.problems.file)
    tiers = tuple(level.name for level in current.programme.tiers.levels)
    condition = parse(ConditionParser(found, tiers, current.dynamic))
    if found.found or condition is None:
        raise ValidationError([Located(problem.line, problem.message) for problem in found.found])
    return condition


class ItemCondition(Value):
    JSON = {"$ref": "#/$defs/item_condition"}

    def check(self, value: Any, what: str) -> Condition:
        if not isinstance(value, LocatedDict):
            raise ValidationError(f"{what} must be a mapping, got {kind_of(value)}")
        return condition_of(lambda conditions: conditions.element(value, ITEM_FIELDS, "items[]."))


class Rates(Value):
    JSON = {
        "type": "object",
        "additionalProperties": Number.JSON,
        "description": "points per whole unit, by item category; * for the rest",
    }

    def check(self, value: Any, what: str) -> MappingProxyType[str, Decimal]:
        if not isinstance(value, LocatedDict):
            raise ValidationError(f"{what} must be a mapping, got {kind_of(value)}")
        rates, errors = {}, {}
        for category, rate in value.items():
            try:
                rates[category] = Number().check(rate, f"rate of {category}")
            except ValidationError as error:
                errors[category] = error.messages
        if errors:
            raise ValidationError(errors)
        return MappingProxyType(rates)


class TagNames(Value):
    JSON = {"type": "array", "items": TEXT}

    def check(self, value: Any, what: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
            raise ValidationError(f"{what} must be a list of tag names")
        return tuple(value)


NAMES_AN_OFFER = "issue_offer names an offer: `issue_offer: birthday-20`"


class OfferId(Text):
    def check(self, value: Any, what: str) -> str:
        if not isinstance(value, str):
            raise ValidationError(NAMES_AN_OFFER)
        known = [offer.id for offer in reading.get().programme.offers]
        if value not in known:
            hint = suggest(value, known)
            raise ValidationError(f"issue_offer: no offer {value!r} in program.yaml{hint}")
        return value


class TierName(Text):
    def check(self, value: Any, what: str) -> str:
        tiers = [level.name for level in reading.get().programme.tiers.levels]
        if value not in tiers:
            raise ValidationError(
                f"upgrade_tier: {value!r} is not a tier; tiers: {', '.join(tiers)}"
            )
        return str(value)


class DedupeKey(Value):
    JSON = {"type": "string"}

    def check(self, value: Any, what: str) -> str:
        if not isinstance(value, str):
            raise ValidationError("dedupe is a key in quotes")
        return value


class Award(Section):
    what = "award_points"
    make = PointsFormula
    points = Number("points", positive=True)
    per = Number("per", positive=True)
    of = OneOf(
        NUMBER_FIELDS, "award_points.of: {value!r} is not a number field{hint}", allow_none=True
    )
    multiplier = Number("multiplier", positive=True)
    round = OneOf(ROUNDING, "round is one of {choices}, not {kind}")
    max = WholeNumber("max", minimum=1)
    tier_multiplier = Flag("tier_multiplier")
    rates = Rates("rates")
    exclude = ItemCondition("exclude")  # type: ignore[assignment]  # a key, not Schema.exclude
    to = OneOf(RECIPIENTS, "award_points.to is one of {choices}")

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def earns_something(self, data: Any, original: Any, **kwargs: Any) -> None:
        of, errors = original.get("of"), {}
        if of is None and ("per" in original or not {"multiplier", "points"} & set(original)):
            errors["_schema"] = [
                "award_points needs `points`, or `per` and `of` (per: 1, of: amount)"
            ]
        if "rates" in original and of != "items":
            errors["rates"] = ["rates apply when earning `of: items`"]
        if "exclude" in original and of not in ("items", "amount"):
            errors["exclude"] = ["exclude applies when earning `of: items` or `of: amount`"]
        if errors:
            raise ValidationError(errors)


class Tag(Section):
    what = "tag"
    make = TagChange
    add = TagNames("tag.add")
    remove = TagNames("tag.remove")

    @validates_schema
    def changes_something(self, data: Any, **kwargs: Any) -> None:
        if not data.get("add") and not data.get("remove"):
            raise ValidationError("tag adds or removes nothing")


class IssueOffer(Section):
    what = "issue_offer"
    make = OfferGrant
    offer = OfferId(required=True, error_messages={"required": NAMES_AN_OFFER})


class SendMessage(Section):
    what = "send_message"
    make = MessageSpec
    template = Text("template", required=True)
    channel = OneOf(CHANNELS, "channel is one of {choices}{hint}")
    category = Text("category")
    urgent = Flag("urgent")
    dedupe = DedupeKey(allow_none=True)
    stale_after = Duration("stale_after")


class UpgradeTier(Section):
    what = "upgrade_tier"
    make = TierGrant
    tier = TierName(data_key="to")
    duration = Duration("upgrade_tier.for", data_key="for")

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def names_a_tier(self, data: Any, original: Any, **kwargs: Any) -> None:
        if "to" not in original:
            TierName().check(None, "")


def _points(body: int) -> PointsFormula:
    if body <= 0:
        raise ValidationError("points must be positive")
    return PointsFormula(points=Decimal(body))


def _tags(body: Any) -> TagChange:
    names = [body] if isinstance(body, str) else list(body)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValidationError(
            "tag takes a tag name, a list of names, or {add: [...], remove: [...]}"
        )
    return TagChange(add=tuple(names))


@dataclass(frozen=True)
class EffectKind:
    """One kind of effect: its full form (a Section) and its short form, when it is not
    a mapping (``award_points: 10``, ``upgrade_tier: gold``)."""

    body: Nested
    shorthand: Json
    short: Callable[[Any], EffectSpec | None]  # None: the value is not of the short form


EFFECT_KINDS: dict[str, EffectKind] = {
    "award_points": EffectKind(
        Nested(Award),
        {"type": "integer", "minimum": 1},
        lambda v: _points(v) if isinstance(v, int) and not isinstance(v, bool) else None,
    ),
    "tag": EffectKind(
        Nested(Tag),
        {"anyOf": [TEXT, {"type": "array", "items": TEXT, "minItems": 1}]},
        lambda v: _tags(v) if isinstance(v, (str, list)) else None,
    ),
    "issue_offer": EffectKind(
        Nested(IssueOffer),
        TEXT,
        lambda v: None if isinstance(v, dict) else IssueOffer().load({"offer": v}),
    ),
    "send_message": EffectKind(
        Nested(SendMessage), TEXT, lambda v: MessageSpec(template=v) if isinstance(v, str) else None
    ),
    "upgrade_tier": EffectKind(
        Nested(UpgradeTier),
        TEXT,
        lambda v: UpgradeTier().load({"to": v}) if isinstance(v, str) else None,
    ),
}
EFFECTS = tuple(EFFECT_KINDS)
AWARD_KEYS = tuple(Award().keys)


class Effect(Value):
    """One entry of a rule's ``then:``: a mapping of one key, the effect's kind."""

    def check(self, value: Any, what: str) -> EffectSpec:
        if not isinstance(value, LocatedDict):
            raise ValidationError(f"an effect must be a mapping, got {kind_of(value)}")
        if len(value) != 1:
            raise ValidationError("an effect is one key, e.g. `- award_points: {...}`")
        ((kind, body),) = value.items()
        if kind not in EFFECT_KINDS:
            known = ", ".join(EFFECTS)
            raise ValidationError(
                f"unknown effect {kind!r}{suggest(kind, EFFECTS)}; known: {known}"
            )
        try:
            short = EFFECT_KINDS[kind].short(body)
            return short if short is not None else EFFECT_KINDS[kind].body.deserialize(body)
        except ValidationError as error:
            raise ValidationError({kind: error.messages}) from None
