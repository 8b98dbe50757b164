"""Hostile rule files, as an attacker with a dry run or a reload would send them.

Shared by the rules, service and live-server tests of the rule-file limits.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import RULES_DIR

# Both took Python's backtracking `re` from seconds to hours on 64 characters.
CATASTROPHIC_PATTERNS = (".*.*.*.*.*.*.*.*.*.*.*.*!", ".*[a-z]+.*[a-z]+.*[a-z]+.*[a-z]+!")
LONG_CHANNEL = "a" * 64  # the longest channel an event may carry
WEDNESDAY = "2026-12-02T10:00:00+08:00"


def program_yaml() -> str:
    return (RULES_DIR / "program.yaml").read_text(encoding="utf-8")


def pattern_campaign(campaign_id: str, pattern: str) -> str:
    """A campaign whose rule matches the channel against the pattern, with a case that
    runs it on LONG_CHANNEL (the pattern wants a final `!`, so it never matches)."""
    return f"""\
campaign: {campaign_id}
description: Five points when the channel matches a pattern
priority: 0
rules:
  - name: patterned
    when:
      type: purchase
      channel: {{matches: "{pattern}"}}
    then:
      - award_points: {{points: 5, tier_multiplier: false}}
tests:
  - name: a long channel without the final mark earns nothing here
    event: {{type: purchase, amount: 1, channel: {LONG_CHANNEL}, occurred_at: {WEDNESDAY}}}
    expect: {{points: 0}}
"""


def alias_bomb_campaign(campaign_id: str = "bomb", levels: int = 7) -> str:
    """`&c0 {amount: {gt: 0}}`, then `&cN {all_of: [*c(N-1) x10]}` up to c(levels-1):
    3 KB of YAML, ten to the sixth conditions once the aliases are walked as a tree."""
    anchors = ["        - &c0 {amount: {gt: 0}}"]
    for level in range(1, levels):
        aliases = ", ".join([f"*c{level - 1}"] * 10)
        anchors.append(f"        - &c{level} {{all_of: [{aliases}]}}")
    body = "\n".join(anchors)
    return f"""\
campaign: {campaign_id}
description: Conditions shared through YAML aliases, ten at a time
priority: 0
rules:
  - name: nested
    when:
      type: purchase
      all_of:
{body}
    then:
      - award_points: {{points: 1}}
tests:
  - name: a purchase earns one
    event: {{type: purchase, amount: 1, occurred_at: {WEDNESDAY}}}
    expect: {{points: 1}}
"""


ALIAS_BOMB_ANCHOR_LINE = 9  # the line of `&c0` in alias_bomb_campaign()


def crowded_campaign(campaign_id: str = "crowded", rules: int = 10_000) -> str:
    """About 80 bytes per rule, every line valid: slow to load only by its size (seconds
    for 10,000 rules), so only the time limit of the check stops it."""
    lines = [f"campaign: {campaign_id}", "priority: 0", "rules:"]
    lines += [
        f"  - {{name: r{i}, when: {{amount: {{gt: {i}}}}}, then: [{{award_points: {{points: 1}}}}]}}"
        for i in range(rules)
    ]
    lines += [
        "tests:",
        f"  - {{name: one, event: {{type: purchase, amount: 1, occurred_at: {WEDNESDAY}}}, "
        "expect: {points: 1}}",
    ]
    return "\n".join(lines) + "\n"


def files_with(path: str, text: str) -> dict[str, str]:
    return {"program.yaml": program_yaml(), path: text}


def purchase_on_long_channel(event_id: str, customer_id: str = "hostile") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "purchase",
        "customer_id": customer_id,
        "occurred_at": WEDNESDAY,
        "order_id": f"order-{event_id}",
        "amount": "10",
        "channel": LONG_CHANNEL,
    }
