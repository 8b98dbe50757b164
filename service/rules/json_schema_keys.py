"""Which keys each section of a rule file takes, as the parsers themselves say.

The parsers read two probe files that visit every section; ``Problems.unknown_keys`` is
told, for each mapping, the keys it allows, and a recorder keeps them. A section the
parsers stop checking, or a probe that no longer parses, is an error here rather than a
schema that quietly drifts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.core.schedules import JOB_NAMES
from service.rules.campaign_parser import parse_campaign
from service.rules.effect_parser import EFFECTS
from service.rules.problems import Problems
from service.rules.programme_parser import parse_programme
from service.rules.yaml_source import LocatedDict, load_yaml

_PROBE_PROGRAMME = f"""
programme: probe
currency: CNY
timezone: UTC
points: {{expiry: {{after: 365d, warn_before: [7d]}}, pending: {{for: [purchase], days: 1}}}}
tiers: {{review: {{every: 30d}}, levels: [{{name: low, min: 0}}, {{name: high, min: 10}}]}}
messaging: {{caps: [{{max: 1, per: 1d}}], quiet_hours: {{from: "21:00", to: "09:00"}}}}
offers: [{{id: probe-offer, title: t, valid_for: 1d}}]
rewards: [{{id: probe-reward, title: t, cost: 1}}]
referrals: {{max_per_referrer: 1}}
segments: {{rfm: {{window: 365d}}, named: [{{name: probe}}]}}
schedules: {{{JOB_NAMES[0]}: {{every: 1h}}}}
"""
_PROBE_CAMPAIGN = """
campaign: probe
active: {from: 2026-01-01, until: 2026-02-01}
budget: {points: 10}
rules:
  - name: probe
    when: {type: purchase}
    then:
      - award_points: {points: 1}
      - tag: {add: [t]}
      - issue_offer: {offer: probe-offer}
      - send_message: {template: m}
      - upgrade_tier: {to: high}
    limit: {per_customer: 1}
tests:
  - {name: probe, event: {type: purchase}, expect: {points: 0}}
"""
# section name -> where its mapping sits in the probe file
_PROGRAMME_SECTIONS = {
    "programme": (),
    "points": ("points",),
    "points.expiry": ("points", "expiry"),
    "points.pending": ("points", "pending"),
    "tiers": ("tiers",),
    "tiers.review": ("tiers", "review"),
    "tier level": ("tiers", "levels", 0),
    "messaging": ("messaging",),
    "messaging cap": ("messaging", "caps", 0),
    "quiet_hours": ("messaging", "quiet_hours"),
    "offer": ("offers", 0),
    "reward": ("rewards", 0),
    "referrals": ("referrals",),
    "segments": ("segments",),
    "segments.rfm": ("segments", "rfm"),
    "named segment": ("segments", "named", 0),
    "schedule": ("schedules", JOB_NAMES[0]),
}
_CAMPAIGN_SECTIONS = {
    "campaign": (),
    "active": ("active",),
    "budget": ("budget",),
    "rule": ("rules", 0),
    "limit": ("rules", 0, "limit"),
    "case": ("tests", 0),
    "expect": ("tests", 0, "expect"),
    **{effect: ("rules", 0, "then", index, effect) for index, effect in enumerate(EFFECTS)},
}


class _Recorder(Problems):
    """Problems that also remember which keys each mapping was allowed to have."""

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.allowed: dict[int, tuple[str, ...]] = {}

    def unknown_keys(self, mapping: LocatedDict, allowed: Iterable[str], what: str) -> None:
        keys = tuple(allowed)
        self.allowed.setdefault(id(mapping), keys)
        super().unknown_keys(mapping, keys, what)


def _node(document: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def accepted_keys() -> dict[str, tuple[str, ...]]:
    """Section -> the keys its parser accepts, recorded while parsing the probe files."""
    recorder = _Recorder("program.yaml")
    programme_doc = load_yaml(_PROBE_PROGRAMME)
    programme = parse_programme(programme_doc, recorder)
    campaign_recorder = _Recorder("campaigns/probe.yaml")
    campaign_doc = load_yaml(_PROBE_CAMPAIGN)
    assert programme is not None, recorder.found
    parse_campaign(campaign_doc, campaign_recorder, programme, {}, "probe")
    problems = recorder.found + campaign_recorder.found
    if problems:
        raise RuntimeError(f"the schema probe files no longer parse: {problems}")
    found = {}
    for sections, document, source in (
        (_PROGRAMME_SECTIONS, programme_doc, recorder),
        (_CAMPAIGN_SECTIONS, campaign_doc, campaign_recorder),
    ):
        for name, path in sections.items():
            node = _node(document, path)
            if id(node) not in source.allowed:
                raise RuntimeError(f"the parser no longer checks the keys of {name}")
            found[name] = source.allowed[id(node)]
    return found
