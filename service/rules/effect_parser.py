"""A rule's ``then:`` list: the effects it decides, each checked against the programme."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType
from typing import Any

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
from service.rules.problems import Problems, kind_of, suggest
from service.rules.values import read_decimal, read_duration, read_int, read_text
from service.rules.yaml_source import LocatedDict, LocatedList

EFFECTS = ("award_points", "tag", "issue_offer", "send_message", "upgrade_tier")
AWARD_KEYS = (
    "points",
    "per",
    "of",
    "multiplier",
    "round",
    "max",
    "tier_multiplier",
    "rates",
    "exclude",
    "to",
)
MESSAGE_KEYS = ("template", "channel", "category", "urgent", "dedupe", "stale_after")
CHANNELS = ("webhook", "email", "log")
RECIPIENTS = ("customer", "referrer")


def parse_effects(
    entry: LocatedDict, problems: Problems, programme: Programme, conditions: ConditionParser
) -> tuple[EffectSpec, ...] | None:
    then = problems.sequence(entry["then"], entry.line_of("then"), "`then`")
    if then is None:
        return None
    if not then:
        problems.add(entry.line_of("then"), "`then` is empty; say what the rule does")
        return None
    before = len(problems.found)
    effects: list[EffectSpec | None] = []
    for index, raw in enumerate(then):
        line = then.line_of(index)
        effect = problems.mapping(raw, line, "an effect")
        if effect is None or len(effect) != 1:
            if effect is not None:
                problems.add(line, "an effect is one key, e.g. `- award_points: {...}`")
            continue
        ((kind, body),) = effect.items()
        if kind == "award_points":
            effects.append(_award(body, line, problems, conditions))
        elif kind == "tag":
            effects.append(_tag(body, line, problems))
        elif kind == "issue_offer":
            effects.append(_offer(body, line, problems, programme))
        elif kind == "send_message":
            effects.append(_message(body, line, problems))
        elif kind == "upgrade_tier":
            effects.append(_tier(body, line, problems, programme))
        else:
            hint = suggest(kind, EFFECTS)
            problems.add(line, f"unknown effect {kind!r}{hint}; known: {', '.join(EFFECTS)}")
    if len(problems.found) > before or any(e is None for e in effects):
        return None
    return tuple(e for e in effects if e is not None)


def _award(
    body: Any, line: int, problems: Problems, conditions: ConditionParser
) -> PointsFormula | None:
    if isinstance(body, int) and not isinstance(body, bool):
        if body > 0:
            return PointsFormula(points=Decimal(body))
        problems.add(line, "points must be positive")
        return None
    spec = problems.mapping(body, line, "award_points")
    if spec is None:
        return None
    problems.unknown_keys(spec, AWARD_KEYS, "award_points")
    before = len(problems.found)
    points = _number(spec, "points", problems, Decimal(1))
    of = spec.get("of")
    numeric = ["items", *(p for p, t in FIELD_TYPES.items() if t == NUMBER)]
    if of is not None and of not in numeric:
        hint = suggest(str(of), numeric)
        problems.add(spec.line_of("of"), f"award_points.of: {of!r} is not a number field{hint}")
    if of is None and ("per" in spec or ("multiplier" not in spec and "points" not in spec)):
        problems.add(
            spec.line, "award_points needs `points`, or `per` and `of` (per: 1, of: amount)"
        )
    rounding = spec.get("round", "floor")
    if rounding not in ROUNDING:
        problems.add(
            spec.line_of("round"), f"round is one of {', '.join(ROUNDING)}, not {kind_of(rounding)}"
        )
    maximum = None
    if "max" in spec:
        maximum = read_int(problems, spec["max"], spec.line_of("max"), "max", minimum=1)
    tier_multiplier = spec.get("tier_multiplier", True)
    if not isinstance(tier_multiplier, bool):
        problems.add(spec.line_of("tier_multiplier"), "tier_multiplier takes true or false")
    recipient = spec.get("to", "customer")
    if recipient not in RECIPIENTS:
        problems.add(spec.line_of("to"), f"award_points.to is one of {', '.join(RECIPIENTS)}")
    rates = _rates(spec, problems, of)
    exclude = None
    if "exclude" in spec:
        if of not in ("items", "amount"):
            problems.add(
                spec.line_of("exclude"), "exclude applies when earning `of: items` or `of: amount`"
            )
        exclude_map = problems.mapping(spec["exclude"], spec.line_of("exclude"), "exclude")
        if exclude_map is not None:
            exclude = conditions.element(exclude_map, ITEM_FIELDS, "items[].")
    if len(problems.found) > before:
        return None
    return PointsFormula(
        points=points,
        of=of,
        per=_number(spec, "per", problems, Decimal(1)),
        multiplier=_number(spec, "multiplier", problems, Decimal(1)),
        round=rounding,
        max=maximum,
        tier_multiplier=bool(tier_multiplier),
        rates=rates,
        exclude=exclude,
        to=recipient,
    )


def _number(spec: LocatedDict, key: str, problems: Problems, default: Decimal) -> Decimal:
    if key not in spec:
        return default
    return read_decimal(problems, spec[key], spec.line_of(key), key, positive=True) or default


def _rates(spec: LocatedDict, problems: Problems, of: Any) -> MappingProxyType[str, Decimal]:
    if "rates" not in spec:
        return MappingProxyType({})
    line = spec.line_of("rates")
    if of != "items":
        problems.add(line, "rates apply when earning `of: items`")
    rates = problems.mapping(spec["rates"], line, "rates")
    parsed: dict[str, Decimal] = {}
    for category, rate in (rates or {}).items():
        value = read_decimal(
            problems, rate, rates.line_of(category) if rates else line, f"rate of {category}"
        )
        if value is not None:
            parsed[category] = value
    return MappingProxyType(parsed)


def _tag(body: Any, line: int, problems: Problems) -> TagChange | None:
    if isinstance(body, (LocatedList, str)):
        names = [body] if isinstance(body, str) else list(body)
        if all(isinstance(n, str) and n for n in names) and names:
            return TagChange(add=tuple(names))
        problems.add(line, "tag takes a tag name, a list of names, or {add: [...], remove: [...]}")
        return None
    spec = problems.mapping(body, line, "tag")
    if spec is None:
        return None
    problems.unknown_keys(spec, ("add", "remove"), "tag")
    parts = {}
    for key in ("add", "remove"):
        names = spec.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            problems.add(spec.line_of(key), f"tag.{key} must be a list of tag names")
            return None
        parts[key] = tuple(names)
    if not parts["add"] and not parts["remove"]:
        problems.add(line, "tag adds or removes nothing")
        return None
    return TagChange(add=parts["add"], remove=parts["remove"])


def _offer(body: Any, line: int, problems: Problems, programme: Programme) -> OfferGrant | None:
    offer_id = body.get("offer") if isinstance(body, dict) else body
    if isinstance(body, LocatedDict):
        problems.unknown_keys(body, ("offer",), "issue_offer")
    if not isinstance(offer_id, str):
        problems.add(line, "issue_offer names an offer: `issue_offer: birthday-20`")
        return None
    known = [offer.id for offer in programme.offers]
    if offer_id not in known:
        problems.add(
            line, f"issue_offer: no offer {offer_id!r} in program.yaml{suggest(offer_id, known)}"
        )
        return None
    return OfferGrant(offer_id)


def _message(body: Any, line: int, problems: Problems) -> MessageSpec | None:
    if isinstance(body, str):
        return MessageSpec(template=body)
    spec = problems.mapping(body, line, "send_message")
    if spec is None:
        return None
    problems.unknown_keys(spec, MESSAGE_KEYS, "send_message")
    if not problems.required(spec, ("template",), "send_message"):
        return None
    before = len(problems.found)
    template = read_text(problems, spec["template"], spec.line_of("template"), "template")
    channel = spec.get("channel", "log")
    if channel not in CHANNELS:
        problems.add(
            spec.line_of("channel"),
            f"channel is one of {', '.join(CHANNELS)}{suggest(str(channel), CHANNELS)}",
        )
    category = read_text(
        problems, spec.get("category", "marketing"), spec.line_of("category"), "category"
    )
    urgent = spec.get("urgent", False)
    if not isinstance(urgent, bool):
        problems.add(spec.line_of("urgent"), "urgent takes true or false")
    dedupe = spec.get("dedupe")
    if dedupe is not None and not isinstance(dedupe, str):
        problems.add(spec.line_of("dedupe"), "dedupe is a key in quotes")
    stale = None
    if "stale_after" in spec:
        stale = read_duration(
            problems, spec["stale_after"], spec.line_of("stale_after"), "stale_after"
        )
    if len(problems.found) > before or template is None or category is None:
        return None
    return MessageSpec(template, channel, category, urgent, dedupe, stale)


def _tier(body: Any, line: int, problems: Problems, programme: Programme) -> TierGrant | None:
    spec = {"to": body} if isinstance(body, str) else problems.mapping(body, line, "upgrade_tier")
    if spec is None:
        return None
    if isinstance(spec, LocatedDict):
        problems.unknown_keys(spec, ("to", "for"), "upgrade_tier")
    tiers = [level.name for level in programme.tiers.levels]
    tier = spec.get("to")
    if tier not in tiers:
        problems.add(line, f"upgrade_tier: {tier!r} is not a tier; tiers: {', '.join(tiers)}")
        return None
    duration = None
    if "for" in spec:
        duration = read_duration(problems, spec["for"], line, "upgrade_tier.for")
        if duration is None:
            return None
    return TierGrant(tier, duration)
