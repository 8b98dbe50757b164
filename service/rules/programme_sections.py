"""The programme's catalogues and policies: offers, rewards, referrals, segments, messaging."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from service.core.programme import (
    MessageCap,
    MessagingPolicy,
    Offer,
    ReferralPolicy,
    Reward,
    RfmPolicy,
)
from service.rules.problems import Problems
from service.rules.values import (
    read_clock,
    read_decimal,
    read_duration,
    read_int,
    read_text,
)
from service.rules.yaml_source import LocatedDict, LocatedList

SCORES = ("recency", "frequency", "monetary")


def _entries(root: LocatedDict, key: str, problems: Problems) -> list[LocatedDict]:
    if key not in root:
        return []
    entries = problems.sequence(root[key], root.line_of(key), key)
    found = []
    for index, raw in enumerate(entries or []):
        line = entries.line_of(index) if entries is not None else root.line
        entry = problems.mapping(raw, line, f"an entry of {key}")
        if entry is not None:
            found.append(entry)
    return found


def _identified(
    entry: LocatedDict, key: str, allowed: tuple[str, ...], seen: set[str], problems: Problems
) -> str | None:
    problems.unknown_keys(entry, allowed, f"an entry of {key}")
    if not problems.required(entry, ("id", "title"), f"an entry of {key}"):
        return None
    entry_id = read_text(problems, entry["id"], entry.line_of("id"), f"{key} id")
    if entry_id in seen:
        problems.add(entry.line, f"{key}: id {entry_id!r} is listed twice")
    seen.add(entry_id or "")
    read_text(problems, entry["title"], entry.line_of("title"), f"{key} title")
    return entry_id


def parse_offers(root: LocatedDict, problems: Problems) -> tuple[Offer, ...]:
    offers, seen = [], set[str]()
    allowed = ("id", "title", "discount_percent", "valid_for", "description")
    for entry in _entries(root, "offers", problems):
        offer_id = _identified(entry, "offers", allowed, seen, problems)
        if not problems.required(entry, ("valid_for",), "an offer") or offer_id is None:
            continue
        valid_for = read_duration(
            problems, entry["valid_for"], entry.line_of("valid_for"), "valid_for"
        )
        discount = None
        if "discount_percent" in entry:
            line = entry.line_of("discount_percent")
            discount = read_decimal(
                problems, entry["discount_percent"], line, "discount_percent", True
            )
            if discount is not None and discount > 100:
                problems.add(line, "discount_percent is at most 100")
        if valid_for is not None:
            offers.append(
                Offer(
                    offer_id,
                    str(entry["title"]),
                    valid_for,
                    discount,
                    str(entry.get("description", "")),
                )
            )
    return tuple(offers)


def parse_rewards(root: LocatedDict, problems: Problems) -> tuple[Reward, ...]:
    rewards, seen = [], set[str]()
    for entry in _entries(root, "rewards", problems):
        reward_id = _identified(
            entry, "rewards", ("id", "title", "cost", "description"), seen, problems
        )
        if not problems.required(entry, ("cost",), "a reward") or reward_id is None:
            continue
        cost = read_int(problems, entry["cost"], entry.line_of("cost"), "reward cost", minimum=1)
        if cost is not None:
            rewards.append(
                Reward(reward_id, str(entry["title"]), cost, str(entry.get("description", "")))
            )
    return tuple(rewards)


def parse_referrals(root: LocatedDict, problems: Problems) -> ReferralPolicy:
    if "referrals" not in root:
        return ReferralPolicy()
    section = problems.mapping(root["referrals"], root.line_of("referrals"), "referrals")
    if section is None:
        return ReferralPolicy()
    problems.unknown_keys(section, ("max_per_referrer", "per", "require_new_referee"), "referrals")
    cap = None
    if "max_per_referrer" in section:
        cap = read_int(
            problems,
            section["max_per_referrer"],
            section.line_of("max_per_referrer"),
            "max_per_referrer",
            1,
        )
    per = None
    if "per" in section:
        per = read_duration(problems, section["per"], section.line_of("per"), "referrals.per")
    new_only = section.get("require_new_referee", True)
    if not isinstance(new_only, bool):
        problems.add(
            section.line_of("require_new_referee"), "require_new_referee takes true or false"
        )
        new_only = True
    return ReferralPolicy(max_per_referrer=cap, per=per, require_new_referee=new_only)


def parse_segments(root: LocatedDict, problems: Problems) -> RfmPolicy:
    """``segments: {rfm: {recency_days: [...4 cuts], frequency: [...], monetary: [...], window},
    named: [{name: champions, recency: 4, frequency: 4, monetary: 4}, ...]}``."""
    default = RfmPolicy()
    if "segments" not in root:
        return default
    section = problems.mapping(root["segments"], root.line_of("segments"), "segments")
    if section is None:
        return default
    problems.unknown_keys(section, ("rfm", "named"), "segments")
    cuts = {
        "recency_days": default.recency_days,
        "frequency": default.frequency,
        "monetary": default.monetary,
    }
    window = default.window
    rfm = (
        problems.mapping(section.get("rfm", LocatedDict()), section.line_of("rfm"), "segments.rfm")
        if "rfm" in section
        else None
    )
    if rfm is not None:
        problems.unknown_keys(rfm, (*cuts, "window"), "segments.rfm")
        for key in cuts:
            if key in rfm:
                cuts[key] = _cuts(
                    rfm[key], rfm.line_of(key), key, problems, descending=key == "recency_days"
                )
        if "window" in rfm:
            window = (
                read_duration(problems, rfm["window"], rfm.line_of("window"), "rfm.window")
                or window
            )
    named = []
    for entry in _named(section, problems):
        problems.unknown_keys(entry, ("name", *SCORES), "a named segment")
        name = read_text(problems, entry.get("name"), entry.line_of("name"), "segment name")
        scores = [read_int(problems, entry.get(s, 1), entry.line_of(s), s, 1) or 1 for s in SCORES]
        if any(score > 5 for score in scores):
            problems.add(entry.line, "RFM scores run from 1 to 5")
        if name is not None:
            named.append((name, scores[0], scores[1], scores[2]))
    return RfmPolicy(
        cuts["recency_days"], cuts["frequency"], cuts["monetary"], window, tuple(named)
    )


def _named(section: LocatedDict, problems: Problems) -> list[LocatedDict]:
    return _entries(section, "named", problems) if "named" in section else []


def _cuts(
    value: Any, line: int, key: str, problems: Problems, descending: bool
) -> tuple[Decimal, ...]:
    if not isinstance(value, LocatedList) or len(value) != 4:
        problems.add(line, f"{key} takes four cut points, e.g. [2, 4, 8, 16]")
        return ()
    cuts = [read_decimal(problems, v, line, key) for v in value]
    numbers = [c for c in cuts if c is not None]
    ordered = sorted(numbers, reverse=descending)
    if numbers != ordered or len(set(numbers)) != len(numbers):
        order = "falling (days: the fewer, the better)" if descending else "rising"
        problems.add(line, f"{key} cut points must be {order}")
    return tuple(numbers)


def parse_messaging(root: LocatedDict, problems: Problems) -> MessagingPolicy:
    if "messaging" not in root:
        return MessagingPolicy()
    section = problems.mapping(root["messaging"], root.line_of("messaging"), "messaging")
    if section is None:
        return MessagingPolicy()
    problems.unknown_keys(section, ("caps", "quiet_hours"), "messaging")
    caps = []
    for entry in _entries(section, "caps", problems):
        problems.unknown_keys(
            entry, ("category", "channel", "max", "per", "calendar"), "a messaging cap"
        )
        if not problems.required(entry, ("max", "per"), "a messaging cap"):
            continue
        most = read_int(problems, entry["max"], entry.line_of("max"), "cap max", minimum=1)
        per = read_duration(problems, entry["per"], entry.line_of("per"), "cap per")
        calendar = entry.get("calendar", False)
        if not isinstance(calendar, bool):
            problems.add(entry.line_of("calendar"), "calendar takes true or false")
        category = entry.get("category")
        channel = entry.get("channel")
        if most is not None and per is not None:
            caps.append(MessageCap(most, per, category, channel, bool(calendar)))
    quiet_from = quiet_to = None
    if "quiet_hours" in section:
        quiet = problems.mapping(
            section["quiet_hours"], section.line_of("quiet_hours"), "quiet_hours"
        )
        if quiet is not None:
            problems.unknown_keys(quiet, ("from", "to"), "quiet_hours")
            if problems.required(quiet, ("from", "to"), "quiet_hours"):
                quiet_from = read_clock(
                    problems, quiet["from"], quiet.line_of("from"), "quiet_hours.from"
                )
                quiet_to = read_clock(problems, quiet["to"], quiet.line_of("to"), "quiet_hours.to")
    return MessagingPolicy(tuple(caps), quiet_from, quiet_to)
