"""The text of one rule (or campaign header) as its file has it, for explanations."""

from __future__ import annotations

from collections.abc import Mapping

from service.core.programme import Campaign, Rule


def rule_text(files: Mapping[str, str], rule: Rule) -> str:
    """The YAML of a rule's list item, from its `- name:` line to the next item."""
    lines = files.get(rule.file, "").splitlines()
    if not 0 < rule.line <= len(lines):
        return ""
    first = lines[rule.line - 1]
    dash = first.find("-")
    indent = dash if dash >= 0 and not first[:dash].strip() else _indent(first)
    taken = [first]
    for line in lines[rule.line :]:
        if line.strip() and _indent(line) <= indent:
            break
        taken.append(line)
    while taken and not taken[-1].strip():
        taken.pop()
    return "\n".join(taken)


def campaign_header(files: Mapping[str, str], campaign: Campaign) -> str:
    """The campaign's top-level settings (everything before `rules:` and `tests:`)."""
    lines = files.get(campaign.file, "").splitlines()
    kept, skipping = [], False
    for line in lines:
        if line and not line[0].isspace() and not line.startswith("#"):
            skipping = line.split(":", 1)[0] in ("rules", "tests")
        if not skipping:
            kept.append(line)
    return "\n".join(kept).strip("\n")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))
